import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type DevAgent, startDevAgent } from './dev-agent.js';
import { hasCommand, run, skipUnless } from './tools.js';

// curl, unmodified, against a dev agent: the status codes, headers and bodies Consul clients
// parse (X-Consul-Index on every read, 404 with an empty body, 405, 413, 400, txn 409).

const skip = skipUnless(hasCommand('curl'), 'curl');
let agent: DevAgent | null = null;
let base = '';

before(async () => {
  if (skip) return;
  agent = await startDevAgent();
  base = agent.base;
});

after(() => {
  agent?.stop();
});

interface CurlResult {
  status: number;
  headers: Record<string, string>;
  body: string;
}

async function curl(method: string, path: string, data?: string): Promise<CurlResult> {
  const args = ['-s', '-i', '-X', method, `${base}${path}`];
  // The body goes through stdin: a large value would not fit on a command line.
  if (data !== undefined) args.push('--data-binary', '@-');
  const r = await run(
    'curl',
    args,
    data === undefined ? { timeoutMs: 20_000 } : { timeoutMs: 20_000, input: data },
  );
  assert.equal(r.code, 0, r.stderr);
  const [head, ...rest] = r.stdout.split('\r\n\r\n');
  const lines = (head ?? '').split('\r\n');
  const status = Number(lines[0]?.split(' ')[1]);
  const headers: Record<string, string> = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
  }
  return { status, headers, body: rest.join('\r\n\r\n') };
}

test('curl: KV status codes, bodies and Consul headers', { skip, timeout: 60_000 }, async () => {
  const put = await curl('PUT', '/v1/kv/web/config?flags=7', 'hello');
  assert.equal(put.status, 200);
  assert.equal(put.body, 'true');

  const get = await curl('GET', '/v1/kv/web/config');
  assert.equal(get.status, 200);
  assert.match(get.headers['content-type'] ?? '', /application\/json/);
  assert.ok(Number(get.headers['x-consul-index']) >= 1);
  assert.equal(get.headers['x-consul-knownleader'], 'true');
  assert.ok('x-consul-lastcontact' in get.headers);
  const [entry] = JSON.parse(get.body) as { Key: string; Value: string; Flags: number }[];
  assert.deepEqual(
    [entry!.Key, Buffer.from(entry!.Value, 'base64').toString(), entry!.Flags],
    ['web/config', 'hello', 7],
  );

  // A missing key: 404, empty body, and still an index so watches can block on it.
  const missing = await curl('GET', '/v1/kv/web/nothing');
  assert.equal(missing.status, 404);
  assert.equal(missing.body, '');
  assert.ok(Number(missing.headers['x-consul-index']) >= 1);

  const raw = await curl('GET', '/v1/kv/web/config?raw');
  assert.equal(raw.body, 'hello');

  assert.equal((await curl('POST', '/v1/kv/web/config', 'x')).status, 405);
  const big = await curl('PUT', '/v1/kv/web/big', 'x'.repeat(600 * 1024));
  assert.equal(big.status, 413);
  const bad = await curl('PUT', '/v1/kv/web/config?cas=abc', 'x');
  assert.equal(bad.status, 400);
  assert.match(bad.body, /cas/);
  const conflicting = await curl('GET', '/v1/kv/web/config?stale&consistent');
  assert.equal(conflicting.status, 400);

  // A blocking query with a short wait returns the same index when nothing changed.
  const index = get.headers['x-consul-index'];
  const began = Date.now();
  const blocked = await curl('GET', `/v1/kv/web/config?index=${index}&wait=300ms`);
  assert.equal(blocked.status, 200);
  assert.equal(blocked.headers['x-consul-index'], index);
  assert.ok(Date.now() - began >= 250);
  // An index from the future returns at once with the real, lower index.
  const future = await curl('GET', '/v1/kv/web/config?index=999999999&wait=10s');
  assert.equal(future.headers['x-consul-index'], index);
});

test('curl: /v1/txn applies all or nothing, 409 with Errors', { skip, timeout: 60_000 }, async () => {
  const ok = await curl(
    'PUT',
    '/v1/txn',
    JSON.stringify([
      { KV: { Verb: 'set', Key: 'txn/a', Value: Buffer.from('1').toString('base64') } },
      { KV: { Verb: 'get', Key: 'txn/a' } },
    ]),
  );
  assert.equal(ok.status, 200);
  const body = JSON.parse(ok.body) as {
    Results: { KV: { Key: string; Value: string | null } }[];
    Errors: null;
  };
  assert.equal(body.Errors, null);
  assert.equal(body.Results.length, 2);
  assert.equal(body.Results[0]!.KV.Value, null);
  assert.equal(Buffer.from(body.Results[1]!.KV.Value!, 'base64').toString(), '1');

  const failed = await curl(
    'PUT',
    '/v1/txn',
    JSON.stringify([
      { KV: { Verb: 'set', Key: 'txn/b', Value: Buffer.from('2').toString('base64') } },
      { KV: { Verb: 'check-index', Key: 'txn/a', Index: 1 } },
    ]),
  );
  assert.equal(failed.status, 409);
  const errors = JSON.parse(failed.body) as { Results: null; Errors: { OpIndex: number; What: string }[] };
  assert.equal(errors.Errors[0]!.OpIndex, 1);
  assert.equal((await curl('GET', '/v1/kv/txn/b')).status, 404, 'nothing of a failed txn applied');

  // Reads only: served as a read (Consul's Txn.Read), ?stale accepted, checks still fail with 409.
  const reads = await curl(
    'PUT',
    '/v1/txn?stale',
    JSON.stringify([
      { KV: { Verb: 'get', Key: 'txn/a' } },
      { KV: { Verb: 'check-not-exists', Key: 'txn/b' } },
    ]),
  );
  assert.equal(reads.status, 200, reads.body);
  const read = JSON.parse(reads.body) as { Results: { KV: { Value: string | null } }[] };
  assert.equal(Buffer.from(read.Results[0]!.KV.Value!, 'base64').toString(), '1');
  const readFailed = await curl(
    'PUT',
    '/v1/txn',
    JSON.stringify([{ KV: { Verb: 'get', Key: 'txn/a' } }, { KV: { Verb: 'get', Key: 'txn/missing' } }]),
  );
  assert.equal(readFailed.status, 409);
  assert.equal((JSON.parse(readFailed.body) as { Errors: { OpIndex: number }[] }).Errors[0]!.OpIndex, 1);

  const tooMany = await curl(
    'PUT',
    '/v1/txn',
    JSON.stringify(Array.from({ length: 65 }, () => ({ KV: { Verb: 'get', Key: 'x' } }))),
  );
  assert.equal(tooMany.status, 413);
  assert.equal((await curl('PUT', '/v1/txn', '{not json')).status, 400);
});

test('curl: sessions and agent endpoints', { skip, timeout: 60_000 }, async () => {
  const created = await curl('PUT', '/v1/session/create', '{"name":"s","ttl":"10s","behavior":"delete"}');
  assert.equal(created.status, 200);
  const { ID } = JSON.parse(created.body) as { ID: string };
  assert.match(ID, /^[0-9a-f-]{36}$/);
  const info = JSON.parse((await curl('GET', `/v1/session/info/${ID}`)).body) as {
    Behavior: string;
    TTL: string;
  }[];
  assert.deepEqual([info[0]!.Behavior, info[0]!.TTL], ['delete', '10s']);
  assert.equal((await curl('PUT', '/v1/session/create', '{"TTL":"1s"}')).status, 400);
  assert.equal((await curl('PUT', `/v1/session/destroy/${ID}`)).body, 'true');
  assert.equal((await curl('GET', `/v1/session/info/${ID}`)).body, '[]');

  const members = JSON.parse((await curl('GET', '/v1/agent/members')).body) as { Status: number }[];
  assert.equal(members.length, 1);
  assert.equal(members[0]!.Status, 1);
  const self = JSON.parse((await curl('GET', '/v1/agent/self')).body) as { Config: { Server: boolean } };
  assert.equal(self.Config.Server, true);
});
