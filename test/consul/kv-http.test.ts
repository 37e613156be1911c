import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Etcd3 } from 'etcd3';
import type { Agent } from '../../src/agent/agent.js';
import { restore, snapshot, utf8 } from '../../src/store/index.js';
import { type HttpCall, type HttpReply, httpCaller, startInProcessAgent } from './in-process-agent.js';

// Consul's KV endpoint (/v1/kv) and the KV verbs of /v1/txn over plain HTTP against a dev
// agent: the corners of kvs_endpoint.go that clients rely on.

let agent: Agent;
let base = '';
let call: HttpCall;

before(async () => {
  ({ agent, base } = await startInProcessAgent({ node: 'kv-http' }));
  call = httpCaller(base);
});

after(async () => {
  await agent.shutdown();
});

const json = (reply: HttpReply) => JSON.parse(reply.text) as unknown;
const b64 = (text: string) => Buffer.from(text).toString('base64');

// Go's api.Lock and api.Semaphore mark their keys with these uint64 flags.
const LOCK_FLAGS = '3303164778254188568'; // 0x2ddccbc058a50c18
const SEMAPHORE_FLAGS = '16209363699666365920'; // 0xe0f69a2baa414de0

describe('an empty store', () => {
  // Runs first, before any key is written.
  test('?keys at the root is [] (not 404); ?recurse at the root is 404, as Consul', async () => {
    const keys = await call('GET', '/v1/kv/?keys');
    assert.equal(keys.status, 200);
    assert.deepEqual(json(keys), []);
    assert.ok(Number(keys.headers.get('x-consul-index')) >= 1);
    assert.equal((await call('GET', '/v1/kv/?recurse')).status, 404);
    assert.equal((await call('GET', '/v1/kv/nothing/?keys')).status, 404, 'a prefix with no keys');
  });
});

describe('64-bit KV flags', () => {
  test('?flags= beyond 2^53 comes back as the same decimal digits', async () => {
    assert.equal((await call('PUT', `/v1/kv/flags/lock?flags=${LOCK_FLAGS}`, 'x')).text, 'true');
    const got = await call('GET', '/v1/kv/flags/lock');
    assert.equal(got.status, 200);
    assert.match(got.headers.get('content-type') ?? '', /application\/json/);
    assert.match(got.text, new RegExp(`"Flags":${LOCK_FLAGS}[,}]`));
    assert.match((await call('GET', '/v1/kv/flags/?recurse')).text, new RegExp(`"Flags":${LOCK_FLAGS}[,}]`));
    const max = '18446744073709551615';
    assert.equal((await call('PUT', `/v1/kv/flags/max?flags=${max}`, 'x')).text, 'true');
    assert.match((await call('GET', '/v1/kv/flags/max')).text, new RegExp(`"Flags":${max}[,}]`));
    const over = await call('PUT', '/v1/kv/flags/over?flags=18446744073709551616', 'x');
    assert.equal(over.status, 400);
    assert.equal((await call('PUT', '/v1/kv/flags/bad?flags=-1', 'x')).status, 400);
  });

  test('txn set with a large Flags literal keeps every digit, in the result and the store', async () => {
    const body = `[{"KV":{"Verb":"set","Key":"flags/sem","Value":"${b64('s')}","Flags":${SEMAPHORE_FLAGS}}},
      {"KV":{"Verb":"get","Key":"flags/sem"}}]`;
    const reply = await call('PUT', '/v1/txn', body);
    assert.equal(reply.status, 200, reply.text);
    assert.equal(reply.text.split(`"Flags":${SEMAPHORE_FLAGS}`).length - 1, 2, reply.text);
    assert.match((await call('GET', '/v1/kv/flags/sem')).text, new RegExp(`"Flags":${SEMAPHORE_FLAGS}[,}]`));
    const tooBig = await call(
      'PUT',
      '/v1/txn',
      '[{"KV":{"Verb":"set","Key":"flags/x","Flags":18446744073709551616}}]',
    );
    assert.equal(tooBig.status, 400);
    const fraction = await call('PUT', '/v1/txn', '[{"KV":{"Verb":"set","Key":"flags/x","Flags":1.5}}]');
    assert.equal(fraction.status, 400);
  });

  test("a snapshot of the agent's store keeps the flags exactly", () => {
    const restored = restore(snapshot(agent.server.store));
    assert.equal(restored.get(utf8('flags/lock'))?.flags, BigInt(LOCK_FLAGS));
    assert.equal(restored.get(utf8('flags/sem'))?.flags, BigInt(SEMAPHORE_FLAGS));
  });
});

describe('KV endpoint corners', () => {
  test('DELETE ?recurse&cas is refused and deletes nothing', async () => {
    await call('PUT', '/v1/kv/tree/a', '1');
    await call('PUT', '/v1/kv/tree/b', '2');
    const refused = await call('DELETE', '/v1/kv/tree?recurse&cas=0');
    assert.equal(refused.status, 400);
    assert.equal(refused.text, 'Conflicting flags: cas cannot be used with recurse');
    assert.deepEqual(json(await call('GET', '/v1/kv/tree/?keys')), ['tree/a', 'tree/b']);
    assert.equal((await call('DELETE', '/v1/kv/tree?recurse')).text, 'true');
    assert.equal((await call('GET', '/v1/kv/tree/?keys')).status, 404);
  });

  test('DELETE ?cas deletes only at the current ModifyIndex', async () => {
    await call('PUT', '/v1/kv/cas/key', 'v');
    const [entry] = json(await call('GET', '/v1/kv/cas/key')) as { ModifyIndex: number }[];
    assert.equal((await call('DELETE', `/v1/kv/cas/key?cas=${entry!.ModifyIndex - 1}`)).text, 'false');
    assert.equal((await call('GET', '/v1/kv/cas/key')).status, 200, 'a stale cas deletes nothing');
    assert.equal((await call('DELETE', `/v1/kv/cas/key?cas=${entry!.ModifyIndex}`)).text, 'true');
    assert.equal((await call('GET', '/v1/kv/cas/key')).status, 404);
  });

  test('?keys with ?separator, and with the historical ?seperator spelling', async () => {
    for (const key of ['sep/a', 'sep/b/c', 'sep/b/d', 'sep/e/f/g']) await call('PUT', `/v1/kv/${key}`, 'x');
    const rolled = ['sep/a', 'sep/b/', 'sep/e/'];
    assert.deepEqual(json(await call('GET', '/v1/kv/sep/?keys&separator=/')), rolled);
    assert.deepEqual(json(await call('GET', '/v1/kv/sep/?keys&seperator=/')), rolled);
    // Both given: `separator` wins, as in Consul.
    assert.deepEqual(json(await call('GET', '/v1/kv/sep/?keys&seperator=/&separator=f')), [
      'sep/a',
      'sep/b/c',
      'sep/b/d',
      'sep/e/f',
    ]);
    assert.deepEqual(json(await call('GET', '/v1/kv/sep/?keys')), [
      'sep/a',
      'sep/b/c',
      'sep/b/d',
      'sep/e/f/g',
    ]);
  });

  test('?raw answers the bare value, unsniffable and sandboxed', async () => {
    await call('PUT', '/v1/kv/raw/page', '<script>alert(1)</script>');
    const raw = await call('GET', '/v1/kv/raw/page?raw');
    assert.equal(raw.status, 200);
    assert.equal(raw.text, '<script>alert(1)</script>');
    assert.match(raw.headers.get('content-type') ?? '', /^text\/plain/);
    assert.equal(raw.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(raw.headers.get('content-security-policy'), 'sandbox');
  });
});

describe('txn KV results', () => {
  test('only get and get-tree answer the Value; check-session with no Session checks the key is unlocked', async () => {
    await call('PUT', '/v1/kv/txnv/a', 'hello');
    const [entry] = json(await call('GET', '/v1/kv/txnv/a')) as { ModifyIndex: number }[];
    const reply = await call(
      'PUT',
      '/v1/txn',
      JSON.stringify([
        { KV: { Verb: 'check-index', Key: 'txnv/a', Index: entry!.ModifyIndex } },
        { KV: { Verb: 'check-session', Key: 'txnv/a' } },
        { KV: { Verb: 'check-session', Key: 'txnv/a', Session: '' } },
        { KV: { Verb: 'get', Key: 'txnv/a' } },
        { KV: { Verb: 'get-tree', Key: 'txnv/' } },
        { KV: { Verb: 'set', Key: 'txnv/b', Value: b64('bee') } },
      ]),
    );
    assert.equal(reply.status, 200, reply.text);
    const results = (json(reply) as { Results: { KV: { Key: string; Value: string | null } }[] }).Results;
    assert.deepEqual(
      results.map((r) => [r.KV.Key, r.KV.Value]),
      [
        ['txnv/a', null],
        ['txnv/a', null],
        ['txnv/a', null],
        ['txnv/a', b64('hello')],
        ['txnv/a', b64('hello')],
        ['txnv/b', null],
      ],
    );
  });
});

describe('?wait', () => {
  test('wait=0 blocks (with the default wait) until the key changes', async () => {
    await call('PUT', '/v1/kv/wait/key', 'one');
    const first = await call('GET', '/v1/kv/wait/key');
    const index = first.headers.get('x-consul-index');
    const waiting = call('GET', `/v1/kv/wait/key?index=${index}&wait=0`);
    await call('PUT', '/v1/kv/wait/key', 'two');
    const woke = await waiting;
    assert.equal(woke.status, 200);
    assert.equal((json(woke) as { Value: string }[])[0]!.Value, b64('two'));
  });

  test('a bare number is 400 "Invalid wait time", with or without ?index', async () => {
    for (const path of [
      '/v1/kv/wait/key?wait=10',
      '/v1/kv/wait/key?index=1&wait=10',
      '/v1/session/list?wait=x',
    ]) {
      const reply = await call('GET', path);
      assert.equal(reply.status, 400, path);
      assert.equal(reply.text, 'Invalid wait time');
    }
  });
});

describe('method and size limits', () => {
  test('a known non-KV path with the wrong method is 405 with Allow', async () => {
    const create = await call('GET', '/v1/session/create');
    assert.equal(create.status, 405);
    assert.equal(create.headers.get('allow'), 'PUT');
    const nodes = await call('DELETE', '/v1/catalog/nodes');
    assert.equal(nodes.status, 405);
    assert.match(nodes.headers.get('allow') ?? '', /GET/);
    assert.equal((await call('GET', '/v1/no/such/endpoint')).status, 404);
  });

  test('limits.kv_max_value_size from a config file sets the 413 limit of PUT and txn', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'conclave-kv-limit-'));
    const file = join(dir, 'limits.json');
    await writeFile(file, JSON.stringify({ limits: { kv_max_value_size: 1024 } }));
    const small = await startInProcessAgent({ node: 'kv-limit', configFile: [file] });
    try {
      const put = (size: number) =>
        fetch(`${small.base}/v1/kv/big`, { method: 'PUT', body: 'x'.repeat(size) }).then(async (r) => ({
          status: r.status,
          text: await r.text(),
        }));
      assert.deepEqual(await put(1024), { status: 200, text: 'true' });
      const tooBig = await put(1025);
      assert.equal(tooBig.status, 413);
      assert.match(tooBig.text, /1025 bytes.*max size: 1024 bytes/);
      const txn = await fetch(`${small.base}/v1/txn`, {
        method: 'PUT',
        body: JSON.stringify([{ KV: { Verb: 'set', Key: 'big', Value: b64('y'.repeat(1025)) } }]),
      });
      assert.equal(txn.status, 413);
      await txn.text();
    } finally {
      await small.agent.shutdown();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('one store under two APIs', () => {
  test('a key written through the etcd API (etcd3 client, gRPC) reads through Consul, and back', async () => {
    const etcdAddress = agent.server.self().etcd;
    assert.ok(etcdAddress, 'the agent serves the etcd API');
    const etcd = new Etcd3({ hosts: `http://${etcdAddress}` });
    try {
      const binary = Buffer.from([0, 1, 2, 250, 255]);
      await etcd.put('both/from-etcd').value(binary);
      const [entry] = json(await call('GET', '/v1/kv/both/from-etcd')) as {
        Key: string;
        Value: string;
        Flags: number;
        Session?: string;
      }[];
      assert.equal(entry!.Key, 'both/from-etcd');
      assert.equal(entry!.Value, binary.toString('base64'));
      assert.equal(entry!.Flags, 0);
      assert.equal(entry!.Session, undefined);
      const raw = await fetch(`${base}/v1/kv/both/from-etcd?raw`);
      assert.deepEqual(Buffer.from(await raw.arrayBuffer()), binary);

      await call('PUT', `/v1/kv/both/from-consul?flags=${LOCK_FLAGS}`, 'hi');
      assert.equal(await etcd.get('both/from-consul').string(), 'hi');
      // An etcd write keeps the Consul flags of the key it overwrites.
      await etcd.put('both/from-consul').value('again');
      assert.match(
        (await call('GET', '/v1/kv/both/from-consul')).text,
        new RegExp(`"Flags":${LOCK_FLAGS}[,}]`),
      );
    } finally {
      etcd.close();
    }
  });
});
