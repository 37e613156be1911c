import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ConsulKvOp } from '../../src/store/index.js';
import { StoreErrorCode } from '../../src/store/index.js';
import { b, errorCode, Harness, s } from './helpers.js';

function consul(h: Harness, ...ops: ConsulKvOp[]) {
  return h.apply({ type: 'consulTxn', ops });
}
const set = (key: string, value: string, flags?: number): ConsulKvOp => ({
  verb: 'set',
  key: b(key),
  value: b(value),
  flags,
});
const lock = (key: string, session: number, value = 'v'): ConsulKvOp => ({
  verb: 'lock',
  key: b(key),
  value: b(value),
  session,
});
const unlock = (key: string, session: number, value = 'v'): ConsulKvOp => ({
  verb: 'unlock',
  key: b(key),
  value: b(value),
  session,
});

function session(
  h: Harness,
  options: { lockDelayMs?: number; behavior?: 'delete' | 'release'; ttlMs?: number } = {},
) {
  return h.ok(
    {
      type: 'leaseGrant',
      id: 0,
      ttlMs: options.ttlMs ?? 0,
      behavior: options.behavior ?? 'release',
      lockDelayMs: options.lockDelayMs ?? 15_000,
    },
    'leaseGrant',
  ).id;
}

describe('Consul KV', () => {
  test('set writes value and flags; an identical set bumps no index', () => {
    const h = new Harness();
    const first = consul(h, set('k', 'v', 42));
    assert.equal(first.type, 'consulTxn');
    const kv = h.store.get(b('k'))!;
    assert.deepEqual([kv.flags, kv.createRevision, kv.modRevision], [42, 2, 2]);
    const again = consul(h, set('k', 'v', 42));
    assert.equal(again.revision, 2, 'no-op write must not bump the index (Consul blocking-query storms)');
    assert.equal(h.store.index({ kind: 'key', key: b('k') }), 2);
    consul(h, set('k', 'v', 43));
    assert.equal(h.store.get(b('k'))!.modRevision, 3);
  });

  test('cas with index 0 creates only; otherwise the modify index must match', () => {
    const h = new Harness();
    assert.equal(consul(h, { verb: 'cas', key: b('k'), value: b('1'), index: 0 }).type, 'consulTxn');
    assert.equal(
      errorCode(consul(h, { verb: 'cas', key: b('k'), value: b('2'), index: 0 })),
      StoreErrorCode.CasFailed,
    );
    const index = h.store.get(b('k'))!.modRevision;
    assert.equal(
      errorCode(consul(h, { verb: 'cas', key: b('k'), value: b('2'), index: index + 1 })),
      StoreErrorCode.CasFailed,
    );
    assert.equal(consul(h, { verb: 'cas', key: b('k'), value: b('2'), index }).type, 'consulTxn');
    assert.equal(h.value('k'), '2');
  });

  test('delete-cas: stale index fails, matching deletes, a missing key counts as deleted', () => {
    const h = new Harness();
    consul(h, set('k', 'v'));
    const index = h.store.get(b('k'))!.modRevision;
    assert.equal(
      errorCode(consul(h, { verb: 'delete-cas', key: b('k'), index: index - 1 })),
      StoreErrorCode.CasFailed,
    );
    assert.equal(consul(h, { verb: 'delete-cas', key: b('k'), index }).type, 'consulTxn');
    assert.equal(h.value('k'), null);
    assert.equal(consul(h, { verb: 'delete-cas', key: b('k'), index: 12345 }).type, 'consulTxn');
  });

  test('acquire increments LockIndex; the holder re-acquiring does not; another session fails', () => {
    const h = new Harness();
    const s1 = session(h);
    const s2 = session(h);
    consul(h, lock('lock', s1, 'a'));
    let kv = h.store.get(b('lock'))!;
    assert.deepEqual([kv.lockIndex, kv.session], [1, s1]);
    consul(h, lock('lock', s1, 'b'));
    kv = h.store.get(b('lock'))!;
    assert.deepEqual([kv.lockIndex, s(kv.value)], [1, 'b']);
    assert.equal(errorCode(consul(h, lock('lock', s2))), StoreErrorCode.LockHeld);
    assert.equal(errorCode(consul(h, unlock('lock', s2))), StoreErrorCode.LockHeld);
    consul(h, unlock('lock', s1));
    kv = h.store.get(b('lock'))!;
    assert.deepEqual([kv.lockIndex, kv.session], [1, 0]);
    consul(h, lock('lock', s2));
    assert.equal(h.store.get(b('lock'))!.lockIndex, 2);
    assert.equal(errorCode(consul(h, lock('other', 9999))), StoreErrorCode.SessionNotFound);
  });

  test('set keeps the lock (session and LockIndex)', () => {
    const h = new Harness();
    const s1 = session(h);
    consul(h, lock('k', s1));
    consul(h, set('k', 'overwritten'));
    const kv = h.store.get(b('k'))!;
    assert.deepEqual([kv.session, kv.lockIndex, s(kv.value)], [s1, 1, 'overwritten']);
  });

  test('fencing tokens: every grant gets a larger token; re-acquire keeps it', () => {
    const h = new Harness();
    const s1 = session(h);
    const s2 = session(h);
    const token = (result: ReturnType<typeof consul>) =>
      result.type === 'consulTxn' ? result.results[0]!.fencingToken : -1;
    const t1 = token(consul(h, lock('k', s1)));
    assert.equal(token(consul(h, lock('k', s1, 'again'))), t1);
    assert.equal(h.store.lockHolder(b('k'))!.fencingToken, t1);
    consul(h, unlock('k', s1));
    const t2 = token(consul(h, lock('k', s2)));
    assert.ok(t2! > t1!);
    assert.deepEqual(h.store.lockHolder(b('k')), { session: s2, lockIndex: 2, fencingToken: t2 });
  });

  test('lock-delay: after the holding session is destroyed, nobody can acquire until it passes', () => {
    const h = new Harness();
    const s1 = session(h, { lockDelayMs: 15_000 });
    const s2 = session(h);
    consul(h, lock('k', s1));
    h.ok({ type: 'leaseRevoke', id: s1 });
    const kv = h.store.get(b('k'))!;
    assert.deepEqual(
      [kv.session, kv.lockIndex],
      [0, 1],
      'release behavior keeps the key, clears the session',
    );
    assert.equal(errorCode(consul(h, lock('k', s2))), StoreErrorCode.LockDelay);
    h.advance(14_999);
    assert.equal(errorCode(consul(h, lock('k', s2))), StoreErrorCode.LockDelay);
    h.advance(1);
    assert.equal(consul(h, lock('k', s2)).type, 'consulTxn');
    assert.equal(h.store.get(b('k'))!.lockIndex, 2);
  });

  test('lock-delay is capped at 60 s (Consul MaxLockDelay)', () => {
    const h = new Harness();
    const s1 = session(h, { lockDelayMs: 600_000 });
    consul(h, lock('k', s1));
    h.ok({ type: 'leaseRevoke', id: s1 });
    assert.equal(h.store.lockDelayUntil(b('k'), h.nowMs), h.nowMs + 60_000);
  });

  test('session behavior delete removes the locked keys', () => {
    const h = new Harness();
    const s1 = session(h, { behavior: 'delete', lockDelayMs: 0 });
    consul(h, lock('k', s1));
    h.ok({ type: 'leaseRevoke', id: s1 });
    assert.equal(h.value('k'), null);
  });

  test('check verbs: check-index, check-session, check-not-exists', () => {
    const h = new Harness();
    const s1 = session(h);
    consul(h, lock('k', s1));
    const index = h.store.get(b('k'))!.modRevision;
    assert.equal(consul(h, { verb: 'check-index', key: b('k'), index }).type, 'consulTxn');
    assert.equal(
      errorCode(consul(h, { verb: 'check-index', key: b('k'), index: index + 1 })),
      StoreErrorCode.CasFailed,
    );
    assert.equal(
      errorCode(consul(h, { verb: 'check-index', key: b('nope'), index: 1 })),
      StoreErrorCode.KeyNotFound,
    );
    assert.equal(consul(h, { verb: 'check-session', key: b('k'), session: s1 }).type, 'consulTxn');
    assert.equal(
      errorCode(consul(h, { verb: 'check-session', key: b('k'), session: s1 + 1 })),
      StoreErrorCode.CheckFailed,
    );
    assert.equal(consul(h, { verb: 'check-not-exists', key: b('nope') }).type, 'consulTxn');
    assert.equal(errorCode(consul(h, { verb: 'check-not-exists', key: b('k') })), StoreErrorCode.CheckFailed);
  });

  test('get-or-empty: the entry when the key exists, an empty one (no value, zero indexes) when not', () => {
    const h = new Harness();
    consul(h, set('k', 'v'));
    const result = consul(h, { verb: 'get-or-empty', key: b('k') }, { verb: 'get-or-empty', key: b('nope') });
    assert.equal(result.type, 'consulTxn');
    if (result.type !== 'consulTxn') return;
    const [found, missing] = result.results.map((r) => r.kvs[0]!);
    assert.equal(s(found!.value), 'v');
    assert.ok(found!.modRevision > 0);
    assert.equal(s(missing!.key), 'nope');
    assert.equal(missing!.value.byteLength, 0);
    assert.deepEqual([missing!.createRevision, missing!.modRevision, missing!.lockIndex], [0, 0, 0]);
  });

  test('a txn is atomic: a failing op undoes the earlier ones and reports its index', () => {
    const h = new Harness();
    const result = consul(h, set('a', '1'), set('b', '2'), { verb: 'check-index', key: b('a'), index: 999 });
    assert.equal(result.type, 'error');
    assert.equal(result.type === 'error' && result.error.opIndex, 2);
    assert.equal(h.value('a'), null);
    assert.equal(h.store.revision, 1);
  });

  test('get / get-tree / delete-tree inside a txn see earlier ops', () => {
    const h = new Harness();
    consul(h, set('dir/a', '1'), set('dir/b', '2'), set('other', '3'));
    const result = consul(
      h,
      set('dir/c', '3'),
      { verb: 'get-tree', key: b('dir/') },
      { verb: 'delete-tree', key: b('dir/') },
      {
        verb: 'get-tree',
        key: b('dir/'),
      },
    );
    assert.equal(result.type, 'consulTxn');
    if (result.type !== 'consulTxn') return;
    assert.deepEqual(
      result.results[1]!.kvs.map((kv) => s(kv.key)),
      ['dir/a', 'dir/b', 'dir/c'],
    );
    assert.equal(result.results[3]!.kvs.length, 0);
    assert.deepEqual(
      h.store.list(b('')).map((kv) => s(kv.key)),
      ['other'],
    );
    assert.equal(errorCode(consul(h, { verb: 'get', key: b('dir/a') })), StoreErrorCode.KeyNotFound);
  });

  test('keys with separator roll up like GET ?keys&separator=/', () => {
    const h = new Harness();
    consul(h, set('a/b/c', '1'), set('a/b/d', '1'), set('a/e', '1'), set('b', '1'));
    assert.deepEqual(h.store.listKeys(b('a/'), b('/')).map(s), ['a/b/', 'a/e']);
  });

  test('txn op limit', () => {
    const h = new Harness({ limits: { maxTxnOps: 3 } });
    assert.equal(
      errorCode(consul(h, set('a', '1'), set('b', '1'), set('c', '1'), set('d', '1'))),
      StoreErrorCode.TooManyOps,
    );
  });

  test('a key written through etcd is visible to Consul and the other way round', () => {
    const h = new Harness();
    h.put('shared', 'from-etcd');
    const result = consul(h, { verb: 'get', key: b('shared') });
    assert.equal(result.type === 'consulTxn' && s(result.results[0]!.kvs[0]!.value), 'from-etcd');
    consul(h, set('shared', 'from-consul', 7));
    const kv = h.store.get(b('shared'))!;
    assert.deepEqual([s(kv.value), kv.version, kv.flags], ['from-consul', 2, 7]);
  });
});
