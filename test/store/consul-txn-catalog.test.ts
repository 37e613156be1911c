import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  type Command,
  type ConsulTxnOp,
  decodeCommand,
  encodeCommand,
  type Result,
  restore,
  StoreErrorCode,
  snapshot,
  stateHash,
  Topic,
} from '../../src/store/index.js';
import { b, errorCode, Harness, s } from './helpers.js';

// Consul /v1/txn Node, Service, Check and Session verbs in the store: CAS on ModifyIndex,
// Consul's messages, and all-or-nothing application together with the KV verbs.

function txn(h: Harness, ...ops: ConsulTxnOp[]): Result {
  return h.apply({ type: 'consulTxn', ops });
}

function okTxn(h: Harness, ...ops: ConsulTxnOp[]) {
  return h.ok({ type: 'consulTxn', ops }, 'consulTxn');
}

const nodeSet = (node: string, address = '10.0.0.1'): ConsulTxnOp => ({
  target: 'node',
  verb: 'set',
  node: { node, address },
});
const serviceSet = (node: string, id: string, port = 80, tags: string[] = []): ConsulTxnOp => ({
  target: 'service',
  verb: 'set',
  node,
  service: { id, service: id, port, tags },
});
const checkSet = (
  node: string,
  checkId: string,
  status: 'passing' | 'critical',
  serviceId = '',
): ConsulTxnOp => ({
  target: 'check',
  verb: 'set',
  node,
  check: { checkId, status, serviceId },
});

function session(h: Harness, node = '', lockDelayMs = 15_000, checks: string[] = []): number {
  return h.ok(
    {
      type: 'leaseGrant',
      id: 0,
      ttlMs: 0,
      behavior: 'release',
      lockDelayMs,
      ...(node === '' ? {} : { node, checks }),
    },
    'leaseGrant',
  ).id;
}

function failure(result: Result): { code: string; opIndex: number | undefined; message: string } {
  assert.equal(result.type, 'error', 'expected the txn to fail');
  if (result.type !== 'error') throw new Error('unreachable');
  return { code: result.error.code, opIndex: result.error.opIndex, message: result.error.message };
}

const TOPICS = [
  Topic.nodes,
  Topic.services,
  Topic.checks,
  Topic.sessions,
  Topic.node('a'),
  Topic.node('b'),
  Topic.service('web'),
  Topic.service('db'),
];
const topicIndexes = (h: Harness) => TOPICS.map((topic) => h.store.index({ kind: 'topic', topic }));

describe('Consul txn: Node verbs', () => {
  test('set returns the node; get finds it by name or ID; identical set bumps nothing', () => {
    const h = new Harness();
    const set = okTxn(h, {
      target: 'node',
      verb: 'set',
      node: { node: 'a', id: 'id-a', address: '10.0.0.1' },
    });
    const node = set.results[0]!.node!;
    assert.deepEqual([node.node, node.address, node.createIndex, node.modifyIndex], ['a', '10.0.0.1', 2, 2]);
    assert.equal(h.store.index({ kind: 'topic', topic: Topic.node('a') }), 2);
    const again = okTxn(h, nodeSet('a'));
    assert.equal(again.revision, 2, 'an unchanged node must not bump the index (Consul #3911)');
    const byName = okTxn(h, { target: 'node', verb: 'get', node: { node: 'a' } });
    const byId = okTxn(h, { target: 'node', verb: 'get', node: { node: '', id: 'id-a' } });
    assert.equal(byName.results[0]!.node!.node, 'a');
    assert.equal(byId.results[0]!.node!.node, 'a');
    assert.equal(byId.revision, 2, 'a read-only txn takes no revision');
    const missing = failure(txn(h, { target: 'node', verb: 'get', node: { node: 'zz' } }));
    assert.deepEqual(missing, {
      code: StoreErrorCode.NodeNotFound,
      opIndex: 0,
      message: 'node "zz" doesn\'t exist',
    });
  });

  test('cas: index 0 creates only; otherwise ModifyIndex must match', () => {
    const h = new Harness();
    const created = okTxn(h, {
      target: 'node',
      verb: 'cas',
      node: { node: 'a', address: '1.1.1.1' },
      index: 0,
    });
    const index = created.results[0]!.node!.modifyIndex;
    const again = failure(
      txn(h, { target: 'node', verb: 'cas', node: { node: 'a', address: '2.2.2.2' }, index: 0 }),
    );
    assert.deepEqual(again, {
      code: StoreErrorCode.CasFailed,
      opIndex: 0,
      message: 'failed to set node "a", index is stale',
    });
    const stale = txn(h, {
      target: 'node',
      verb: 'cas',
      node: { node: 'a', address: '2.2.2.2' },
      index: index + 7,
    });
    assert.equal(errorCode(stale), StoreErrorCode.CasFailed);
    const updated = okTxn(h, { target: 'node', verb: 'cas', node: { node: 'a', address: '2.2.2.2' }, index });
    assert.equal(updated.results[0]!.node!.address, '2.2.2.2');
    assert.equal(updated.results[0]!.node!.createIndex, index);
    assert.ok(updated.results[0]!.node!.modifyIndex > index);
    const noNode = txn(h, { target: 'node', verb: 'cas', node: { node: 'b', address: '3.3.3.3' }, index: 5 });
    assert.equal(errorCode(noNode), StoreErrorCode.CasFailed, 'a non-zero index needs an existing node');
  });

  test('delete removes services, checks and the sessions tied to the node; delete-cas checks the index', () => {
    const h = new Harness();
    okTxn(h, nodeSet('a'), serviceSet('a', 'web'), checkSet('a', 'c1', 'passing', 'web'));
    const sid = session(h, 'a');
    okTxn(h, { verb: 'lock', key: b('lock'), value: b('v'), session: sid });
    const modifyIndex = h.store.catalog.node('a')!.modifyIndex;
    const stale = failure(
      txn(h, { target: 'node', verb: 'delete-cas', node: { node: 'a' }, index: modifyIndex + 1 }),
    );
    assert.equal(stale.message, 'failed to delete node "a", index is stale');
    const missing = txn(h, { target: 'node', verb: 'delete-cas', node: { node: 'zz' }, index: 0 });
    assert.equal(errorCode(missing), StoreErrorCode.CasFailed, 'catalog delete-cas fails on a missing node');
    const deleted = okTxn(h, { target: 'node', verb: 'delete-cas', node: { node: 'a' }, index: modifyIndex });
    assert.deepEqual(deleted.results, [{ kvs: [] }], 'deletes return no result');
    assert.equal(h.store.catalog.node('a'), undefined);
    assert.deepEqual(h.store.catalog.instances('web'), []);
    assert.equal(h.store.lease(sid), null, 'sessions on a deleted node are invalidated');
    assert.equal(h.store.lockHolder(b('lock')), null);
    // Deleting a missing node succeeds (Consul deleteNodeTxn returns nil).
    okTxn(h, { target: 'node', verb: 'delete', node: { node: 'a' } });
    h.store.checkInvariants();
  });
});

describe('Consul txn: Service and Check verbs', () => {
  test('service set needs a registered node; get, cas and delete-cas on ModifyIndex', () => {
    const h = new Harness();
    const orphan = failure(txn(h, serviceSet('a', 'web')));
    assert.deepEqual([orphan.opIndex, orphan.message], [0, 'Missing node registration']);
    const set = okTxn(h, nodeSet('a'), serviceSet('a', 'web', 80, ['v1']));
    const service = set.results[1]!.service!;
    assert.deepEqual([service.id, service.port, service.tags], ['web', 80, ['v1']]);
    assert.equal(h.store.index({ kind: 'topic', topic: Topic.service('web') }), set.revision);
    const got = okTxn(h, { target: 'service', verb: 'get', node: 'a', service: { id: 'web', service: '' } });
    assert.deepEqual(got.results[0]!.service, service);
    const missing = failure(
      txn(h, { target: 'service', verb: 'get', node: 'a', service: { id: 'x', service: '' } }),
    );
    assert.equal(missing.message, 'service "x" on node "a" doesn\'t exist');
    const stale = failure(
      txn(h, {
        target: 'service',
        verb: 'cas',
        node: 'a',
        service: { id: 'web', service: 'web', port: 81 },
        index: service.modifyIndex - 1,
      }),
    );
    assert.equal(stale.message, 'failed to set service "web" on node "a", index is stale');
    const updated = okTxn(h, {
      target: 'service',
      verb: 'cas',
      node: 'a',
      service: { id: 'web', service: 'web', port: 81 },
      index: service.modifyIndex,
    });
    const now = updated.results[0]!.service!;
    assert.equal(now.port, 81);
    const delStale = failure(
      txn(h, {
        target: 'service',
        verb: 'delete-cas',
        node: 'a',
        service: { id: 'web', service: '' },
        index: 1,
      }),
    );
    assert.equal(delStale.message, 'failed to delete service "web" on node "a", index is stale');
    okTxn(h, {
      target: 'service',
      verb: 'delete-cas',
      node: 'a',
      service: { id: 'web', service: '' },
      index: now.modifyIndex,
    });
    assert.equal(h.store.catalog.service('a', 'web'), undefined);
    assert.ok(h.store.catalog.node('a'), 'deleting a service keeps its node');
    h.store.checkInvariants();
  });

  test('check set needs its node and service; a critical check invalidates its sessions', () => {
    const h = new Harness();
    okTxn(h, nodeSet('a'), serviceSet('a', 'web'));
    const noService = failure(txn(h, checkSet('a', 'c1', 'passing', 'nope')));
    assert.equal(noService.message, 'Missing service registration');
    const noNode = failure(txn(h, checkSet('b', 'c1', 'passing')));
    assert.equal(noNode.message, 'Missing node registration');
    const set = okTxn(h, checkSet('a', 'c1', 'passing', 'web'), checkSet('a', 'node-check', 'passing'));
    const check = set.results[0]!.check!;
    assert.deepEqual([check.checkId, check.status, check.serviceName], ['c1', 'passing', 'web']);
    const sid = session(h, 'a', 0, ['node-check']);
    okTxn(h, { verb: 'lock', key: b('l'), value: b('v'), session: sid });
    const stale = failure(
      txn(h, {
        target: 'check',
        verb: 'cas',
        node: 'a',
        check: { checkId: 'node-check', status: 'critical' },
        index: 0,
      }),
    );
    assert.equal(stale.message, 'failed to set check "node-check" on node "a", index is stale');
    const nodeCheck = h.store.catalog.check('a', 'node-check')!;
    okTxn(h, {
      target: 'check',
      verb: 'cas',
      node: 'a',
      check: { checkId: 'node-check', status: 'critical' },
      index: nodeCheck.modifyIndex,
    });
    assert.equal(h.store.lease(sid), null, 'a check turning critical invalidates its sessions');
    assert.equal(h.store.lockHolder(b('l')), null);
    const got = okTxn(h, { target: 'check', verb: 'get', node: 'a', check: { checkId: 'node-check' } });
    assert.equal(got.results[0]!.check!.status, 'critical');
    const delStale = failure(
      txn(h, { target: 'check', verb: 'delete-cas', node: 'a', check: { checkId: 'c1' }, index: 1 }),
    );
    assert.equal(delStale.message, 'failed to delete check "c1" on node "a", index is stale');
    okTxn(h, {
      target: 'check',
      verb: 'delete-cas',
      node: 'a',
      check: { checkId: 'c1' },
      index: check.modifyIndex,
    });
    okTxn(h, { target: 'check', verb: 'delete', node: 'a', check: { checkId: 'gone-already' } });
    assert.equal(h.store.catalog.check('a', 'c1'), undefined);
    h.store.checkInvariants();
  });
});

describe('Consul txn: Session verb', () => {
  test('delete releases its locks, keeps LockIndex and starts the lock-delay', () => {
    const h = new Harness();
    const sid = session(h, '', 15_000);
    okTxn(h, { verb: 'lock', key: b('leader'), value: b('me'), session: sid });
    const before = h.store.get(b('leader'))!;
    const sessionsBefore = h.store.index({ kind: 'topic', topic: Topic.sessions });
    const result = okTxn(h, { target: 'session', verb: 'delete', session: sid });
    assert.ok(result.revision > sessionsBefore);
    assert.equal(h.store.index({ kind: 'topic', topic: Topic.sessions }), result.revision);
    assert.equal(h.store.lease(sid), null);
    const after = h.store.get(b('leader'))!;
    assert.deepEqual([after.session, after.lockIndex, s(after.value)], [0, before.lockIndex, 'me']);
    assert.equal(h.store.lockDelayUntil(b('leader'), h.nowMs), h.nowMs + 15_000);
    const unknown = failure(txn(h, { target: 'session', verb: 'delete', session: sid }));
    assert.deepEqual([unknown.code, unknown.opIndex], [StoreErrorCode.SessionNotFound, 0]);
    h.store.checkInvariants();
  });

  test('a lock taken earlier in the same txn is released too; later ops see the session gone', () => {
    const h = new Harness();
    const sid = session(h, '', 1000);
    okTxn(
      h,
      { verb: 'lock', key: b('k'), value: b('v'), session: sid },
      { target: 'session', verb: 'delete', session: sid },
    );
    assert.equal(h.store.lockHolder(b('k')), null);
    assert.equal(h.store.lockDelayUntil(b('k'), h.nowMs), h.nowMs + 1000);
    h.store.checkInvariants();

    const other = session(h, '', 0);
    const later = failure(
      txn(
        h,
        { target: 'session', verb: 'delete', session: other },
        { verb: 'lock', key: b('k2'), value: b('v'), session: other },
      ),
    );
    assert.deepEqual([later.code, later.opIndex], [StoreErrorCode.SessionNotFound, 1]);
    assert.ok(h.store.lease(other), 'the failed txn left the session in place');
    // A lock-delay started in the txn binds the txn's later ops.
    const third = session(h, '', 5000);
    const fourth = session(h, '', 0);
    okTxn(h, { verb: 'lock', key: b('d'), value: b('v'), session: third });
    const delayed = failure(
      txn(
        h,
        { target: 'session', verb: 'delete', session: third },
        { verb: 'lock', key: b('d'), value: b('v'), session: fourth },
      ),
    );
    assert.deepEqual([delayed.code, delayed.opIndex], [StoreErrorCode.LockDelay, 1]);
    assert.equal(h.store.lockDelayUntil(b('d'), h.nowMs), 0, 'a rolled-back txn starts no lock-delay');
    assert.equal(h.store.lockHolder(b('d'))?.session, third);
    h.store.checkInvariants();
  });
});

function world() {
  const h = new Harness();
  okTxn(
    h,
    nodeSet('a'),
    serviceSet('a', 'web', 80, ['v1']),
    checkSet('a', 'web-check', 'passing', 'web'),
    checkSet('a', 'serfHealth', 'passing'),
    { verb: 'set', key: b('config/x'), value: b('1') },
  );
  const nodeSession = session(h, 'a', 15_000, ['serfHealth']);
  const freeSession = session(h, '', 15_000);
  okTxn(h, { verb: 'lock', key: b('lock/a'), value: b('held'), session: nodeSession });
  okTxn(h, { verb: 'lock', key: b('lock/free'), value: b('held'), session: freeSession });
  return { h, nodeSession, freeSession };
}

/** The same state after a failure that touched nothing but the applied index. */
function twinAfterNoopFailure(): Harness {
  const { h } = world();
  assert.equal(errorCode(txn(h, { verb: 'get', key: b('absent') })), StoreErrorCode.KeyNotFound);
  return h;
}

describe('Consul txn: atomicity', () => {
  test('a failing op after catalog, session and KV ops leaves store, indexes and sessions untouched', () => {
    const { h, nodeSession, freeSession } = world();
    const bytes = snapshot(twinAfterNoopFailure().store);
    const revision = h.store.revision;
    const indexes = topicIndexes(h);
    const configIndex = h.store.get(b('config/x'))!.modRevision;
    const result = txn(
      h,
      { verb: 'set', key: b('config/x'), value: b('2') },
      nodeSet('b', '10.0.0.2'),
      serviceSet('b', 'db', 5432),
      serviceSet('a', 'web', 8080, ['v2']),
      checkSet('a', 'web-check', 'critical', 'web'),
      { target: 'check', verb: 'delete', node: 'a', check: { checkId: 'serfHealth' } },
      { target: 'session', verb: 'delete', session: freeSession },
      { target: 'node', verb: 'delete', node: { node: 'a' } },
      { verb: 'set', key: b('config/y'), value: b('new') },
      { verb: 'check-index', key: b('config/x'), index: configIndex },
    );
    const failed = failure(result);
    assert.deepEqual([failed.code, failed.opIndex], [StoreErrorCode.CasFailed, 9]);
    assert.equal(result.revision, revision);
    assert.equal(h.store.revision, revision);
    assert.deepEqual(topicIndexes(h), indexes, 'no blocking-query index moved');
    assert.ok(Buffer.from(snapshot(h.store)).equals(Buffer.from(bytes)), 'state is byte-identical');
    assert.ok(h.store.lease(nodeSession) && h.store.lease(freeSession), 'no session was invalidated');
    assert.equal(h.store.lockHolder(b('lock/a'))?.session, nodeSession);
    assert.equal(h.store.lockHolder(b('lock/free'))?.session, freeSession);
    assert.equal(h.store.lockDelayUntil(b('lock/free'), h.nowMs), 0);
    assert.deepEqual(
      h.store.catalog.instances('web').map((e) => [e.service.port, e.checks.map((c) => c.status)]),
      [[80, ['passing', 'passing']]],
    );
    assert.deepEqual(h.store.catalog.instances('db'), [], 'the name index was restored too');
    assert.equal(h.value('config/x'), '1');
    h.store.checkInvariants();

    // The same ops without the failing one commit at one revision.
    const applied = okTxn(
      h,
      { verb: 'set', key: b('config/x'), value: b('2') },
      nodeSet('b', '10.0.0.2'),
      serviceSet('b', 'db', 5432),
      { target: 'session', verb: 'delete', session: freeSession },
      { target: 'node', verb: 'delete', node: { node: 'a' } },
    );
    assert.equal(applied.revision, revision + 1);
    assert.equal(h.store.catalog.service('b', 'db')!.modifyIndex, revision + 1);
    assert.equal(h.store.get(b('config/x'))!.modRevision, revision + 1);
    assert.equal(h.store.lease(nodeSession), null);
    assert.equal(h.store.lease(freeSession), null);
    assert.equal(h.store.index({ kind: 'topic', topic: Topic.service('db') }), revision + 1);
    assert.equal(h.store.index({ kind: 'topic', topic: Topic.service('web') }), revision + 1);
    h.store.checkInvariants();
  });

  test('a failed node op rolls back earlier ops in the same txn (quota-free, store-level error)', () => {
    const { h } = world();
    const hash = stateHash(twinAfterNoopFailure().store);
    const result = txn(h, { target: 'node', verb: 'delete', node: { node: 'a' } }, serviceSet('a', 'web'));
    const failed = failure(result);
    assert.deepEqual([failed.opIndex, failed.message], [1, 'Missing node registration']);
    assert.equal(stateHash(h.store), hash);
    assert.ok(h.store.catalog.node('a'));
    h.store.checkInvariants();
  });
});

describe('Consul txn: log and snapshot', () => {
  test('catalog ops survive the command codec; malformed ones are refused on decode', () => {
    const command: Command = {
      type: 'consulTxn',
      timeMs: 5,
      ops: [
        { verb: 'set', key: b('k'), value: b('v') },
        { target: 'node', verb: 'cas', node: { node: 'a', address: '1.2.3.4', meta: { m: '1' } }, index: 0 },
        serviceSet('a', 'web', 80, ['x']),
        checkSet('a', 'c', 'passing', 'web'),
        { target: 'session', verb: 'delete', session: 7 },
      ],
    };
    assert.deepEqual(decodeCommand(encodeCommand(command)), command);
    const bad = (op: unknown) => () =>
      decodeCommand(encodeCommand({ type: 'consulTxn', timeMs: 5, ops: [op] } as unknown as Command));
    assert.throws(bad({ target: 'node', verb: 'lock', node: { node: 'a' } }), /malformed/);
    assert.throws(bad({ target: 'galaxy', verb: 'set' }), /malformed/);
    assert.throws(bad({ target: 'service', verb: 'set', node: 'a', service: { id: 1 } }), /malformed/);
    assert.throws(bad({ target: 'session', verb: 'delete', session: 'x' }), /malformed/);
    assert.throws(
      bad({
        target: 'service',
        verb: 'set',
        node: 'a',
        service: { id: 'a', service: 'a', tags: Array(2000).fill('t') },
      }),
      /malformed/,
    );
  });

  test('store-level limits: op count, empty names, oversized records', () => {
    const h = new Harness({ limits: { maxTxnOps: 3, maxValueBytes: 1024 } });
    const tooMany = txn(h, nodeSet('a'), nodeSet('b'), nodeSet('c'), nodeSet('d'));
    assert.equal(errorCode(tooMany), StoreErrorCode.TooManyOps);
    const empty = failure(
      txn(h, { target: 'service', verb: 'delete', node: 'a', service: { id: '', service: '' } }),
    );
    assert.deepEqual([empty.code, empty.opIndex], [StoreErrorCode.InvalidArgument, 0]);
    const huge = failure(
      txn(h, { target: 'node', verb: 'set', node: { node: 'a', address: 'x'.repeat(2000) } }),
    );
    assert.equal(huge.code, StoreErrorCode.ValueTooLarge);
    // Ops that bypass the codec still fail cleanly rather than crash the replica.
    const deep = { target: 'node', verb: 'set', node: { node: 'a', extra: { a: { b: { c: { d: 'x' } } } } } };
    assert.equal(failure(txn(h, deep as ConsulTxnOp)).code, StoreErrorCode.ValueTooLarge);
    assert.equal(failure(txn(h, { target: 'galaxy', verb: 'set' } as unknown as ConsulTxnOp)).opIndex, 0);
    assert.equal(h.store.revision, 1);
  });

  test('replaying the log gives byte-identical snapshots, and a restore the same state', () => {
    const { h } = world();
    okTxn(h, nodeSet('b'), serviceSet('b', 'db'), { target: 'node', verb: 'delete', node: { node: 'a' } });
    txn(h, nodeSet('c'), { target: 'session', verb: 'delete', session: 999 });
    const replay = new Harness();
    for (const command of h.log) replay.store.apply(++replay.index, command);
    assert.ok(Buffer.from(snapshot(replay.store)).equals(Buffer.from(snapshot(h.store))));
    const restored = restore(snapshot(h.store));
    assert.equal(stateHash(restored), stateHash(h.store));
    assert.equal(restored.catalog.instances('db').length, 1);
    assert.equal(restored.catalog.node('c'), undefined);
    restored.checkInvariants();
  });
});
