import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { Etcd3, type IWatchResponse, type Watcher } from 'etcd3';
import type { EtcdContext } from '../../src/api/etcd/context.js';
import { startEtcdApi } from '../../src/api/etcd/etcd-api.js';
import {
  ERR_COMPACTED_REASON,
  ERR_DUPLICATE_WATCH_ID,
  ERR_EMPTY_WATCH_RANGE,
  setProgressReportInterval,
  type WatchResponse,
  WatchSession,
} from '../../src/api/etcd/watch.js';
import { fragmentResponse, watchResponse } from '../../src/api/etcd/watch-wire.js';
import { silentLogger } from '../../src/server/logger.js';
import { ConclaveServer } from '../../src/server/server.js';
import type { StoreOptions } from '../../src/store/index.js';
import { type EtcdTestServer, startEtcdTestServer } from './harness.js';
import { type Msg, type RawClients, rawClients, StreamReader, text, waitFor, within } from './raw-client.js';

const b = (s: string) => Buffer.from(s);

/** Collect `count` events from an etcd3 watcher as "TYPE key value prev". */
function collect(watcher: Watcher, count: number): Promise<string[]> {
  const events: string[] = [];
  return within(
    new Promise((resolve) => {
      watcher.on('data', (res: IWatchResponse) => {
        for (const ev of res.events) {
          const prev = ev.prev_kv ? text(ev.prev_kv.value) : '-';
          events.push(`${ev.type.toUpperCase()} ${text(ev.kv.key)} ${text(ev.kv.value)} ${prev}`);
        }
        if (events.length >= count) resolve(events);
      });
    }),
    5000,
    `${count} watch events`,
  );
}

describe('etcd Watch over gRPC', () => {
  let etcd: EtcdTestServer;
  let client: Etcd3;
  let raw: RawClients;

  before(async () => {
    etcd = await startEtcdTestServer();
    client = new Etcd3({ hosts: `http://${etcd.endpoint}` });
    raw = rawClients(etcd.endpoint);
  });

  after(async () => {
    client.close();
    raw.close();
    await etcd.close();
  });

  const openStream = () => new StreamReader(raw.watch.Watch());
  const putRevision = async (key: string, value: string) =>
    Number((await client.put(key).value(value)).header.revision);

  test('live puts and deletes with prev_kv (etcd3 client)', async () => {
    const watcher = await client.watch().key('live').withPreviousKV().create();
    const events = collect(watcher, 3);
    await client.put('live').value('1');
    await client.put('live').value('2');
    await client.delete().key('live');
    assert.deepEqual(await events, ['PUT live 1 -', 'PUT live 2 1', 'DELETE live  2']);
    await watcher.cancel();
  });

  test('a past start revision replays history, then goes live (etcd3 client)', async () => {
    const first = await putRevision('hist', 'a');
    await client.put('hist').value('b');
    await client.put('other').value('x');
    await client.put('hist').value('c');
    const watcher = await client.watch().key('hist').startRevision(String(first)).create();
    const events = collect(watcher, 4);
    await new Promise((r) => setTimeout(r, 50));
    await client.put('hist').value('d');
    assert.deepEqual(await events, ['PUT hist a -', 'PUT hist b -', 'PUT hist c -', 'PUT hist d -']);
    await watcher.cancel();
  });

  test('a prefix watch sees only its prefix (etcd3 client)', async () => {
    const watcher = await client.watch().prefix('pre/').create();
    const events = collect(watcher, 3);
    await client.put('pre/1').value('a');
    await client.put('prf').value('outside');
    await client.put('pre/2').value('b');
    await client.delete().key('pre/1');
    assert.deepEqual(await events, ['PUT pre/1 a -', 'PUT pre/2 b -', 'DELETE pre/1  -']);
    await watcher.cancel();
  });

  test('a compacted start revision: created, then canceled with compact_revision (etcd3 and raw)', async () => {
    const first = await putRevision('cmp', '1');
    await client.put('cmp').value('2');
    const compactAt = await putRevision('cmp', '3');
    await client.kv.compact({ revision: String(compactAt) });

    const watcher = await client.watch().key('cmp').startRevision(String(first)).create();
    const error = await within(
      new Promise<Error>((resolve) => watcher.on('error', resolve)),
      3000,
      'the compaction cancel',
    );
    assert.match(error.message, /required revision has been compacted/);

    const stream = openStream();
    stream.write({ create_request: { key: b('cmp'), start_revision: String(first) } });
    const created = await stream.next();
    assert.equal(created.created, true);
    assert.equal(created.canceled, false);
    const canceled = await stream.next();
    assert.equal(canceled.watch_id, created.watch_id);
    assert.equal(canceled.canceled, true);
    assert.equal(canceled.compact_revision, String(compactAt));
    assert.equal(canceled.cancel_reason, ERR_COMPACTED_REASON);
    stream.cancel();
  });

  test('cancel_request ends one watch with a canceled response; unknown ids get none', async () => {
    const stream = openStream();
    stream.write({ create_request: { key: b('cancel-me') } });
    const created = await stream.next();
    stream.write({ cancel_request: { watch_id: created.watch_id } });
    const canceled = await stream.next();
    assert.equal(canceled.watch_id, created.watch_id);
    assert.equal(canceled.canceled, true);
    assert.equal(canceled.cancel_reason, '');
    await client.put('cancel-me').value('x');
    stream.write({ cancel_request: { watch_id: '12345' } });
    await stream.silentFor(200);
    stream.cancel();

    // The etcd3 client's cancel completes on the server's canceled response.
    const watcher = await client.watch().key('cancel-me').create();
    await within(watcher.cancel(), 3000, 'etcd3 cancel');
  });

  test('many watches on one stream: assigned and client-chosen ids, duplicate id, empty range', async () => {
    const stream = openStream();
    stream.write({ create_request: { key: b('m-a') } });
    const a = await stream.next();
    stream.write({ create_request: { key: b('m-b'), watch_id: '7' } });
    const bResponse = await stream.next();
    stream.write({ create_request: { key: b('m-c') } });
    const c = await stream.next();
    // etcd assigns ids from 0 and skips ids already taken.
    assert.deepEqual([a.watch_id, bResponse.watch_id, c.watch_id], ['0', '7', '1']);
    assert.ok([a, bResponse, c].every((r) => r.created && !r.canceled));

    stream.write({ create_request: { key: b('m-d'), watch_id: '7' } });
    const dup = await stream.next();
    assert.deepEqual(
      [dup.created, dup.canceled, dup.watch_id, dup.cancel_reason],
      [true, true, '-1', ERR_DUPLICATE_WATCH_ID],
    );
    stream.write({ create_request: { key: b('z'), range_end: b('a') } });
    const empty = await stream.next();
    assert.deepEqual([empty.canceled, empty.cancel_reason], [true, ERR_EMPTY_WATCH_RANGE]);

    await client.put('m-a').value('1');
    await client.put('m-b').value('2');
    await client.put('m-c').value('3');
    const seen = new Map<string, string>();
    for (let i = 0; i < 3; i++) {
      const r = await stream.next();
      assert.equal(r.events.length, 1);
      assert.ok(Number(r.header.revision) >= Number(r.events[0].kv.mod_revision));
      seen.set(r.watch_id, text(r.events[0].kv.key));
    }
    assert.deepEqual([...seen.entries()].sort(), [
      ['0', 'm-a'],
      ['1', 'm-c'],
      ['7', 'm-b'],
    ]);
    stream.cancel();
  });

  test('progress_request: watch_id -1, no events, the current revision', async () => {
    const stream = openStream();
    stream.write({ create_request: { key: b('prog') } });
    await stream.next();
    const revision = await putRevision('unrelated', 'x');
    stream.write({ progress_request: {} });
    const progress = await stream.next();
    assert.equal(progress.watch_id, '-1');
    assert.equal(progress.events.length, 0);
    assert.equal(progress.created, false);
    assert.equal(progress.canceled, false);
    assert.equal(Number(progress.header.revision), revision);
    stream.cancel();
  });

  test('filters: NOPUT sees only deletes, NODELETE only puts', async () => {
    const stream = openStream();
    // FilterType on the wire: 0 NOPUT, 1 NODELETE (the loaded .proto spells the names its own way).
    stream.write({ create_request: { key: b('flt'), filters: [0], watch_id: '1' } });
    stream.write({ create_request: { key: b('flt'), filters: [1], watch_id: '2' } });
    await stream.next();
    await stream.next();
    await client.put('flt').value('x');
    await client.delete().key('flt');
    const got = new Map<string, string>();
    for (let i = 0; i < 2; i++) {
      const r = await stream.next();
      got.set(r.watch_id, r.events.map((e: Msg) => String(e.type).toUpperCase()).join(','));
    }
    assert.deepEqual(Object.fromEntries(got), { '1': 'DELETE', '2': 'PUT' });
    await stream.silentFor(100);
    stream.cancel();
  });

  test('progress_notify: a quiet synced watch gets periodic empty responses', async () => {
    setProgressReportInterval(100);
    try {
      const stream = openStream();
      stream.write({ create_request: { key: b('quiet'), progress_notify: true, watch_id: '3' } });
      await stream.next();
      const progress = await stream.next(2000, 'a progress notification');
      assert.equal(progress.watch_id, '3');
      assert.equal(progress.events.length, 0);
      assert.equal(Number(progress.header.revision), etcd.server.store.revision);
      stream.cancel();
    } finally {
      setProgressReportInterval(10 * 60 * 1000);
    }
  });

  test('fragment: a large response is split as etcd splits it, otherwise sent whole', async () => {
    const value = 'v'.repeat(800 * 1024);
    const first = await putRevision('frag/1', value);
    await client.put('frag/2').value(value);
    await client.put('frag/3').value(value);
    const stream = openStream();
    const create = { key: b('frag/'), range_end: b('frag0'), start_revision: String(first) };
    stream.write({ create_request: { ...create, fragment: true, watch_id: '1' } });
    await stream.next();
    const parts = [await stream.next(15_000), await stream.next(15_000)];
    assert.deepEqual(
      parts.map((p) => [p.watch_id, p.events.length, p.fragment]),
      [
        ['1', 2, true],
        ['1', 1, false],
      ],
    );
    stream.write({ create_request: { ...create, watch_id: '2' } });
    await stream.next();
    const whole = await stream.next(15_000);
    assert.deepEqual([whole.watch_id, whole.events.length, whole.fragment], ['2', 3, false]);
    stream.cancel();
  });

  test('a stream that ends cancels its store watchers', async () => {
    // Streams of earlier tests close asynchronously; start from none.
    await waitFor(() => etcd.server.store.status().watchers === 0, 3000, 'earlier streams to close');
    const base = 0;
    const stream = openStream();
    stream.write({ create_request: { key: b('end-1') } });
    stream.write({ create_request: { key: b('end-2') } });
    await stream.next();
    await stream.next();
    assert.equal(etcd.server.store.status().watchers, base + 2);
    stream.cancel();
    await waitFor(() => etcd.server.store.status().watchers === base, 3000, 'store watchers to go');
  });

  test('a client that half-closes keeps its watches (etcd serves the stream until canceled)', async () => {
    const stream = openStream();
    stream.write({ create_request: { key: b('half') } });
    await stream.next();
    stream.stream.end();
    await client.put('half').value('x');
    const r = await stream.next();
    assert.equal(text(r.events[0].kv.value), 'x');
    stream.cancel();
  });
});

// ---------------------------------------------------------------- WatchSession, transport-free

async function startServer(
  storeOptions?: StoreOptions,
  bootstrap: 'self' | number = 'self',
): Promise<ConclaveServer> {
  const server = new ConclaveServer({
    nodeId: randomUUID(),
    nodeName: 'watch-session-test',
    dataDir: null,
    bindHost: '127.0.0.1',
    serverPort: 0,
    bootstrap,
    retryJoin: [],
    log: silentLogger,
    tickMs: 10,
    storeOptions,
  });
  await server.start();
  if (bootstrap === 'self') await waitFor(() => server.isLeader(), 5000, 'a leader');
  return server;
}

/** A session whose transport accepts responses only while `open` is true. */
function sessionOn(server: ConclaveServer, options: { maxResponseBytes?: number } = {}) {
  const ctx: EtcdContext = { server, version: 'test' };
  const responses: WatchResponse[] = [];
  const state = { open: true };
  const session = new WatchSession(ctx, {
    onResponse: (r) => {
      responses.push(r);
      return state.open;
    },
    ...options,
  });
  const events = () =>
    responses.flatMap((r) =>
      r.events.map((e) => `${text(e.kv.key)}=${text(e.kv.value)}@${e.kv.mod_revision}`),
    );
  return { session, responses, state, events };
}

const put = (server: ConclaveServer, key: string, value: string) =>
  server.write({ type: 'put', key: b(key), value: b(value) });

describe('WatchSession', () => {
  test('a paused consumer costs bounded memory and, resumed, gets every event once, in order', async () => {
    const server = await startServer({ limits: { maxWatcherBufferedEvents: 4, maxCatchUpEvents: 4 } });
    try {
      const { session, responses, state, events } = sessionOn(server);
      session.handleRequest({ create_request: { key: b('bp/'), range_end: b('bp0') } });
      state.open = false;
      for (let i = 0; i < 20; i++) await put(server, `bp/${String(i).padStart(2, '0')}`, String(i));
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(responses.length, 2, 'created, then one event response before the pause');
      state.open = true;
      session.resume();
      await waitFor(() => events().length === 20, 3000, 'all 20 events');
      const revisions = events().map((e) => Number(e.split('@')[1]));
      assert.deepEqual(
        revisions,
        [...revisions].sort((x, y) => x - y),
      );
      assert.equal(new Set(revisions).size, 20);
      session.close();
      assert.equal(server.store.status().watchers, 0);
    } finally {
      await server.stop();
    }
  });

  test('a paused consumer overtaken by compaction is canceled with the compact revision', async () => {
    const server = await startServer({ limits: { maxWatcherBufferedEvents: 4, maxCatchUpEvents: 4 } });
    try {
      const { session, responses, state, events } = sessionOn(server);
      session.handleRequest({ create_request: { key: b('cc/'), range_end: b('cc0') } });
      state.open = false;
      for (let i = 0; i < 20; i++) await put(server, `cc/${String(i).padStart(2, '0')}`, String(i));
      const compactAt = server.store.revision;
      await server.write({ type: 'compact', revision: compactAt });
      state.open = true;
      session.resume();
      await waitFor(() => responses.some((r) => r.canceled), 3000, 'the compaction cancel');
      const last = responses[responses.length - 1]!;
      assert.deepEqual(
        [last.canceled, last.compact_revision, last.cancel_reason],
        [true, String(compactAt), ERR_COMPACTED_REASON],
      );
      // What did arrive is a gap-free prefix.
      assert.deepEqual(
        events().map((e) => e.split('=')[0]),
        Array.from({ length: events().length }, (_, i) => `cc/${String(i).padStart(2, '0')}`),
      );
      assert.equal(server.store.status().watchers, 0);
      assert.equal(session.size, 0);
      session.close();
    } finally {
      await server.stop();
    }
  });

  test('a snapshot install moves watches to the new store without loss or repeats', async () => {
    const server = await startServer();
    try {
      const { session, state, events } = sessionOn(server);
      session.handleRequest({ create_request: { key: b('snap') } });
      await put(server, 'snap', '1');
      await waitFor(() => events().length === 1, 2000, 'the first event');
      state.open = false;
      await put(server, 'snap', '2'); // delivered, then the transport is full
      await put(server, 'snap', '3'); // left in the old store's watcher
      await put(server, 'snap', '4');
      await new Promise((r) => setTimeout(r, 20));
      const old = server.store;
      server.state.restore(server.state.snapshot());
      assert.notEqual(server.store, old);
      await put(server, 'snap', '5');
      state.open = true;
      session.resume();
      await waitFor(() => events().length >= 5, 3000, 'five events');
      await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(
        events().map((e) => e.split('@')[0]),
        ['snap=1', 'snap=2', 'snap=3', 'snap=4', 'snap=5'],
      );
      assert.equal(server.store.status().watchers, 1);
      session.close();
      assert.equal(server.store.status().watchers, 0);
    } finally {
      await server.stop();
    }
  });

  test('a snapshot install past compacted history cancels the watch with the compact revision', async () => {
    const server = await startServer();
    try {
      const { session, responses, state } = sessionOn(server);
      session.handleRequest({ create_request: { key: b('gone') } });
      state.open = false;
      await put(server, 'gone', '1');
      await put(server, 'gone', '2');
      await put(server, 'gone', '3');
      const compactAt = server.store.revision;
      await server.write({ type: 'compact', revision: compactAt });
      server.state.restore(server.state.snapshot());
      const last = responses[responses.length - 1]!;
      assert.deepEqual(
        [last.canceled, last.compact_revision, last.cancel_reason],
        [true, String(compactAt), ERR_COMPACTED_REASON],
      );
      assert.equal(session.size, 0);
      session.close();
    } finally {
      await server.stop();
    }
  });

  test('a progress request waits until every watch has caught up', async () => {
    const server = await startServer();
    try {
      for (let i = 0; i < 10; i++) await put(server, 'pr', String(i));
      const { session, responses } = sessionOn(server);
      session.handleRequest({ create_request: { key: b('pr'), start_revision: '2' } });
      session.handleRequest({ progress_request: {} });
      await waitFor(() => responses.some((r) => r.watch_id === '-1'), 2000, 'the progress response');
      const kinds = responses.map((r) =>
        r.created ? 'created' : r.watch_id === '-1' ? 'progress' : 'events',
      );
      assert.equal(kinds[0], 'created');
      assert.equal(kinds[kinds.length - 1], 'progress');
      assert.equal(responses.flatMap((r) => r.events).length, 10);
      assert.equal(responses[responses.length - 1]!.header.revision, server.store.revision);
      session.close();
    } finally {
      await server.stop();
    }
  });

  test('fragments follow etcd sendFragments: at least one event each, all but the last flagged', () => {
    const one = { low: 1, high: 0, unsigned: true as const };
    const header = { cluster_id: one, member_id: one, revision: 9, raft_term: 1 };
    const event = (i: number) => ({
      type: 0 as const,
      kv: { key: b(`k${i}`), value: Buffer.alloc(100), create_revision: '1', mod_revision: '1' },
      prev_kv: null,
    });
    const response = watchResponse(header, 4, { events: [0, 1, 2, 3, 4].map(event) });
    assert.deepEqual(fragmentResponse(response, 1_000_000), [response], 'small enough: whole');
    const parts = fragmentResponse(response, 300);
    assert.deepEqual(
      parts.map((p) => [p.events.length, p.fragment]),
      [
        [2, true],
        [2, true],
        [1, false],
      ],
    );
    const tiny = fragmentResponse(response, 10);
    assert.equal(tiny.length, 5, 'one event per fragment when even one is over the limit');
    const single = watchResponse(header, 4, { events: [event(0)] });
    assert.deepEqual(fragmentResponse(single, 10), [single], 'one event is never split');
  });
});

describe('require-leader streams', () => {
  test('a server without a leader refuses hasleader streams and serves the others locally', async () => {
    // bootstrap-expect 3 with no peers: this server never sees a leader.
    const server = await startServer(undefined, 3);
    const api = await startEtcdApi(server, '127.0.0.1', 0);
    const raw = rawClients(`127.0.0.1:${api.port}`);
    try {
      const requireLeader = new grpc.Metadata();
      requireLeader.set('hasleader', 'true');
      for (const stream of [
        new StreamReader(raw.watch.Watch(requireLeader)),
        new StreamReader(raw.lease.LeaseKeepAlive(requireLeader)),
      ]) {
        stream.write({ create_request: { key: b('x') } });
        await assert.rejects(stream.next(), {
          code: grpc.status.UNAVAILABLE,
          details: 'etcdserver: no leader',
        });
      }
      const local = new StreamReader(raw.watch.Watch());
      local.write({ create_request: { key: b('x') } });
      assert.equal((await local.next()).created, true);
      local.cancel();
    } finally {
      raw.close();
      await api.close();
      await server.stop();
    }
  });
});
