import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { H2Channel } from './h2.js';
import {
  type FromWorker,
  keyOf,
  type StepResult,
  type StepSpec,
  type ToWorker,
  VALUE_BYTES,
} from './messages.js';
import {
  bytesField,
  type Channel,
  type ChannelStream,
  COMPARE_CREATE,
  COMPARE_EQUAL,
  COMPARE_MOD,
  EVENT_DELETE,
  eachField,
  GrpcJsChannel,
  headerRevision,
  isUnimplemented,
  type Msg,
  numberField,
  prefixEnd,
  RPC,
  type Rpc,
  SORT_ASCEND,
  SORT_BY_CREATE,
  SORT_DESCEND,
} from './protocol.js';

/**
 * One load-generator thread. It owns its own gRPC channels (`channels` per endpoint, each its
 * own TCP connection; bench/etcd/h2.ts by default, grpc-js with --client grpc-js) and runs its
 * share of a step's in-flight operations as independent loops, each issuing its next request
 * when the previous one completes (closed loop).
 */

const port = parentPort!;
const {
  channels: CHANNELS_PER_ENDPOINT,
  index: WORKER_INDEX,
  workers: WORKERS,
  client: CLIENT,
} = workerData as { channels: number; index: number; workers: number; client: 'h2' | 'grpc-js' };

/** Epoch milliseconds with sub-millisecond resolution, comparable across threads. */
const now = (): number => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const put = RPC.put();
const range = RPC.range();
const txn = RPC.txn();
const deleteRange = RPC.deleteRange();
const leaseGrant = RPC.leaseGrant();
const leaseRevoke = RPC.leaseRevoke();
const watchRpc = RPC.watch();
const lockRpc = RPC.lock();
const unlockRpc = RPC.unlock();

const VALUE = Buffer.alloc(VALUE_BYTES);
for (let i = 0; i < VALUE_BYTES; i++) VALUE[i] = 97 + ((i * 7) % 26);

const clients = new Map<string, Channel[]>();
function clientsFor(endpoint: string): Channel[] {
  let cs = clients.get(endpoint);
  if (!cs) {
    cs = [];
    for (let i = 0; i < CHANNELS_PER_ENDPOINT; i++)
      cs.push(CLIENT === 'grpc-js' ? new GrpcJsChannel(endpoint) : new H2Channel(endpoint));
    clients.set(endpoint, cs);
  }
  return cs;
}
/** Global slot g: endpoint g mod E (the leader first), then the endpoint's channels in turn. */
function clientOf(endpoints: string[], g: number): Channel {
  const cs = clientsFor(endpoints[g % endpoints.length]!);
  return cs[Math.floor(g / endpoints.length) % cs.length]!;
}

/** Encode, call, decode (for the requests that are not on a hot path). */
async function callDecoded(client: Channel, method: Rpc, request: Msg): Promise<Msg> {
  return method.decode(await client.unary(method.path, method.encode(request)));
}

function prng(seed: number): () => number {
  let a = seed | 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

class Recorder {
  samples = new Float64Array(1 << 16);
  n = 0;
  ops = 0;
  errors = 0;
  extra = 0;
  firstError: string | null = null;
  unsupported = false;
  windowStart = Number.POSITIVE_INFINITY;
  windowEnd = Number.POSITIVE_INFINITY;

  /** An operation that started at t0 completed now: counted if it completed inside the window. */
  record(t0: number, t1 = now()): void {
    if (t1 < this.windowStart || t1 > this.windowEnd) return;
    this.ops++;
    if (this.n === this.samples.length) {
      const bigger = new Float64Array(this.samples.length * 2);
      bigger.set(this.samples);
      this.samples = bigger;
    }
    this.samples[this.n++] = t1 - t0;
  }

  fail(err: unknown): void {
    if (isUnimplemented(err)) this.unsupported = true;
    this.errors++;
    this.firstError ??= errorText(err);
  }

  get issuing(): boolean {
    return !this.unsupported && now() < this.windowEnd;
  }
}

/** A step: `setup` does everything untimed (requests, watch streams, leases); `run` is one slot's loop. */
interface Step {
  run(slot: number, rec: Recorder): Promise<void>;
  teardown(): Promise<void>;
}

/** A closed loop of one operation, timed from its first request to its last response. */
async function closedLoop(rec: Recorder, op: () => Promise<void>): Promise<void> {
  while (rec.issuing) {
    const t0 = now();
    try {
      await op();
      rec.record(t0);
    } catch (err) {
      rec.fail(err);
      await sleep(10);
    }
  }
}

/** A pool of pre-encoded requests over random keys of the preloaded keyspace. */
function preEncoded(spec: StepSpec, make: (key: Buffer) => Msg, encode: (m: Msg) => Buffer): Buffer[] {
  const random = prng(spec.seed);
  const out: Buffer[] = [];
  for (let i = 0; i < 4096; i++) out.push(encode(make(Buffer.from(keyOf(Math.floor(random() * spec.keys))))));
  return out;
}

/** RangeResponse.count (field 4) must be 1: every key read was loaded beforehand. */
const foundOne = (res: Buffer): void => {
  if (numberField(res, 4) !== 1) throw new Error('Range: key not found (was the keyspace loaded?)');
};

function simpleStep(spec: StepSpec, path: string, requests: Buffer[], check?: (res: Buffer) => void): Step {
  return {
    run: (slot, rec) => {
      const client = clientOf(spec.endpoints, spec.slotBase + slot);
      let i = (slot * 977) % requests.length;
      return closedLoop(rec, async () => {
        const res = await client.unary(path, requests[i]!);
        check?.(res);
        i = (i + 1) % requests.length;
      });
    },
    teardown: async () => {},
  };
}

/** Compare-and-swap on a key of the slot's own: If(mod_revision == last) Then(put) Else(get). */
function txnCasStep(spec: StepSpec): Step {
  return {
    run: (slot, rec) => {
      const g = spec.slotBase + slot;
      const client = clientOf(spec.endpoints, g);
      const key = Buffer.from(`bench/cas/${g}`);
      let rev = 0;
      return closedLoop(rec, async () => {
        const request = txn.encode({
          compare: [{ key, target: COMPARE_MOD, result: COMPARE_EQUAL, mod_revision: rev }],
          success: [{ request_put: { key, value: VALUE } }],
          failure: [{ request_range: { key } }],
        });
        const res = await client.unary(txn.path, request);
        if (numberField(res, 2) === 1) {
          rev = headerRevision(res);
        } else {
          rec.extra++;
          // responses[0].response_range.kvs[0].mod_revision
          const kv = bytesField(bytesField(bytesField(res, 3), 1), 2);
          rev = numberField(kv, 3);
        }
      });
    },
    teardown: async () => {},
  };
}

async function grant(client: Channel): Promise<string> {
  const res = await callDecoded(client, leaseGrant, { TTL: 60, ID: 0 });
  if (res.error) throw new Error(`LeaseGrant: ${res.error}`);
  return String(res.ID);
}

/** LeaseGrant, Put with the lease, LeaseRevoke: one operation of three round trips. */
function leaseStep(spec: StepSpec): Step {
  const grantRequest = leaseGrant.encode({ TTL: 60, ID: 0 });
  return {
    run: (slot, rec) => {
      const g = spec.slotBase + slot;
      const client = clientOf(spec.endpoints, g);
      const key = Buffer.from(`bench/lease/${g}`);
      return closedLoop(rec, async () => {
        const lease = leaseGrant.decode(await client.unary(leaseGrant.path, grantRequest));
        await client.unary(put.path, put.encode({ key, value: VALUE, lease: lease.ID }));
        await client.unary(leaseRevoke.path, leaseRevoke.encode({ ID: lease.ID }));
      });
    },
    teardown: async () => {},
  };
}

/** Open a watch stream and wait until the server says the watch exists. */
async function openWatch(
  client: Channel,
  create: Msg,
  onResponse: (res: Buffer) => void,
  onEnd: (err: Error | null) => void,
): Promise<ChannelStream> {
  let created = false;
  let s: ChannelStream | null = null;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('watch not created within 10 s')), 10_000);
    s = client.stream(
      watchRpc.path,
      (res) => {
        if (created) {
          onResponse(res);
        } else if (numberField(res, 4) === 1) {
          clearTimeout(timer);
          reject(new Error('watch canceled at creation'));
        } else if (numberField(res, 3) === 1) {
          // the creation response carries no events
          created = true;
          clearTimeout(timer);
          resolve();
        }
      },
      (err) => {
        clearTimeout(timer);
        if (!created) reject(err ?? new Error('watch stream ended before creation'));
        else onEnd(err);
      },
    );
    s.send(watchRpc.encode({ create_request: create }));
  });
  return s!;
}

/**
 * Puts carrying their send time in the value, into prefixes watched on every endpoint (one watch
 * stream per endpoint per worker); counts events delivered and put→event latency.
 */
async function watchStep(spec: StepSpec, rec: Recorder, worker: number): Promise<Step> {
  const prefixes = spec.endpoints.map((_, e) => Buffer.from(`bench/watch/${spec.tag}/${worker}/${e}/`));
  const streams: ChannelStream[] = [];
  const onEvents = (res: Buffer): void => {
    if (numberField(res, 4) === 1) {
      rec.fail(new Error('watch canceled by the server'));
      return;
    }
    const t1 = now();
    eachField(res, (field, event) => {
      if (field !== 11 || !(event instanceof Uint8Array)) return;
      const value = bytesField(bytesField(event, 2), 5);
      if (value && value.length >= 8)
        rec.record(Buffer.from(value.buffer, value.byteOffset, 8).readDoubleLE(0), t1);
    });
  };
  for (const [e, endpoint] of spec.endpoints.entries()) {
    const client = clientsFor(endpoint)[0]!;
    const prefix = prefixes[e]!;
    const onEnd = (err: Error | null) => rec.fail(err ?? new Error('watch stream ended by the server'));
    streams.push(await openWatch(client, { key: prefix, range_end: prefixEnd(prefix) }, onEvents, onEnd));
  }
  return {
    run: async (slot, r) => {
      const g = spec.slotBase + slot;
      const e = g % spec.endpoints.length;
      const client = clientOf(spec.endpoints, g);
      const template = put.encode({
        key: Buffer.concat([prefixes[e]!, Buffer.from(String(g))]),
        value: VALUE,
      });
      const at = template.length - VALUE_BYTES;
      if (!template.subarray(at).equals(VALUE))
        throw new Error('value is not the last field of an encoded Put');
      while (r.issuing) {
        const request = Buffer.allocUnsafe(template.length);
        template.copy(request);
        request.writeDoubleLE(now(), at);
        try {
          await client.unary(put.path, request);
          if (now() <= r.windowEnd && now() >= r.windowStart) r.extra++;
        } catch (err) {
          r.fail(err);
          await sleep(10);
        }
      }
    },
    teardown: async () => {
      await sleep(200); // let the last events arrive before the streams go
      for (const s of streams) s.cancel();
    },
  };
}

/** Wait until `key` is deleted at a revision after `revision` (clientv3's waitDelete). */
function waitDelete(client: Channel, key: Buffer, revision: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let over = false;
    const done = (err: Error | null) => {
      if (over) return;
      over = true;
      clearTimeout(timer);
      s.cancel();
      if (err) reject(err);
      else resolve();
    };
    const timer = setTimeout(() => done(new Error('lock: predecessor not deleted within 30 s')), 30_000);
    const s = client.stream(
      watchRpc.path,
      (res) => {
        if (numberField(res, 4) === 1) {
          done(new Error('watch canceled by the server'));
          return;
        }
        // WatchResponse.events (11), Event.type (1)
        eachField(res, (field, event) => {
          if (field === 11 && event instanceof Uint8Array && numberField(event, 1) === EVENT_DELETE)
            done(null);
        });
      },
      (err) => done(err ?? new Error('watch ended by the server')),
    );
    s.send(watchRpc.encode({ create_request: { key, start_revision: revision + 1 } }));
  });
}

/**
 * N contenders for one lock; an operation is acquire then release. With the v3lock service, Lock
 * and Unlock; otherwise clientv3's concurrency.Mutex recipe: a txn that creates our key under the
 * lock prefix if absent, then wait for the deletion of each earlier key, then delete ours.
 */
async function lockStep(spec: StepSpec): Promise<Step> {
  const prefix = Buffer.from(`bench/lock/${spec.tag}/`);
  const name = prefix.subarray(0, prefix.length - 1);
  const end = prefixEnd(prefix);
  const leases: { client: Channel; id: string }[] = [];
  for (let slot = 0; slot < spec.slots; slot++) {
    const client = clientOf(spec.endpoints, spec.slotBase + slot);
    leases.push({ client, id: await grant(client) });
  }

  const recipeAcquire = async (client: Channel, myKey: Buffer, lease: string): Promise<void> => {
    const owner = {
      key: prefix,
      range_end: end,
      sort_order: SORT_ASCEND,
      sort_target: SORT_BY_CREATE,
      limit: 1,
    };
    const res = await callDecoded(client, txn, {
      compare: [{ key: myKey, target: COMPARE_CREATE, result: COMPARE_EQUAL, create_revision: 0 }],
      success: [{ request_put: { key: myKey, value: Buffer.alloc(0), lease } }, { request_range: owner }],
      failure: [{ request_range: { key: myKey } }, { request_range: owner }],
    });
    const myRev = res.succeeded
      ? Number(res.header.revision)
      : Number(res.responses[0].response_range.kvs[0].create_revision);
    const first = res.responses[1].response_range.kvs[0];
    if (first && Number(first.create_revision) === myRev) return;
    for (;;) {
      const r = await callDecoded(client, range, {
        key: prefix,
        range_end: end,
        max_create_revision: myRev - 1,
        sort_order: SORT_DESCEND,
        sort_target: SORT_BY_CREATE,
        limit: 1,
      });
      const last = r.kvs[0];
      if (!last) return;
      await waitDelete(client, last.key, Number(r.header.revision));
    }
  };

  return {
    run: (slot, rec) => {
      const { client, id } = leases[slot]!;
      if (spec.lockMode === 'v3lock') {
        const lockRequest = lockRpc.encode({ name, lease: id });
        return closedLoop(rec, async () => {
          const key = bytesField(await client.unary(lockRpc.path, lockRequest), 2);
          if (!key) throw new Error('Lock returned no key');
          await client.unary(unlockRpc.path, unlockRpc.encode({ key }));
        });
      }
      const myKey = Buffer.concat([prefix, Buffer.from(BigInt(id).toString(16))]);
      const release = deleteRange.encode({ key: myKey });
      return closedLoop(rec, async () => {
        await recipeAcquire(client, myKey, id);
        await client.unary(deleteRange.path, release);
      });
    },
    teardown: async () => {
      await Promise.all(
        leases.map(({ client, id }) =>
          client.unary(leaseRevoke.path, leaseRevoke.encode({ ID: id })).catch(() => {}),
        ),
      );
    },
  };
}

// ---- the thread's state machine: setup, go, result

let current: { step: Step; rec: Recorder; slots: number } | null = null;

const send = (m: FromWorker, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);

async function setup(spec: StepSpec): Promise<void> {
  const rec = new Recorder();
  let step: Step;
  switch (spec.workload) {
    case 'put':
      step = simpleStep(
        spec,
        put.path,
        preEncoded(spec, (key) => ({ key, value: VALUE }), put.encode),
      );
      break;
    case 'get':
      step = simpleStep(
        spec,
        range.path,
        preEncoded(spec, (key) => ({ key }), range.encode),
        foundOne,
      );
      break;
    case 'get-serializable':
      step = simpleStep(
        spec,
        range.path,
        preEncoded(spec, (key) => ({ key, serializable: true }), range.encode),
        foundOne,
      );
      break;
    case 'txn-cas':
      step = txnCasStep(spec);
      break;
    case 'lease':
      step = leaseStep(spec);
      break;
    case 'watch':
      step = await watchStep(spec, rec, WORKER_INDEX);
      break;
    case 'lock':
      step = await lockStep(spec);
      break;
  }
  current = { step, rec, slots: spec.slots };
}

async function go(startAt: number, windowStart: number, windowEnd: number): Promise<StepResult> {
  const { step, rec, slots } = current!;
  current = null;
  rec.windowStart = windowStart;
  rec.windowEnd = windowEnd;
  await sleep(Math.max(0, startAt - now()));
  let eluStart = performance.eventLoopUtilization();
  const t1 = setTimeout(() => {
    eluStart = performance.eventLoopUtilization();
  }, windowStart - now());
  let elu = 0;
  const t2 = setTimeout(() => {
    elu = performance.eventLoopUtilization(eluStart).utilization;
  }, windowEnd - now());
  const loops: Promise<void>[] = [];
  for (let slot = 0; slot < slots; slot++) loops.push(step.run(slot, rec));
  const settled = await Promise.allSettled(loops);
  clearTimeout(t1);
  clearTimeout(t2);
  if (elu === 0) elu = performance.eventLoopUtilization(eluStart).utilization;
  for (const s of settled) if (s.status === 'rejected') rec.fail(s.reason);
  await step.teardown();
  return {
    ops: rec.ops,
    errors: rec.errors,
    firstError: rec.firstError,
    unsupported: rec.unsupported,
    samples: rec.samples.slice(0, rec.n),
    elu,
    extra: rec.extra,
  };
}

async function preload(endpoints: string[], keys: number, inflight: number, worker: number, workers: number) {
  let next = worker;
  let ops = 0;
  let errors = 0;
  let firstError: string | null = null;
  const loops: Promise<void>[] = [];
  for (let slot = 0; slot < inflight; slot++) {
    const client = clientOf(endpoints, worker * inflight + slot);
    loops.push(
      (async () => {
        for (let i = next; i < keys; i = next) {
          next += workers;
          const request = put.encode({ key: Buffer.from(keyOf(i)), value: VALUE });
          for (let attempt = 0; ; attempt++) {
            try {
              await client.unary(put.path, request);
              ops++;
              break;
            } catch (err) {
              errors++;
              firstError ??= errorText(err);
              if (attempt >= 5) throw err;
              await sleep(50);
            }
          }
        }
      })(),
    );
  }
  await Promise.all(loops);
  return { ops, errors, firstError };
}

/** Probes go through grpc-js, the reference client, whatever --client says. */
async function probe(endpoints: string[], what: 'lease' | 'watch' | 'v3lock'): Promise<boolean> {
  const client = new GrpcJsChannel(endpoints[0]!);
  try {
    if (what === 'watch') {
      const s = await openWatch(
        client,
        { key: Buffer.from('bench/probe') },
        () => {},
        () => {},
      );
      s.cancel();
      return true;
    }
    const id = await grant(client);
    try {
      if (what === 'v3lock') {
        const name = Buffer.from('bench/probe-lock');
        const key = bytesField(await client.unary(lockRpc.path, lockRpc.encode({ name, lease: id })), 2);
        if (!key) throw new Error('Lock returned no key');
        await client.unary(unlockRpc.path, unlockRpc.encode({ key }));
      }
    } finally {
      await client.unary(leaseRevoke.path, leaseRevoke.encode({ ID: id })).catch(() => {});
    }
    return true;
  } finally {
    client.close();
  }
}

port.on('message', (m: ToWorker) => {
  const fail = (err: unknown) => send({ type: 'error', message: errorText(err) });
  switch (m.type) {
    case 'setup':
      setup(m.spec).then(() => send({ type: 'ready' }), fail);
      break;
    case 'go':
      go(m.startAt, m.windowStart, m.windowEnd).then(
        (result) => send({ type: 'result', result }, [result.samples.buffer as ArrayBuffer]),
        fail,
      );
      break;
    case 'preload':
      preload(m.endpoints, m.keys, m.inflight, WORKER_INDEX, WORKERS).then(
        (r) => send({ type: 'preloaded', ...r }),
        fail,
      );
      break;
    case 'probe':
      probe(m.endpoints, m.what).then(
        () => send({ type: 'probed', supported: true, detail: '' }),
        (err: unknown) =>
          isUnimplemented(err)
            ? send({ type: 'probed', supported: false, detail: errorText(err) })
            : send({ type: 'probed', supported: false, detail: `error: ${errorText(err)}` }),
      );
      break;
    case 'close':
      for (const cs of clients.values()) for (const c of cs) c.close();
      clients.clear();
      port.close();
      break;
  }
});
