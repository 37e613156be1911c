import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { Etcd3 } from 'etcd3';
import { type EtcdTestServer, startEtcdTestServer } from './harness.js';

// etcd 3.4's grpc-gateway JSON API over real HTTP/1.1 requests, on the same port as gRPC.

const TIMEOUT_MS = 5000;
const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');
const unb64 = (s: string) => Buffer.from(s, 'base64').toString();

let etcd: EtcdTestServer;
let base: string;
let client: Etcd3;

// biome-ignore lint/suspicious/noExplicitAny: JSON answers.
type Json = any;

async function post(path: string, body: unknown): Promise<{ status: number; json: Json; text: string }> {
  const res = await fetch(base + path, {
    method: 'POST',
    body: typeof body === 'string' ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(TIMEOUT_MS),
  });
  const text = await res.text();
  let json: Json = null;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: res.status, json, text };
}

async function ok(path: string, body: unknown): Promise<Json> {
  const res = await post(path, body);
  assert.equal(res.status, 200, `${path}: ${res.text}`);
  return res.json;
}

/** Reads a chunked JSON stream line by line. */
class Lines {
  private buffer = '';
  private readonly decoder = new TextDecoder();
  constructor(private readonly reader: ReadableStreamDefaultReader<Uint8Array>) {}

  async next(): Promise<Json> {
    const deadline = Date.now() + TIMEOUT_MS;
    for (;;) {
      const nl = this.buffer.indexOf('\n');
      if (nl >= 0) {
        const line = this.buffer.slice(0, nl);
        this.buffer = this.buffer.slice(nl + 1);
        return JSON.parse(line);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no stream line within ${TIMEOUT_MS} ms (have ${this.buffer})`);
      let timer: NodeJS.Timeout | undefined;
      const chunk = await Promise.race([
        this.reader.read(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error('stream read timed out')), left);
        }),
      ]).finally(() => clearTimeout(timer));
      if (chunk.done) throw new Error(`stream ended (have ${this.buffer})`);
      this.buffer += this.decoder.decode(chunk.value, { stream: true });
    }
  }
}

before(async () => {
  etcd = await startEtcdTestServer();
  base = `http://${etcd.endpoint}`;
  client = new Etcd3({ hosts: base });
});

after(async () => {
  client.close();
  await etcd.close();
});

describe('etcd JSON gateway', { timeout: 30_000 }, () => {
  test('GET /version and /health answer as etcd 3.4', async () => {
    const version = await fetch(`${base}/version`, { signal: AbortSignal.timeout(TIMEOUT_MS) });
    assert.equal(version.status, 200);
    assert.equal(version.headers.get('content-type'), 'application/json');
    assert.equal(await version.text(), '{"etcdserver":"3.4.23","etcdcluster":"3.4.0"}');
    const health = await fetch(`${base}/health`, { signal: AbortSignal.timeout(TIMEOUT_MS) });
    assert.equal(health.status, 200);
    assert.equal(await health.text(), '{"health":"true"}');
    const wrongMethod = await post('/version', {});
    assert.equal(wrongMethod.status, 405);
  });

  test('put and range round-trip base64 keys and values; zero fields are left out', async () => {
    const put = await ok('/v3/kv/put', { key: b64('gw/a'), value: b64('one') });
    assert.deepEqual(Object.keys(put), ['header']);
    assert.deepEqual(Object.keys(put.header), ['cluster_id', 'member_id', 'revision', 'raft_term']);
    assert.match(put.header.revision, /^\d+$/, '64-bit integers are JSON strings');

    const binary = Buffer.from([0x67, 0x77, 0x2f, 0xff, 0x00]); // "gw/\xff\0"
    await ok('/v3/kv/put', { key: b64(binary), value: b64(Buffer.from([1, 2, 3])) });

    const got = await ok('/v3/kv/range', { key: b64('gw/a') });
    assert.equal(got.count, '1');
    assert.equal(got.more, undefined, 'false is left out');
    assert.deepEqual(Object.keys(got.kvs[0]), ['key', 'create_revision', 'mod_revision', 'version', 'value']);
    assert.equal(unb64(got.kvs[0].key), 'gw/a');
    assert.equal(unb64(got.kvs[0].value), 'one');
    assert.equal(got.kvs[0].version, '1');
    assert.equal(got.kvs[0].mod_revision, put.header.revision);

    const prefix = await ok('/v3/kv/range', { key: b64('gw/'), range_end: b64('gw0') });
    assert.equal(prefix.count, '2');
    assert.deepEqual(Buffer.from(prefix.kvs[1].key, 'base64'), binary);

    // lowerCamelCase input names, numbers for 64-bit fields and enum names, as jsonpb reads them.
    const limited = await ok('/v3/kv/range', {
      key: b64('gw/'),
      rangeEnd: b64('gw0'),
      limit: 1,
      sort_order: 'DESCEND',
      keys_only: true,
    });
    assert.equal(limited.more, true);
    assert.equal(limited.count, '2');
    assert.deepEqual(Buffer.from(limited.kvs[0].key, 'base64'), binary);
    assert.equal(limited.kvs[0].value, undefined, 'keys_only: empty value left out');

    const none = await ok('/v3/kv/range', { key: b64('gw/missing') });
    assert.deepEqual(Object.keys(none), ['header'], 'no kvs, no count');

    // The /v3beta/ prefix etcd 3.4 still serves.
    assert.equal((await ok('/v3beta/kv/range', { key: b64('gw/a') })).count, '1');
  });

  test('a body without a JSON content type is read as JSON (curl -d, no header at all)', async () => {
    const [host, port] = etcd.endpoint.split(':');
    const answer = await new Promise<{ status: number; type: string; body: string }>((resolve, reject) => {
      const req = httpRequest(
        { host, port: Number(port), method: 'POST', path: '/v3/kv/range', timeout: TIMEOUT_MS },
        (res) => {
          let body = '';
          res.on('data', (c) => {
            body += c;
          });
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'] ?? '', body }),
          );
        },
      );
      req.on('error', reject);
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.end(JSON.stringify({ key: b64('gw/a') }));
    });
    assert.equal(answer.status, 200);
    assert.equal(answer.type, 'application/json');
    assert.equal(JSON.parse(answer.body).count, '1');
  });

  test('deleterange with prev_kv; txn compares by enum names or numbers', async () => {
    await ok('/v3/kv/put', { key: b64('gw/txn'), value: b64('v1') });
    const current = await ok('/v3/kv/range', { key: b64('gw/txn') });
    const mod = current.kvs[0].mod_revision;

    // Patroni's shape: no "result" (EQUAL is the zero value), target by name.
    const won = await ok('/v3/kv/txn', {
      compare: [{ key: b64('gw/txn'), target: 'MOD', mod_revision: mod }],
      success: [{ request_put: { key: b64('gw/txn'), value: b64('v2') } }],
    });
    assert.equal(won.succeeded, true);
    assert.deepEqual(Object.keys(won.responses[0]), ['response_put']);

    const lost = await ok('/v3/kv/txn', {
      compare: [{ key: b64('gw/txn'), target: 2, result: 0, mod_revision: mod }],
      success: [{ request_put: { key: b64('gw/txn'), value: b64('v3') } }],
      failure: [{ request_range: { key: b64('gw/txn') } }],
    });
    assert.equal(lost.succeeded, undefined, 'false is left out');
    assert.equal(unb64(lost.responses[0].response_range.kvs[0].value), 'v2');

    const created = await ok('/v3/kv/txn', {
      compare: [{ key: b64('gw/new'), target: 'CREATE', result: 'EQUAL', create_revision: '0' }],
      success: [{ request_put: { key: b64('gw/new'), value: b64('fresh') } }],
    });
    assert.equal(created.succeeded, true);

    const del = await ok('/v3/kv/deleterange', { key: b64('gw/txn'), prev_kv: true });
    assert.equal(del.deleted, '1');
    assert.equal(unb64(del.prev_kvs[0].value), 'v2');
    const zero = await ok('/v3/kv/deleterange', { key: b64('gw/txn') });
    assert.equal(zero.deleted, undefined, 'deleted "0" is left out');
  });

  test('errors: grpc-gateway body and HTTP status from the gRPC code, etcd messages', async () => {
    const notFound = await post('/v3/lease/revoke', { ID: '4242' });
    assert.equal(notFound.status, 404);
    assert.equal(
      notFound.text,
      '{"error":"etcdserver: requested lease not found","code":5,"message":"etcdserver: requested lease not found"}',
    );

    const emptyKey = await post('/v3/kv/put', { value: b64('x') });
    assert.equal(emptyKey.status, 400);
    assert.deepEqual(emptyKey.json, {
      error: 'etcdserver: key is not provided',
      code: 3,
      message: 'etcdserver: key is not provided',
    });

    const future = await post('/v3/kv/compaction', { revision: '999999' });
    assert.equal(future.status, 400);
    assert.equal(future.json.code, 11);
    assert.equal(future.json.message, 'etcdserver: mvcc: required revision is a future revision');

    const badJson = await post('/v3/kv/range', '{"key": ');
    assert.equal(badJson.status, 400);
    assert.equal(badJson.json.code, 3);
    const badEnum = await post('/v3/kv/txn', { compare: [{ key: b64('k'), target: 'SIZE' }] });
    assert.equal(badEnum.status, 400);
    assert.equal(badEnum.json.code, 3);

    const unimplemented = await post('/v3/auth/authenticate', { name: 'root', password: 'x' });
    assert.equal(unimplemented.status, 501);
    assert.equal(unimplemented.json.code, 12);

    const unknown = await post('/v3/kv/nothing', {});
    assert.equal(unknown.status, 404);
    assert.equal(unknown.text, 'Not Found\n');
    const get = await fetch(`${base}/v3/kv/range`, { signal: AbortSignal.timeout(TIMEOUT_MS) });
    assert.equal(get.status, 405);
  });

  test('gRPC and the gateway share the port and the store', async () => {
    await client.put('gw/grpc').value('from-grpc');
    const seen = await ok('/v3/kv/range', { key: b64('gw/grpc') });
    assert.equal(unb64(seen.kvs[0].value), 'from-grpc');
    await ok('/v3/kv/put', { key: b64('gw/http'), value: b64('from-http') });
    assert.equal(await client.get('gw/http').string(), 'from-http');
  });

  test('maintenance status and member list', async () => {
    const status = await ok('/v3/maintenance/status', {});
    assert.equal(status.version, '3.4.23');
    assert.equal(status.leader, status.header.member_id);
    assert.match(status.raftIndex, /^\d+$/);
    assert.equal(status.isLearner, undefined);

    const members = await ok('/v3/cluster/member/list', {});
    assert.equal(members.members.length, 1);
    assert.equal(members.members[0].ID, status.header.member_id);
    assert.deepEqual(members.members[0].clientURLs, [base], 'the address the client used');
  });

  test('leases: grant, time-to-live with keys, keep-alive, revoke', async () => {
    const grant = await ok('/v3/lease/grant', { TTL: 30 });
    assert.match(grant.ID, /^\d+$/);
    assert.equal(grant.TTL, '30');
    assert.equal(grant.error, undefined);
    await ok('/v3/kv/put', { key: b64('gw/leased'), value: b64('x'), lease: grant.ID });

    const ttl = await ok('/v3/kv/lease/timetolive', { ID: grant.ID, keys: true });
    assert.equal(ttl.ID, grant.ID);
    assert.equal(ttl.grantedTTL, '30');
    assert.ok(Number(ttl.TTL) > 0 && Number(ttl.TTL) <= 30);
    assert.deepEqual(ttl.keys.map(unb64), ['gw/leased']);
    const leased = await ok('/v3/kv/range', { key: b64('gw/leased') });
    assert.equal(leased.kvs[0].lease, grant.ID);

    // Patroni: call_rpc('/lease/keepalive', {'ID': ID}).get('result', {}).get('TTL')
    const kept = await post('/v3/lease/keepalive', { ID: grant.ID });
    assert.equal(kept.status, 200);
    assert.equal(kept.text.endsWith('}\n'), true, 'one newline-delimited chunk');
    assert.equal(kept.json.result.TTL, '30');
    assert.equal(kept.json.result.ID, grant.ID);

    const leases = await ok('/v3/lease/leases', {});
    assert.ok(leases.leases.some((l: Json) => l.ID === grant.ID));

    await ok('/v3/lease/revoke', { ID: grant.ID });
    assert.deepEqual(Object.keys(await ok('/v3/kv/range', { key: b64('gw/leased') })), ['header']);
    const gone = await ok('/v3/lease/timetolive', { ID: grant.ID });
    assert.equal(gone.TTL, '-1');
    const missing = await post('/v3/lease/keepalive', { ID: grant.ID });
    assert.equal(missing.status, 200);
    assert.equal(missing.json.result.TTL, undefined, 'a missing lease answers TTL 0, left out');

    // Two requests in one body: two answers, then the stream ends.
    const two = await ok('/v3/lease/grant', { TTL: 20 });
    const both = await post('/v3/lease/keepalive', `{"ID":"${two.ID}"}\n{"ID":${two.ID}}`);
    const lines = both.text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.deepEqual(
      lines.map((l) => l.result.TTL),
      ['20', '20'],
    );
  });

  test('stream errors: an undecodable first request, and a failure inside the stream', async () => {
    const bad = await post('/v3/lease/keepalive', '{"ID": nope}');
    assert.equal(bad.status, 500, 'grpc-gateway: Unknown for a stream request it cannot decode');
    assert.equal(bad.json.code, 2);

    // A lease ID this server cannot represent fails the keep-alive: the error chunk.
    const failed = await post('/v3/lease/keepalive', { ID: '9223372036854775807' });
    assert.equal(failed.status, 400);
    assert.deepEqual(Object.keys(failed.json.error), ['grpc_code', 'http_code', 'message', 'http_status']);
    assert.equal(failed.json.error.grpc_code, 3);
    assert.equal(failed.json.error.http_code, 400);
    assert.equal(failed.json.error.http_status, 'Bad Request');
  });

  test('watch streams {"result": ...} lines: created, then events as they happen', async () => {
    const start = await ok('/v3/kv/range', { key: b64('gw/w/') });
    const abort = new AbortController();
    const res = await fetch(`${base}/v3/watch`, {
      method: 'POST',
      body: JSON.stringify({
        create_request: {
          key: b64('gw/w/'),
          range_end: b64('gw/w0'),
          start_revision: String(Number(start.header.revision) + 1),
          prev_kv: true,
          filters: [],
        },
      }),
      signal: abort.signal,
    });
    try {
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), 'application/json');
      const lines = new Lines((res.body as ReadableStream<Uint8Array>).getReader());
      const created = await lines.next();
      assert.equal(created.result.created, true);
      assert.equal(created.result.watch_id, undefined, 'watch id 0 is left out');

      await client.put('gw/w/1').value('a'); // over gRPC, on the same port
      const put = await lines.next();
      assert.equal(put.result.events.length, 1);
      assert.equal(put.result.events[0].type, undefined, 'PUT is the zero value, left out');
      assert.equal(unb64(put.result.events[0].kv.key), 'gw/w/1');
      assert.equal(unb64(put.result.events[0].kv.value), 'a');
      assert.equal(put.result.header.revision, put.result.events[0].kv.mod_revision);

      await ok('/v3/kv/deleterange', { key: b64('gw/w/1') });
      const del = await lines.next();
      assert.equal(del.result.events[0].type, 'DELETE');
      assert.equal(unb64(del.result.events[0].prev_kv.value), 'a');
    } finally {
      abort.abort();
    }
  });

  test('a watch body streamed over time: create, then cancel in a later chunk', async () => {
    const [host, port] = etcd.endpoint.split(':');
    const req = httpRequest({
      host,
      port: Number(port),
      method: 'POST',
      path: '/v3/watch',
      headers: { 'transfer-encoding': 'chunked' },
    });
    const lines: Json[] = [];
    let waiting: (() => void) | null = null;
    const response = new Promise<void>((resolve, reject) => {
      req.on('response', (res) => {
        let buffer = '';
        res.on('data', (chunk: Buffer) => {
          buffer += chunk.toString();
          for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
            lines.push(JSON.parse(buffer.slice(0, nl)));
            buffer = buffer.slice(nl + 1);
            waiting?.();
          }
        });
        res.on('close', resolve);
      });
      req.on('error', reject);
    });
    const line = async (n: number): Promise<Json> => {
      const deadline = Date.now() + TIMEOUT_MS;
      while (lines.length < n) {
        if (Date.now() > deadline) throw new Error(`no line ${n}`);
        await new Promise<void>((resolve) => {
          waiting = resolve;
          setTimeout(resolve, 50);
        });
      }
      return lines[n - 1];
    };
    try {
      // One request split across two chunks, then the cancel later, as a Go json.Decoder reads them.
      req.write('{"create_request": {"key": "');
      req.write(`${b64('gw/s')}", "watch_id": 7}}`);
      const created = await line(1);
      assert.equal(created.result.created, true);
      assert.equal(created.result.watch_id, '7');
      req.write(JSON.stringify({ cancel_request: { watch_id: 7 } }));
      const canceled = await line(2);
      assert.equal(canceled.result.canceled, true);
      assert.equal(canceled.result.watch_id, '7');
    } finally {
      req.destroy();
      await response.catch(() => {});
    }
  });

  test('watch with NOPUT filter; a closed connection ends the session', async () => {
    const watchers = () => etcd.server.store.status().watchers;
    const before = watchers();
    const abort = new AbortController();
    const res = await fetch(`${base}/v3/watch`, {
      method: 'POST',
      body: JSON.stringify({ create_request: { key: b64('gw/f'), filters: ['NOPUT'] } }),
      signal: abort.signal,
    });
    const lines = new Lines((res.body as ReadableStream<Uint8Array>).getReader());
    assert.equal((await lines.next()).result.created, true);
    await ok('/v3/kv/put', { key: b64('gw/f'), value: b64('ignored') });
    await ok('/v3/kv/deleterange', { key: b64('gw/f') });
    const event = await lines.next();
    assert.deepEqual(
      event.result.events.map((e: Json) => e.type),
      ['DELETE'],
    );
    assert.equal(watchers(), before + 1);
    abort.abort();
    const deadline = Date.now() + TIMEOUT_MS;
    while (watchers() > before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.equal(watchers(), before, 'the store watcher is gone with the connection');
  });

  test('lock: a second locker waits; leaving cancels its wait; unlock', async () => {
    const a = await ok('/v3/lease/grant', { TTL: 30 });
    const b = await ok('/v3/lease/grant', { TTL: 30 });
    const held = await ok('/v3/lock/lock', { name: b64('gw-lock'), lease: a.ID });
    assert.ok(unb64(held.key).startsWith('gw-lock/'));
    const waiters = async () =>
      (await ok('/v3/kv/range', { key: b64('gw-lock/'), range_end: b64('gw-lock0') })).count;

    // The second Lock blocks; the client gives up; its waiter key goes (grpc-gateway cancels the call).
    const abort = new AbortController();
    const second = fetch(`${base}/v3/lock/lock`, {
      method: 'POST',
      body: JSON.stringify({ name: b64('gw-lock'), lease: b.ID }),
      signal: abort.signal,
    });
    const deadline = Date.now() + TIMEOUT_MS;
    while ((await waiters()) !== '2' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(await waiters(), '2');
    abort.abort();
    await assert.rejects(second);
    while ((await waiters()) !== '1' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(await waiters(), '1');

    await ok('/v3/lock/unlock', { key: held.key });
    assert.equal((await ok('/v3/kv/range', { key: held.key })).count, undefined);
  });

  test('election: campaign, observe stream, proclaim, leader, resign', async () => {
    const lease = await ok('/v3/lease/grant', { TTL: 30 });
    const abort = new AbortController();
    // No leader yet: like etcd, the observe answer starts (headers too) with the first leader.
    const observing = fetch(`${base}/v3/election/observe`, {
      method: 'POST',
      body: JSON.stringify({ name: b64('gw-election') }),
      signal: abort.signal,
    });
    observing.catch(() => {});
    try {
      const won = await ok('/v3/election/campaign', {
        name: b64('gw-election'),
        lease: lease.ID,
        value: b64('v1'),
      });
      assert.equal(unb64(won.leader.name), 'gw-election');
      assert.equal(won.leader.lease, lease.ID);
      let timer: NodeJS.Timeout | undefined;
      const res = await Promise.race([
        observing,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error('observe did not start')), TIMEOUT_MS);
        }),
      ]).finally(() => clearTimeout(timer));
      const lines = new Lines((res.body as ReadableStream<Uint8Array>).getReader());
      assert.equal(unb64((await lines.next()).result.kv.value), 'v1');

      await ok('/v3/election/proclaim', { leader: won.leader, value: b64('v2') });
      assert.equal(unb64((await lines.next()).result.kv.value), 'v2');
      const current = await ok('/v3/election/leader', { name: b64('gw-election') });
      assert.equal(unb64(current.kv.value), 'v2');

      await ok('/v3/election/resign', { leader: won.leader });
      const none = await post('/v3/election/leader', { name: b64('gw-election') });
      assert.equal(none.status, 500);
      assert.deepEqual(none.json, { error: 'election: no leader', code: 2, message: 'election: no leader' });
    } finally {
      abort.abort();
    }
  });

  test('maintenance alarm list and defragment', async () => {
    const alarms = await ok('/v3/maintenance/alarm', { action: 'GET' });
    assert.equal(alarms.alarms, undefined, 'no alarms');
    const defrag = await ok('/v3/maintenance/defragment', {});
    assert.deepEqual(Object.keys(defrag), ['header']);
  });

  test('txn compare NOT_EQUAL', async () => {
    const res = await ok('/v3/kv/txn', {
      compare: [{ key: b64('gw/a'), target: 'VERSION', result: 'NOT_EQUAL', version: '0' }],
      success: [{ request_range: { key: b64('gw/a') } }],
    });
    assert.equal(res.succeeded, true);
  });
});

describe('etcd /health without a working Raft', { timeout: 15_000 }, () => {
  test('answers 503 {"health":"false"} as etcd 3.4 does', async () => {
    const stopped = await startEtcdTestServer();
    try {
      await stopped.server.stop();
      const res = await fetch(`http://${stopped.endpoint}/health`, {
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
      assert.equal(res.status, 503);
      assert.equal(await res.text(), '{"health":"false"}\n');
    } finally {
      await stopped.close();
    }
  });
});
