import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Agent } from '../../src/agent/agent.js';
import { type HttpCall, httpCaller, startInProcessAgent } from './in-process-agent.js';

// Consul's session endpoints (/v1/session/*) and their effect on KV locks, over plain HTTP
// against a dev agent.

let agent: Agent;
let call: HttpCall;
const NODE = 'session-http';

before(async () => {
  let base: string;
  ({ agent, base } = await startInProcessAgent({ node: NODE }));
  call = httpCaller(base);
});

after(async () => {
  await agent.shutdown();
});

const create = async (body: unknown = {}) => {
  const reply = await call('PUT', '/v1/session/create', body);
  assert.equal(reply.status, 200, reply.text);
  return (reply.json as { ID: string }).ID;
};

const b64 = (text: string) => Buffer.from(text).toString('base64');

/** A well-formed UUID this server did not issue (Consul's own are random v4 UUIDs). */
const FOREIGN = 'adf4238a-882b-9ddc-4a9d-5b6758e4159e';

describe('session ids this server did not issue', () => {
  test('info is [], destroy is true, renew is 404, as for any unknown session', async () => {
    const info = await call('GET', `/v1/session/info/${FOREIGN}`);
    assert.equal(info.status, 200);
    assert.deepEqual(info.json, []);
    assert.ok(info.index >= 1);
    const destroy = await call('PUT', `/v1/session/destroy/${FOREIGN}`);
    assert.equal(destroy.status, 200);
    assert.equal(destroy.json, true);
    const renew = await call('PUT', `/v1/session/renew/${FOREIGN}`);
    assert.equal(renew.status, 404);
    assert.equal(renew.text, `Session id '${FOREIGN}' not found`);
  });

  test('text that is not a UUID is 400', async () => {
    for (const path of ['info/not-a-uuid', 'renew/1234']) {
      assert.equal((await call(path.startsWith('info') ? 'GET' : 'PUT', `/v1/session/${path}`)).status, 400);
    }
    assert.equal((await call('PUT', '/v1/kv/ids/k?acquire=nope', 'x')).status, 400);
  });

  test('?acquire with an unknown UUID is 500 "invalid session"; ?release answers false', async () => {
    const acquire = await call('PUT', `/v1/kv/ids/lock?acquire=${FOREIGN}`, 'x');
    assert.equal(acquire.status, 500);
    assert.match(acquire.text, new RegExp(`invalid session "${FOREIGN}"`));
    assert.equal((await call('GET', '/v1/kv/ids/lock')).status, 404, 'nothing written');
    await call('PUT', '/v1/kv/ids/lock', 'x');
    const release = await call('PUT', `/v1/kv/ids/lock?release=${FOREIGN}`, 'x');
    assert.equal(release.status, 200);
    assert.equal(release.json, false);
  });

  test('txn ops naming an unknown UUID fail as Consul txns do, named by that UUID', async () => {
    const lock = await call('PUT', '/v1/txn', [
      { KV: { Verb: 'lock', Key: 'ids/txn', Value: b64('x'), Session: FOREIGN } },
    ]);
    assert.equal(lock.status, 409);
    const [lockError] = (lock.json as { Errors: { OpIndex: number; What: string }[] }).Errors;
    assert.equal(lockError!.OpIndex, 0);
    assert.match(lockError!.What, new RegExp(`invalid session "${FOREIGN}"`));

    const destroy = await call('PUT', '/v1/txn', [
      { KV: { Verb: 'set', Key: 'ids/other', Value: b64('y') } },
      { Session: { Verb: 'delete', Session: { ID: FOREIGN } } },
    ]);
    assert.equal(destroy.status, 409);
    const [destroyError] = (destroy.json as { Errors: { OpIndex: number; What: string }[] }).Errors;
    assert.equal(destroyError!.OpIndex, 1);
    assert.match(destroyError!.What, new RegExp(FOREIGN));

    await call('PUT', '/v1/kv/ids/checked', 'x');
    const check = await call('PUT', '/v1/txn', [
      { KV: { Verb: 'check-session', Key: 'ids/checked', Session: FOREIGN } },
    ]);
    assert.equal(check.status, 409);
  });
});

describe('txn check-session', () => {
  test('no Session passes on an unlocked key and fails on a locked one; the holder passes', async () => {
    const id = await create({ LockDelay: '0s' });
    assert.equal((await call('PUT', `/v1/kv/checks/held?acquire=${id}`, 'x')).json, true);
    const unlocked = await call('PUT', '/v1/txn', [
      { KV: { Verb: 'set', Key: 'checks/free', Value: b64('y') } },
      { KV: { Verb: 'check-session', Key: 'checks/free' } },
    ]);
    assert.equal(unlocked.status, 200, unlocked.text);
    const locked = await call('PUT', '/v1/txn', [{ KV: { Verb: 'check-session', Key: 'checks/held' } }]);
    assert.equal(locked.status, 409);
    const holder = await call('PUT', '/v1/txn', [
      { KV: { Verb: 'check-session', Key: 'checks/held', Session: id } },
    ]);
    assert.equal(holder.status, 200, holder.text);
  });
});

describe('session ServiceChecks', () => {
  const node = 'svc-node';
  const register = (status: string, checkId = 'service:web') =>
    call('PUT', '/v1/catalog/register', {
      Node: node,
      Address: '10.1.1.1',
      Service: { ID: 'web', Service: 'web', Port: 80 },
      Check: { CheckID: checkId, Name: 'web alive', ServiceID: 'web', Status: status },
    });
  const info = async (id: string) =>
    (await call('GET', `/v1/session/info/${id}`)).json as Record<string, unknown>[];

  test('create checks each service check exists and is not critical; info echoes them', async () => {
    assert.equal((await register('passing')).status, 200);
    const id = await create({ Node: node, NodeChecks: [], ServiceChecks: [{ ID: 'service:web' }] });
    const [session] = await info(id);
    assert.deepEqual(session!.ServiceChecks, [{ ID: 'service:web', Namespace: '' }]);
    assert.deepEqual(session!.NodeChecks, []);

    const missing = await call('PUT', '/v1/session/create', {
      Node: node,
      NodeChecks: [],
      ServiceChecks: [{ ID: 'service:nope' }],
    });
    assert.equal(missing.status, 500);
    assert.equal(missing.text, "Missing check 'service:nope' registration");

    assert.equal((await register('critical', 'service:web-down')).status, 200);
    const critical = await call('PUT', '/v1/session/create', {
      Node: node,
      NodeChecks: [],
      ServiceChecks: [{ ID: 'service:web-down', Namespace: '' }],
    });
    assert.equal(critical.status, 500);
    assert.equal(critical.text, "Check 'service:web-down' is in critical state");
    assert.equal(
      (await call('PUT', '/v1/session/create', { ServiceChecks: [{ Namespace: 'x' }] })).status,
      400,
    );
    // A session with no service checks shows null, as Consul.
    const [plain] = await info(await create());
    assert.equal(plain!.ServiceChecks, null);
    assert.deepEqual(plain!.NodeChecks, ['serfHealth']);
  });

  test('a listed service check going critical invalidates the session and releases its locks', async () => {
    assert.equal((await register('passing')).status, 200);
    const id = await create({
      Node: node,
      NodeChecks: [],
      ServiceChecks: [{ ID: 'service:web' }],
      LockDelay: '0s',
    });
    assert.equal((await call('PUT', `/v1/kv/svc/lock?acquire=${id}`, 'x')).json, true);
    assert.equal((await register('critical')).status, 200);
    assert.deepEqual(await info(id), []);
    const [entry] = (await call('GET', '/v1/kv/svc/lock')).json as { Session?: string }[];
    assert.equal(entry!.Session, undefined);
  });

  test('deregistering a listed service check invalidates the session', async () => {
    assert.equal((await register('passing')).status, 200);
    const id = await create({ Node: node, NodeChecks: [], ServiceChecks: [{ ID: 'service:web' }] });
    assert.equal((await info(id)).length, 1);
    assert.equal(
      (await call('PUT', '/v1/catalog/deregister', { Node: node, CheckID: 'service:web' })).status,
      200,
    );
    assert.deepEqual(await info(id), []);
  });
});

describe('session endpoints', () => {
  test('/v1/session/node/:node lists the sessions of that node only', async () => {
    const mine = await create({ Name: 'on-agent' });
    const listed = (await call('GET', `/v1/session/node/${NODE}`)).json as { ID: string; Node: string }[];
    assert.ok(listed.some((s) => s.ID === mine));
    assert.ok(listed.every((s) => s.Node === NODE));
    const none = await call('GET', '/v1/session/node/no-such-node');
    assert.equal(none.status, 200);
    assert.deepEqual(none.json, []);
  });

  test('Behavior=delete: destroying the session deletes the keys it holds', async () => {
    const id = await create({ Behavior: 'delete', LockDelay: '0s' });
    const [session] = (await call('GET', `/v1/session/info/${id}`)).json as { Behavior: string }[];
    assert.equal(session!.Behavior, 'delete');
    assert.equal((await call('PUT', `/v1/kv/eph/a?acquire=${id}`, 'a')).json, true);
    assert.equal((await call('PUT', `/v1/kv/eph/b?acquire=${id}`, 'b')).json, true);
    await call('PUT', '/v1/kv/eph/kept', 'c');
    assert.equal((await call('PUT', `/v1/session/destroy/${id}`)).json, true);
    assert.deepEqual((await call('GET', '/v1/kv/eph/?keys')).json, ['eph/kept']);
  });

  test('a blocking query on /v1/session/list returns when a session is created', async () => {
    const first = await call('GET', '/v1/session/list');
    const waiting = call('GET', `/v1/session/list?index=${first.index}&wait=5m`);
    const id = await create({ Name: 'wakes-the-list' });
    const woke = await waiting;
    assert.ok(woke.index > first.index);
    assert.ok((woke.json as { ID: string }[]).some((s) => s.ID === id));
  });
});
