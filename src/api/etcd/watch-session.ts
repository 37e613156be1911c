import { type Store, StoreError, StoreErrorCode, type Watcher } from '../../store/index.js';
import { type EtcdContext, header, int64, toEtcdError } from './context.js';
import { onStoreSwap } from './store-swap.js';
import { fragmentResponse, toWireEvent, type WatchResponse, watchResponse } from './watch-wire.js';

/**
 * One etcd watch stream, independent of its transport (gRPC here; an HTTP gateway may reuse
 * it): many watches, each a store watcher on this server's local store (etcd serves watches
 * from any member, too). Requests go in through `handleRequest`; responses come out, in
 * order, through `onResponse`. Back-pressure: when `onResponse` returns false no more events
 * are taken until `resume()`; meanwhile the store watcher buffers a bounded number of events,
 * then falls back to reading history, and is canceled with the compact revision if compaction
 * overtakes it, so a slow client costs bounded memory and never sees a silent gap.
 */

// biome-ignore lint/suspicious/noExplicitAny: decoded protobuf messages.
type Msg = any;

export const ERR_COMPACTED_REASON = 'etcdserver: mvcc: required revision has been compacted';
/** etcd mvcc.ErrWatcherDuplicateID / ErrEmptyWatcherRange, sent as cancel_reason. */
export const ERR_DUPLICATE_WATCH_ID = 'mvcc: duplicate watch ID provided on the WatchStream';
export const ERR_EMPTY_WATCH_RANGE = 'mvcc: watcher range is empty';
/** etcd's InvalidWatchID: a progress response on behalf of every watcher of the stream. */
const ALL_WATCHERS = -1;
/** etcd fragments at --max-request-bytes plus grpcOverheadBytes (512 KiB). */
const GRPC_OVERHEAD_BYTES = 512 * 1024;

let progressReportIntervalMs = 10 * 60 * 1000;

/** etcd's v3rpc.SetProgressReportInterval: the progress_notify period (10 minutes; tests shorten it). */
export function setProgressReportInterval(ms: number): void {
  progressReportIntervalMs = ms;
}

/** etcd adds up to 10% jitter so streams created together do not report together. */
function jitteredProgressInterval(): number {
  return progressReportIntervalMs + Math.floor((Math.random() * progressReportIntervalMs) / 10);
}

export interface WatchSessionOptions {
  /** Every response, in order. Return false when the transport is full (then call resume()). */
  onResponse: (response: WatchResponse) => boolean | undefined;
  /** An unexpected failure ended the session (the transport should fail the stream). */
  onError?: (error: unknown) => void;
  /** progress_notify period; defaults to the process-wide report interval. */
  progressIntervalMs?: number;
  /** Fragment limit for watches created with `fragment`; defaults to etcd's. */
  maxResponseBytes?: number;
}

interface WatchEntry {
  readonly id: number;
  readonly key: Uint8Array;
  readonly rangeEnd: Uint8Array | undefined;
  readonly prevKv: boolean;
  readonly noPut: boolean;
  readonly noDelete: boolean;
  readonly progressNotify: boolean;
  readonly fragment: boolean;
  watcher: Watcher;
  store: Store;
  /** First revision not yet delivered: where a replacement watcher resumes. */
  nextRevision: number;
  /** etcd's sws.progress[id]: no events since the last progress tick. */
  quiet: boolean;
}

const bytes = (v: unknown): Uint8Array => (v instanceof Uint8Array ? v : new Uint8Array(0));

export class WatchSession {
  private readonly entries = new Map<number, WatchEntry>();
  /** Watches with something to take: notified by the store, or still reading history. */
  private readonly ready = new Set<WatchEntry>();
  /** etcd assigns ids from 0, skipping ids clients chose. */
  private nextId = 0;
  private paused = false;
  private scheduled = false;
  private closed = false;
  private deferredProgress = false;
  private readonly maxResponseBytes: number;
  private readonly progressTimer: NodeJS.Timeout;
  private readonly unsubscribe: () => void;

  constructor(
    private readonly ctx: EtcdContext,
    private readonly options: WatchSessionOptions,
  ) {
    this.maxResponseBytes =
      options.maxResponseBytes ?? ctx.server.store.limits.maxValueBytes + GRPC_OVERHEAD_BYTES;
    this.progressTimer = setInterval(
      () => this.guard(() => this.progressTick()),
      options.progressIntervalMs ?? jitteredProgressInterval(),
    );
    this.progressTimer.unref();
    this.unsubscribe = onStoreSwap(ctx.server, (store) => this.guard(() => this.storeReplaced(store)));
  }

  /** One etcdserverpb.WatchRequest (create, cancel or progress; anything else is ignored, as etcd). */
  handleRequest(request: Msg): void {
    if (this.closed || !request) return;
    this.guard(() => {
      if (request.create_request) this.create(request.create_request);
      else if (request.cancel_request) this.cancel(request.cancel_request);
      else if (request.progress_request) this.requestProgress();
    });
  }

  /** The transport drained: take events again. */
  resume(): void {
    this.paused = false;
    this.schedule();
  }

  /** The stream is over: cancel every store watcher. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const entry of this.entries.values()) entry.watcher.cancel();
    this.entries.clear();
    this.ready.clear();
    clearInterval(this.progressTimer);
    this.unsubscribe();
  }

  /** Watches currently open on this session. */
  get size(): number {
    return this.entries.size;
  }

  // ------------------------------------------------------------ requests

  private create(r: Msg): void {
    const store = this.ctx.server.store;
    const current = store.revision;
    const failed = (reason: string) =>
      this.send(
        watchResponse(header(this.ctx, current), -1, {
          created: true,
          canceled: true,
          cancel_reason: reason,
        }),
      );
    // etcd: an empty key is "\0", the smallest key; range_end "\0" means every key >= key.
    const key = bytes(r.key).length > 0 ? bytes(r.key) : new Uint8Array([0]);
    const end = bytes(r.range_end);
    const rangeEnd = end.length > 0 ? end : undefined;
    const fromKey = end.length === 1 && end[0] === 0;
    if (rangeEnd && !fromKey && Buffer.compare(key, rangeEnd) >= 0) {
      failed(ERR_EMPTY_WATCH_RANGE);
      return;
    }
    let requestedId: number;
    let startRevision: number;
    try {
      requestedId = int64(r.watch_id, 'watch_id');
      startRevision = int64(r.start_revision, 'start_revision');
    } catch (err) {
      failed(toEtcdError(err).details);
      return;
    }
    if (requestedId !== 0 && this.entries.has(requestedId)) {
      failed(ERR_DUPLICATE_WATCH_ID);
      return;
    }
    const id = requestedId !== 0 ? requestedId : this.allocateId();
    const filters = new Set<string>((r.filters ?? []).map((f: unknown) => String(f).toUpperCase()));
    // etcd: start_revision 0 means "after the current revision".
    const start = startRevision === 0 ? current + 1 : startRevision;
    const entry: WatchEntry = {
      id,
      key,
      rangeEnd,
      prevKv: !!r.prev_kv,
      noPut: filters.has('NOPUT') || filters.has('0'),
      noDelete: filters.has('NODELETE') || filters.has('1'),
      progressNotify: !!r.progress_notify,
      fragment: !!r.fragment,
      watcher: null as unknown as Watcher, // opened just below (its callback needs this entry)
      store,
      nextRevision: start,
      quiet: true,
    };
    try {
      if (start < 0) throw new StoreError(StoreErrorCode.Compacted, 'negative start revision');
      entry.watcher = this.openWatcher(entry, store, start);
    } catch (err) {
      if (err instanceof StoreError && err.code === StoreErrorCode.Compacted) {
        // etcd announces the watch, then cancels it with the compact revision (chooseAll).
        this.send(watchResponse(header(this.ctx, current), id, { created: true }));
        this.sendCompacted(id, store.compactRevision, current);
        return;
      }
      failed(toEtcdError(err).details);
      return;
    }
    this.entries.set(id, entry);
    this.send(watchResponse(header(this.ctx, current), id, { created: true }));
    if (start <= current) this.markReady(entry); // history to replay: nobody else will notify
  }

  private allocateId(): number {
    while (this.entries.has(this.nextId)) this.nextId++;
    return this.nextId++;
  }

  private openWatcher(entry: WatchEntry, store: Store, startRevision: number): Watcher {
    const watcher: Watcher = store.watch({
      key: entry.key,
      rangeEnd: entry.rangeEnd,
      startRevision,
      prevKv: entry.prevKv,
      noPut: entry.noPut,
      noDelete: entry.noDelete,
      onReady: () => {
        if (entry.watcher === watcher && this.entries.get(entry.id) === entry) this.markReady(entry);
      },
    });
    return watcher;
  }

  /** etcd answers a cancel of a live watch; a cancel of an unknown id gets no answer. */
  private cancel(r: Msg): void {
    const id = Number(r.watch_id ?? 0);
    const entry = this.entries.get(id);
    if (!entry) return;
    this.forget(entry);
    entry.watcher.cancel();
    this.send(watchResponse(header(this.ctx, this.ctx.server.store.revision), id, { canceled: true }));
  }

  /**
   * etcd (RequestProgressAll): one response with watch_id -1 and the current revision, sent
   * once every watcher of the stream is synced; until then it is deferred, not dropped.
   */
  private requestProgress(): void {
    if (this.allSynced()) this.sendProgressAll();
    else this.deferredProgress = true;
  }

  private allSynced(): boolean {
    if (this.ready.size > 0) return false;
    for (const entry of this.entries.values())
      if (entry.store.progressRevision(entry.watcher) === null) return false;
    return true;
  }

  private sendProgressAll(): void {
    this.send(watchResponse(header(this.ctx, this.ctx.server.store.revision), ALL_WATCHERS));
  }

  /** etcd's progress ticker: watches with progress_notify and no events since the last tick. */
  private progressTick(): void {
    if (this.closed || this.paused) return;
    for (const entry of this.entries.values()) {
      if (!entry.progressNotify) continue;
      if (entry.quiet && !this.ready.has(entry)) {
        const revision = entry.store.progressRevision(entry.watcher);
        if (revision !== null) this.send(watchResponse(header(this.ctx, revision), entry.id));
      }
      entry.quiet = true;
    }
  }

  // ------------------------------------------------------------ delivery

  private markReady(entry: WatchEntry): void {
    this.ready.add(entry);
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled || this.closed || this.paused) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.guard(() => this.pump());
    });
  }

  /** Take from every ready watch once (a long history is read over several turns). */
  private pump(): void {
    if (this.closed) return;
    const batch = [...this.ready];
    this.ready.clear();
    for (const entry of batch) {
      if (this.entries.get(entry.id) !== entry) continue;
      if (this.paused) this.ready.add(entry);
      else this.deliver(entry);
    }
    if (this.deferredProgress && !this.paused && this.allSynced()) {
      this.deferredProgress = false;
      this.sendProgressAll();
    }
    if (this.ready.size > 0) this.schedule();
  }

  private deliver(entry: WatchEntry): void {
    const batch = entry.watcher.take();
    if (batch.canceled) {
      this.forget(entry);
      if (batch.compactRevision > 0) this.sendCompacted(entry.id, batch.compactRevision, batch.revision);
      return;
    }
    // Still reading history: no store notification will come, so keep taking.
    if (!batch.synced) this.ready.add(entry);
    if (batch.events.length === 0) {
      if (batch.synced) entry.nextRevision = Math.max(entry.nextRevision, batch.revision + 1);
      return;
    }
    // A synced watcher has seen everything up to the store revision. A catch-up batch ends on
    // a whole revision (the store never splits one), and its header says so: etcd puts the
    // current revision there, which would make clients that resume from the header skip events.
    const last = batch.events[batch.events.length - 1]!.kv.modRevision;
    const revision = batch.synced ? batch.revision : last;
    entry.nextRevision = Math.max(entry.nextRevision, revision + 1);
    entry.quiet = false;
    const response = watchResponse(header(this.ctx, revision), entry.id, {
      events: batch.events.map(toWireEvent),
    });
    const parts = entry.fragment ? fragmentResponse(response, this.maxResponseBytes) : [response];
    for (const part of parts) this.send(part);
  }

  /** etcd's compaction cancel: compact_revision set and canceled; the client must resync. */
  private sendCompacted(id: number, compactRevision: number, revision: number): void {
    this.send(
      watchResponse(header(this.ctx, revision), id, {
        canceled: true,
        compact_revision: String(compactRevision),
        cancel_reason: ERR_COMPACTED_REASON,
      }),
    );
  }

  /**
   * A snapshot install replaced the store: every watch moves to the new store from its next
   * undelivered revision (the new store holds the same history, so nothing is lost or
   * repeated), or is canceled with the compact revision if that history is gone.
   */
  private storeReplaced(store: Store): void {
    for (const entry of [...this.entries.values()]) {
      if (entry.store === store) continue;
      entry.watcher.cancel();
      this.ready.delete(entry);
      try {
        entry.watcher = this.openWatcher(entry, store, entry.nextRevision);
        entry.store = store;
        this.markReady(entry);
      } catch (err) {
        this.forget(entry);
        if (err instanceof StoreError && err.code === StoreErrorCode.Compacted) {
          this.sendCompacted(entry.id, store.compactRevision, store.revision);
        } else {
          const reason = `etcdserver: watch canceled after a snapshot install: ${toEtcdError(err).details}`;
          this.send(
            watchResponse(header(this.ctx, store.revision), entry.id, {
              canceled: true,
              cancel_reason: reason,
            }),
          );
        }
      }
    }
  }

  // ------------------------------------------------------------ plumbing

  private forget(entry: WatchEntry): void {
    if (this.entries.get(entry.id) === entry) this.entries.delete(entry.id);
    this.ready.delete(entry);
  }

  private send(response: WatchResponse): void {
    if (this.closed) return;
    if (this.options.onResponse(response) === false) this.paused = true;
  }

  /** Work from timers and callbacks must not throw into the event loop: it ends the session. */
  private guard(work: () => void): void {
    try {
      work();
    } catch (err) {
      this.close();
      if (this.options.onError) this.options.onError(err);
      else throw err;
    }
  }
}
