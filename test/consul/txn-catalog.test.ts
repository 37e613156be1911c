import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import Consul from 'consul';
import type { Agent } from '../../src/agent/agent.js';
import { type HttpCall, httpCaller, startInProcessAgent } from './in-process-agent.js';

// Consul's /v1/txn with Node, Service, Check and Session operations beside KV ones, over plain
// HTTP against a dev agent (api-docs/txn), and through the consul npm client.

let agent: Agent;
let call: HttpCall;

before(async () => {
  let base: string;
  ({ agent, base } = await startInProcessAgent({ node: 'txn' }));
  call = httpCaller(base);
});

after(async () => {
  await agent.shutdown();
});

type TxnReply = { Results: Record<string, Record<string, unknown>>[] | null; Errors: unknown };
const txn = async (ops: unknown[]) => {
  const reply = await call('PUT', '/v1/txn', ops);
  return { ...reply, body: reply.json as TxnReply };
};

const b64 = (text: string) => Buffer.from(text).toString('base64');

describe('/v1/txn catalog and session operations', () => {
  test('KV, Node, Service and Check ops in one txn; results in Consul shapes', async () => {
    const reply = await txn([
      { KV: { Verb: 'set', Key: 'txn/config', Value: b64('on') } },
      {
        Node: {
          Verb: 'set',
          Node: {
            ID: '67539c9d-b948-ba67-edd4-d07a676d6673',
            Node: 'bar',
            Address: '192.168.0.1',
            Meta: { rack: 'r1' },
          },
        },
      },
      {
        Service: {
          Verb: 'set',
          Node: 'bar',
          Service: { ID: 'web1', Service: 'web', Tags: ['v1'], Port: 8080, Meta: { version: '1' } },
        },
      },
      {
        Check: {
          Verb: 'set',
          Check: {
            Node: 'bar',
            CheckID: 'service:web1',
            Name: 'Web HTTP',
            Status: 'passing',
            ServiceID: 'web1',
          },
        },
      },
      { KV: { Verb: 'get', Key: 'txn/config' } },
    ]);
    assert.equal(reply.status, 200, reply.text);
    assert.equal(reply.body.Errors, null);
    const results = reply.body.Results!;
    assert.deepEqual(
      results.map((r) => Object.keys(r)[0]),
      ['KV', 'Node', 'Service', 'Check', 'KV'],
    );
    const [kvSet, node, service, check, kvGet] = results.map((r) => Object.values(r)[0]!);
    assert.equal(kvSet!.Value, null, 'KV writes answer without the value');
    assert.equal(kvGet!.Value, b64('on'));
    assert.deepEqual(
      [node!.Node, node!.Address, node!.Datacenter, node!.Meta, node!.ID],
      ['bar', '192.168.0.1', 'dc1', { rack: 'r1' }, '67539c9d-b948-ba67-edd4-d07a676d6673'],
    );
    assert.deepEqual(
      [service!.ID, service!.Service, service!.Port, service!.Tags],
      ['web1', 'web', 8080, ['v1']],
    );
    assert.deepEqual([check!.CheckID, check!.Status, check!.ServiceName], ['service:web1', 'passing', 'web']);
    // One revision for the whole txn: every record carries it, and so does X-Consul-Index.
    const index = node!.ModifyIndex as number;
    assert.equal(reply.index, index);
    assert.deepEqual([kvGet!.ModifyIndex, service!.ModifyIndex, check!.ModifyIndex], [index, index, index]);

    const health = await call('GET', '/v1/health/service/web?passing');
    assert.equal(health.status, 200);
    const entries = health.json as { Node: { Node: string }; Service: { ID: string } }[];
    assert.deepEqual(
      entries.map((e) => [e.Node.Node, e.Service.ID]),
      [['bar', 'web1']],
    );
  });

  test('a failing op answers 409 with OpIndex, and nothing before it applied', async () => {
    const before = await call('GET', '/v1/catalog/services');
    const reply = await txn([
      { KV: { Verb: 'set', Key: 'txn/rolled-back', Value: b64('x') } },
      { Node: { Verb: 'set', Node: { Node: 'ghost', Address: '10.9.9.9' } } },
      { Service: { Verb: 'set', Node: 'ghost', Service: { ID: 'ghost-svc', Service: 'ghost' } } },
      { Service: { Verb: 'set', Node: 'nowhere', Service: { ID: 'db1', Service: 'db' } } },
    ]);
    assert.equal(reply.status, 409, reply.text);
    assert.deepEqual(reply.body, {
      Results: null,
      Errors: [{ OpIndex: 3, What: 'Missing node registration' }],
    });
    assert.equal((await call('GET', '/v1/kv/txn/rolled-back')).status, 404);
    assert.equal((await call('GET', '/v1/catalog/node/ghost')).json, null);
    const after = await call('GET', '/v1/catalog/services');
    assert.deepEqual(after.json, before.json);
    assert.equal(after.index, before.index, 'a rolled-back txn moves no blocking-query index');
  });

  test('cas and delete-cas on ModifyIndex; get fails on a missing record', async () => {
    const got = await txn([{ Service: { Verb: 'get', Node: 'bar', Service: { ID: 'web1' } } }]);
    assert.equal(got.status, 200, got.text);
    const modifyIndex = got.body.Results![0]!.Service!.ModifyIndex as number;

    const stale = await txn([
      {
        Service: {
          Verb: 'cas',
          Node: 'bar',
          Service: { ID: 'web1', Service: 'web', Port: 9090, ModifyIndex: modifyIndex - 1 },
        },
      },
    ]);
    assert.equal(stale.status, 409);
    assert.deepEqual(stale.body.Errors, [
      { OpIndex: 0, What: 'failed to set service "web1" on node "bar", index is stale' },
    ]);
    const cas = await txn([
      {
        Service: {
          Verb: 'cas',
          Node: 'bar',
          Service: { ID: 'web1', Service: 'web', Port: 9090, ModifyIndex: modifyIndex },
        },
      },
    ]);
    assert.equal(cas.status, 200, cas.text);
    assert.equal(cas.body.Results![0]!.Service!.Port, 9090);

    const check = await txn([{ Check: { Verb: 'get', Check: { Node: 'bar', CheckID: 'service:web1' } } }]);
    const checkIndex = check.body.Results![0]!.Check!.ModifyIndex as number;
    const deleted = await txn([
      {
        Check: {
          Verb: 'delete-cas',
          Check: { Node: 'bar', CheckID: 'service:web1', ModifyIndex: checkIndex },
        },
      },
      { Check: { Verb: 'get', Check: { Node: 'bar', CheckID: 'service:web1' } } },
    ]);
    assert.equal(deleted.status, 409, 'the get after the delete sees the delete, and fails');
    assert.deepEqual(deleted.body.Errors, [
      { OpIndex: 1, What: 'check "service:web1" on node "bar" doesn\'t exist' },
    ]);
    const nodeGet = await txn([{ Node: { Verb: 'get', Node: { Node: 'bar' } } }]);
    const nodeIndex = nodeGet.body.Results![0]!.Node!.ModifyIndex as number;
    const nodeDelete = await txn([
      {
        Check: {
          Verb: 'delete-cas',
          Check: { Node: 'bar', CheckID: 'service:web1', ModifyIndex: checkIndex },
        },
      },
      { Node: { Verb: 'delete-cas', Node: { Node: 'bar', ModifyIndex: nodeIndex } } },
    ]);
    assert.equal(nodeDelete.status, 200, nodeDelete.text);
    assert.deepEqual(nodeDelete.body.Results, [], 'deletes return no results');
    assert.equal((await call('GET', '/v1/catalog/node/bar')).json, null);
    assert.deepEqual((await call('GET', '/v1/catalog/service/web')).json, []);
  });

  test('Session delete releases the session’s locks', async () => {
    const register = await txn([{ Node: { Verb: 'set', Node: { Node: 'worker', Address: '10.0.0.7' } } }]);
    assert.equal(register.status, 200, register.text);
    const created = await call('PUT', '/v1/session/create', { Node: 'worker', Checks: [], LockDelay: '0s' });
    assert.equal(created.status, 200, created.text);
    const id = (created.json as { ID: string }).ID;
    assert.equal((await call('PUT', `/v1/kv/txn/leader?acquire=${id}`, 'me')).json, true);

    const ended = await txn([
      { KV: { Verb: 'check-session', Key: 'txn/leader', Session: id } },
      { Session: { Verb: 'delete', Session: { ID: id, Node: 'worker' } } },
    ]);
    assert.equal(ended.status, 200, ended.text);
    const entry = (await call('GET', '/v1/kv/txn/leader')).json as { Session?: string; LockIndex: number }[];
    assert.equal(entry[0]!.Session, undefined, 'the lock is released');
    assert.equal(entry[0]!.LockIndex, 1);
    assert.deepEqual((await call('GET', `/v1/session/info/${id}`)).json, []);

    const again = await txn([{ Session: { Verb: 'delete', Session: { ID: id } } }]);
    assert.equal(again.status, 409);
    assert.deepEqual(again.body.Errors, [
      { OpIndex: 0, What: `failed to delete session: session "${id}" not found` },
    ]);
  });

  test('malformed operations answer 400; more than 64 operations 413', async () => {
    const unknownVerb = await txn([{ Node: { Verb: 'lock', Node: { Node: 'x' } } }]);
    assert.equal(unknownVerb.status, 400);
    assert.match(unknownVerb.text, /Operation 0: unknown Node verb "lock"/);
    const empty = await txn([{}]);
    assert.equal(empty.status, 400);
    const noAddress = await txn([{ Node: { Verb: 'set', Node: { Node: 'x' } } }]);
    assert.equal(noAddress.status, 400);
    assert.match(noAddress.text, /Operation 0: Must provide node and address/);
    const noServiceId = await txn([{ Service: { Verb: 'get', Node: 'x', Service: {} } }]);
    assert.equal(noServiceId.status, 400);
    const badSession = await txn([{ Session: { Verb: 'delete', Session: { ID: 'not-a-uuid' } } }]);
    assert.equal(badSession.status, 400);
    const many = Array.from({ length: 65 }, (_, i) => ({
      Node: { Verb: 'get', Node: { Node: `n${i}` } },
    }));
    const tooMany = await txn(many);
    assert.equal(tooMany.status, 413);
    assert.match(tooMany.text, /too many operations \(65 > 64\)/);
  });

  test('consul npm client: transaction.create with Node and Service ops', async () => {
    const consul = new Consul({ host: '127.0.0.1', port: agent.httpPort });
    // The package's typings want {operations}; its code takes the raw op list (Consul's JSON).
    const create = consul.transaction.create.bind(consul.transaction) as unknown as (
      operations: unknown[],
    ) => Promise<unknown>;
    const result = (await create([
      { Node: { Verb: 'set', Node: { Node: 'npm-node', Address: '10.1.1.1' } } },
      { Service: { Verb: 'set', Node: 'npm-node', Service: { ID: 'api-1', Service: 'api', Port: 3000 } } },
      { KV: { Verb: 'set', Key: 'txn/npm', Value: b64('1') } },
    ])) as { Results: Record<string, { Node?: string; Service?: string }>[]; Errors: unknown };
    assert.equal(result.Errors, null);
    assert.equal(result.Results[0]!.Node!.Node, 'npm-node');
    assert.equal(result.Results[1]!.Service!.Service, 'api');
    const nodes = (await consul.catalog.service.nodes('api')) as { Node: string; ServicePort: number }[];
    assert.deepEqual(
      nodes.map((n) => [n.Node, n.ServicePort]),
      [['npm-node', 3000]],
    );
    await assert.rejects(
      create([
        { Service: { Verb: 'delete-cas', Node: 'npm-node', Service: { ID: 'api-1', ModifyIndex: 1 } } },
      ]),
      (err: Error & { response?: { statusCode?: number } }) => err.response?.statusCode === 409,
    );
  });

  test('a txn of reads only is served as a read: no Raft entry, checks fail with 409', async () => {
    assert.equal((await txn([{ KV: { Verb: 'set', Key: 'ro/a', Value: b64('1') } }])).status, 200);
    const a = (await call('GET', '/v1/kv/ro/a')).json as { ModifyIndex: number }[];
    const lastIndex = () => agent.server.raftStatus().lastIndex;
    const before = lastIndex();
    const reply = await txn([
      { KV: { Verb: 'get', Key: 'ro/a' } },
      { KV: { Verb: 'check-index', Key: 'ro/a', Index: a[0]!.ModifyIndex } },
      { KV: { Verb: 'get-tree', Key: 'ro/' } },
      { KV: { Verb: 'check-not-exists', Key: 'ro/missing' } },
      { Node: { Verb: 'get', Node: { Node: 'txn' } } },
      { KV: { Verb: 'get-or-empty', Key: 'ro/missing' } },
    ]);
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    const results = reply.body.Results!;
    assert.equal(Buffer.from(String(results[0]!.KV!.Value), 'base64').toString(), '1');
    assert.equal(results[1]!.KV!.Value, null, 'check-index answers the entry without its value');
    assert.equal(results[2]!.KV!.Key, 'ro/a');
    assert.equal(results[3]!.Node!.Node, 'txn');
    // get-or-empty (Consul 1.14+) of a missing key: the key, no value, zero indexes.
    assert.deepEqual(results[4]!.KV, {
      LockIndex: 0,
      Key: 'ro/missing',
      Flags: 0,
      Value: null,
      CreateIndex: 0,
      ModifyIndex: 0,
    });
    assert.ok(Number(reply.headers.get('x-consul-index')) >= a[0]!.ModifyIndex);
    assert.equal(reply.headers.get('x-consul-knownleader'), 'true');
    const failed = await txn([
      { KV: { Verb: 'get', Key: 'ro/a' } },
      { KV: { Verb: 'check-index', Key: 'ro/a', Index: a[0]!.ModifyIndex + 100 } },
    ]);
    assert.equal(failed.status, 409);
    assert.equal(failed.body.Results, null);
    assert.deepEqual((failed.body.Errors as { OpIndex: number }[])[0]!.OpIndex, 1);
    const stale = await call('PUT', '/v1/txn?stale', [{ KV: { Verb: 'get', Key: 'ro/a' } }]);
    assert.equal(stale.status, 200);
    assert.equal(lastIndex(), before, 'reads took no log entry');
  });
});
