import { type GrpcCall, type ServiceError, Status, type UnaryHandler } from '../../grpc/call.js';
import {
  fromByteString,
  type KeyValue,
  prefixEnd,
  type RangeOp,
  type Store,
  toByteString,
  type WatchEvent,
  type Watcher,
} from '../../store/index.js';
import { type EtcdContext, etcdError, toEtcdError, unary } from './context.js';
import { expect } from './kv.js';

/**
 * What the Lock and Election services share: etcd's client-side concurrency recipes
 * (client/v3/concurrency: Session, Mutex, Election), run inside the server against the store.
 * Keys are `<name>/<lease id in hex>`; the holder is the key with the lowest create revision
 * under `<name>/`; a waiter waits for the deletion of the key created just before its own.
 */

/** etcd's concurrency.defaultSessionTTL: a Lock or Campaign with lease 0 gets a lease this long. */
export const SESSION_TTL_MS = 60_000;

/** How often a wait checks that its store was not replaced by a snapshot install. */
const STORE_CHECK_MS = 500;

export const bytes = (v: unknown): Uint8Array => (v instanceof Uint8Array ? v : new Uint8Array(0));

/** `<name>/`: every candidate key of a lock or election. */
export function prefixOf(name: Uint8Array): Uint8Array {
  return Buffer.concat([name, Buffer.from('/')]);
}

/** `<name>/<lease in hex>`, as concurrency.Mutex and Election name their keys (fmt %x). */
export function candidateKey(prefix: Uint8Array, lease: number): Uint8Array {
  return Buffer.concat([prefix, Buffer.from(lease.toString(16))]);
}

export interface KeyRange {
  key: Uint8Array;
  rangeEnd?: Uint8Array;
}

export function prefixRange(prefix: Uint8Array): KeyRange {
  const end = prefixEnd(toByteString(prefix));
  return { key: prefix, rangeEnd: end === null ? new Uint8Array([0]) : fromByteString(end) };
}

/** etcd's WithFirstCreate on a prefix: the oldest key (lowest create revision), as a range op. */
export function firstCreatedOp(prefix: Uint8Array): RangeOp {
  return { type: 'range', ...prefixRange(prefix), sortTarget: 'create', sortOrder: 'ascend', limit: 1 };
}

export function firstCreated(store: Store, prefix: Uint8Array): KeyValue | null {
  return store.range(firstCreatedOp(prefix)).kvs[0] ?? null;
}

/** The newest key under the prefix created below `maxCreateRevision` (waitDeletes' predecessor). */
export function lastCreatedBelow(
  store: Store,
  prefix: Uint8Array,
  maxCreateRevision: number,
): KeyValue | null {
  if (maxCreateRevision < 1) return null;
  const out = store.range({
    ...prefixRange(prefix),
    sortTarget: 'create',
    sortOrder: 'descend',
    limit: 1,
    maxCreateRevision,
  });
  return out.kvs[0] ?? null;
}

export const CANCELLED = () => etcdError(Status.CANCELLED, 'context canceled');

/**
 * etcd's lock and election servers call the store through an in-process clientv3, which turns
 * every gRPC error into a plain error with the same text: callers see status UNKNOWN and
 * etcd's message (e.g. "etcdserver: requested lease not found"; checked against etcd 3.4).
 */
export function recipeError(err: unknown): ServiceError {
  const e = toEtcdError(err);
  if (e.code === Status.CANCELLED || e.code === Status.UNKNOWN) return e;
  return etcdError(Status.UNKNOWN, e.details || e.message);
}

/** `unary` for the recipe services: errors as etcd's lock/election servers return them. */
export function recipeUnary<Req, Res>(
  handler: (request: Req, call: GrpcCall) => Promise<Res>,
): UnaryHandler<Res> {
  return unary((request: Req, call: GrpcCall) =>
    handler(request, call).catch((err: unknown) => {
      throw recipeError(err);
    }),
  );
}

/** An AbortSignal that fires when the client cancels the call (or its deadline passes). */
export function cancelSignal(call: {
  readonly cancelled: boolean;
  once(event: 'cancelled', listener: () => void): unknown;
}): AbortSignal {
  const controller = new AbortController();
  if (call.cancelled) controller.abort();
  else call.once('cancelled', () => controller.abort());
  return controller.signal;
}

/**
 * Make this server's store reflect a write acknowledged at `revision` (a write forwarded to the
 * leader returns before this follower applied it): then local reads see it and every write
 * before it.
 */
export async function catchUp(ctx: EtcdContext, revision: number): Promise<void> {
  if (ctx.server.store.revision < revision) await ctx.server.readBarrier('default');
}

/** A lease for a request with lease 0, as concurrency.NewSession grants one (never kept alive here). */
export async function sessionLease(ctx: EtcdContext, lease: number): Promise<number> {
  if (lease !== 0) return lease;
  const granted = expect(
    await ctx.server.write({ type: 'leaseGrant', id: 0, ttlMs: SESSION_TTL_MS }),
    'leaseGrant',
  );
  return granted.id;
}

export type Step<T> = { done: T } | { watch: KeyRange[] };

/**
 * Evaluate `step` on this server's store until it says done. Between evaluations it waits for
 * a change to any of the ranges it asked to watch (a store watch created in the same turn as
 * the evaluation, so no change slips between them), for the store to be replaced by a snapshot
 * install, or for `signal` (then it throws CANCELLED). `events` are the watched changes that
 * woke it (every event of the applied batch; empty after a store replacement).
 */
export async function until<T>(
  ctx: EtcdContext,
  signal: AbortSignal,
  step: (store: Store, events: WatchEvent[]) => Step<T>,
): Promise<T> {
  let events: WatchEvent[] = [];
  for (;;) {
    if (signal.aborted) throw CANCELLED();
    const store = ctx.server.store;
    const next = step(store, events);
    if ('done' in next) return next.done;
    events = await changed(ctx, store, next.watch, signal);
  }
}

function changed(
  ctx: EtcdContext,
  store: Store,
  ranges: KeyRange[],
  signal: AbortSignal,
): Promise<WatchEvent[]> {
  return new Promise((resolve, reject) => {
    const watchers: Watcher[] = [];
    let finished = false;
    let scheduled = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      clearInterval(timer);
      signal.removeEventListener('abort', finish);
      const events: WatchEvent[] = [];
      for (const w of watchers) {
        if (!w.canceled) events.push(...w.take().events);
        w.cancel();
      }
      events.sort((a, b) => a.kv.modRevision - b.kv.modRevision);
      resolve(events);
    };
    // Called during an apply: take the events once the whole applied batch is in (a microtask
    // runs after the synchronous apply loop), so one wake-up sees all of them.
    const ready = () => {
      if (scheduled) return;
      scheduled = true;
      queueMicrotask(finish);
    };
    const timer = setInterval(() => {
      if (ctx.server.store !== store) finish();
    }, STORE_CHECK_MS);
    timer.unref();
    signal.addEventListener('abort', finish, { once: true });
    try {
      for (const r of ranges) {
        const options: Parameters<Store['watch']>[0] = { key: r.key, onReady: ready };
        if (r.rangeEnd) options.rangeEnd = r.rangeEnd;
        watchers.push(store.watch(options));
      }
    } catch (err) {
      finished = true;
      clearInterval(timer);
      signal.removeEventListener('abort', finish);
      for (const w of watchers) w.cancel();
      reject(err);
    }
  });
}

export type Turn = 'ours' | 'lost';

/**
 * waitDeletes: wait until no key under `prefix` was created before `myRevision`, by waiting for
 * the deletion of the newest such key, again and again. Ends early with 'lost' when our own key
 * (created at `myRevision`) is gone (its lease expired, or someone deleted it).
 */
export function waitForTurn(
  ctx: EtcdContext,
  signal: AbortSignal,
  prefix: Uint8Array,
  key: Uint8Array,
  myRevision: number,
): Promise<Turn> {
  return until<Turn>(ctx, signal, (store) => {
    if (store.get(key)?.createRevision !== myRevision) return { done: 'lost' };
    const predecessor = lastCreatedBelow(store, prefix, myRevision - 1);
    if (predecessor === null) return { done: 'ours' };
    return { watch: [{ key: predecessor.key }, { key }] };
  });
}

/** Delete our candidate key if it is still the incarnation created at `revision` (Resign, cleanup). */
export async function dropCandidate(
  ctx: EtcdContext,
  key: Uint8Array,
  revision: number,
): Promise<{ revision: number; succeeded: boolean }> {
  const result = expect(
    await ctx.server.write({
      type: 'txn',
      compare: [{ key, target: 'create', result: 'equal', value: revision }],
      success: [{ type: 'deleteRange', key }],
      failure: [],
    }),
    'txn',
  );
  return { revision: result.revision, succeeded: result.succeeded };
}

/** Best-effort cleanup after the caller went away: the outcome has nobody to go to. */
export function dropCandidateLater(ctx: EtcdContext, key: Uint8Array, revision: number): void {
  dropCandidate(ctx, key, revision).catch((err: unknown) =>
    ctx.server.log.debug('could not remove an abandoned lock/election key', { error: String(err) }),
  );
}
