/**
 * etcd-style watches. A watcher is either synced (receives events as revisions are applied) or
 * unsynced (reads them from the changelog on `take`), as etcd's watchableStore keeps synced and
 * unsynced groups. A synced watcher whose buffer is full is moved to unsynced at the revision
 * it could not take, so a slow consumer costs bounded memory and never sees a gap; if
 * compaction overtakes it, it is cancelled with the compact revision (the explicit "resync
 * needed" signal of etcd's ErrCompacted, never a silent gap: etcd #17529, #18089).
 */
import { prefixEnd, toByteString } from './bytes.js';
import { invariant, StoreError, StoreErrorCode } from './errors.js';
import { KeyMatcher } from './key-matcher.js';
import { decodeRange, inRange, type KeyRange, toKeyValue } from './kv-view.js';
import type { Mvcc, Version } from './mvcc.js';
import type { WatchEvent } from './types.js';

export interface WatchOptions {
  key: Uint8Array;
  /** etcd range_end conventions (absent: one key; [0]: all keys >= key). */
  rangeEnd?: Uint8Array;
  /** First revision to deliver; 0/absent: changes after the current revision. */
  startRevision?: number;
  prevKv?: boolean;
  /** etcd WatchCreateRequest filters. */
  noPut?: boolean;
  noDelete?: boolean;
  /** Buffer bound before falling back to catch-up (defaults to the store limit). */
  maxBufferedEvents?: number;
  /**
   * Called after an apply that gave the watcher something to take (events, a lag, a
   * cancellation). Called once per apply at most, after the store is consistent; it should
   * schedule a `take`, not do heavy work inline.
   */
  onReady?: (watcher: Watcher) => void;
}

export interface WatchBatch {
  events: WatchEvent[];
  /** Store revision when taken (etcd response header revision). */
  revision: number;
  /** True once the watcher is delivering live events (progress notifications are meaningful). */
  synced: boolean;
  /** The watcher fell behind since the last take and is catching up from history. */
  lagging: boolean;
  /** The watcher is over: cancelled by the client, or compacted (then compactRevision > 0). */
  canceled: boolean;
  /** Set when history it needed was compacted: resync from here (etcd compact_revision). */
  compactRevision: number;
}

export interface WatchSource {
  mvcc: Mvcc;
  revision(): number;
  compactRevision(): number;
}

type WatcherState = 'synced' | 'unsynced' | 'canceled';

/** Changelog entries one catch-up call may scan, whatever it finds (bounded work per take). */
const CATCH_UP_SCAN_ENTRIES = 100_000;

export class Watcher {
  readonly id: number;
  readonly range: KeyRange;
  readonly prevKv: boolean;
  readonly noPut: boolean;
  readonly noDelete: boolean;
  readonly maxBufferedEvents: number;
  readonly onReady: ((watcher: Watcher) => void) | undefined;
  /** @internal */ state: WatcherState = 'synced';
  /** @internal next revision to read from history when unsynced. */ nextRevision = 0;
  /** @internal events at revisions below this are not delivered (future start revision). */ minRevision = 0;
  /** @internal */ buffer: WatchEvent[] = [];
  /** @internal revision being appended to the buffer and where it started (to undo on overflow). */
  batchRevision = 0;
  /** @internal */ batchStart = 0;
  /** @internal */ lagged = false;
  /** @internal */ compactRevision = 0;
  /** @internal */ kind: 'key' | 'prefix' | 'range';
  private readonly hub: WatchHub;

  constructor(hub: WatchHub, id: number, range: KeyRange, options: WatchOptions, maxBufferedEvents: number) {
    this.hub = hub;
    this.id = id;
    this.range = range;
    this.prevKv = options.prevKv ?? false;
    this.noPut = options.noPut ?? false;
    this.noDelete = options.noDelete ?? false;
    this.maxBufferedEvents = maxBufferedEvents;
    this.onReady = options.onReady;
    this.kind = range.single ? 'key' : range.end === prefixEnd(range.start) ? 'prefix' : 'range';
  }

  /** Events ready now (live or from history), with the watcher's status. */
  take(): WatchBatch {
    return this.hub.take(this);
  }

  cancel(): void {
    this.hub.cancel(this);
  }

  get canceled(): boolean {
    return this.state === 'canceled';
  }

  /** Buffered events not yet taken. */
  get pending(): number {
    return this.buffer.length;
  }
}

export class WatchHub {
  private readonly source: WatchSource;
  private readonly maxWatchers: number;
  private readonly defaultBuffer: number;
  private readonly maxCatchUpEvents: number;
  private readonly synced = new KeyMatcher<Watcher>();
  private readonly unsynced = new Set<Watcher>();
  private readonly toNotify = new Set<Watcher>();
  private nextId = 1;
  private count = 0;

  constructor(
    source: WatchSource,
    limits: { maxWatchers: number; maxWatcherBufferedEvents: number; maxCatchUpEvents: number },
  ) {
    this.source = source;
    this.maxWatchers = limits.maxWatchers;
    this.defaultBuffer = limits.maxWatcherBufferedEvents;
    this.maxCatchUpEvents = limits.maxCatchUpEvents;
  }

  get size(): number {
    return this.count;
  }

  watch(options: WatchOptions): Watcher {
    if (this.count >= this.maxWatchers) {
      throw new StoreError(StoreErrorCode.TooManyWatchers, `too many watchers: limit is ${this.maxWatchers}`);
    }
    const range = decodeRange(options.key, options.rangeEnd);
    if (range.single && toByteString(options.key) === '') {
      throw new StoreError(StoreErrorCode.EmptyKey, 'key is not provided');
    }
    const buffer = options.maxBufferedEvents ?? this.defaultBuffer;
    if (!Number.isSafeInteger(buffer) || buffer < 1) {
      throw new StoreError(StoreErrorCode.InvalidArgument, `maxBufferedEvents must be >= 1: got ${buffer}`);
    }
    const watcher = new Watcher(this, this.nextId++, range, options, buffer);
    const current = this.source.revision();
    const start = options.startRevision ?? 0;
    const compacted = this.source.compactRevision();
    if (start > 0 && start < compacted) {
      throw new StoreError(StoreErrorCode.Compacted, `required revision ${start} has been compacted`, {
        compactRevision: compacted,
      });
    }
    this.count++;
    watcher.minRevision = start;
    if (start > 0 && start <= current) {
      watcher.state = 'unsynced';
      watcher.nextRevision = start;
      this.unsynced.add(watcher);
    } else {
      this.register(watcher);
    }
    return watcher;
  }

  private register(watcher: Watcher): void {
    watcher.state = 'synced';
    if (watcher.kind === 'key') this.synced.addKey(watcher.range.start, watcher);
    else if (watcher.kind === 'prefix') this.synced.addPrefix(watcher.range.start, watcher);
    else this.synced.addRange(watcher.range, watcher);
  }

  private unregister(watcher: Watcher): void {
    if (watcher.kind === 'key') this.synced.removeKey(watcher.range.start, watcher);
    else if (watcher.kind === 'prefix') this.synced.removePrefix(watcher.range.start, watcher);
    else this.synced.removeRange(watcher);
  }

  cancel(watcher: Watcher): void {
    if (watcher.state === 'canceled') return;
    if (watcher.state === 'synced') this.unregister(watcher);
    else this.unsynced.delete(watcher);
    watcher.state = 'canceled';
    this.count--;
  }

  /** Deliver the versions committed at `revision` (in key order) to synced watchers. */
  publish(revision: number, versions: Version[]): void {
    if (this.synced.size === 0) return;
    const mvcc = this.source.mvcc;
    for (const version of versions) {
      let event: WatchEvent | undefined;
      let withPrevious: WatchEvent | undefined;
      this.synced.match(version.key, (watcher) => {
        if (watcher.state !== 'synced') return; // overflowed earlier in this revision
        if (version.live ? watcher.noPut : watcher.noDelete) return;
        if (revision < watcher.minRevision) return;
        let delivered: WatchEvent;
        if (watcher.prevKv) {
          if (withPrevious === undefined) {
            const previous = mvcc.previous(version);
            withPrevious = {
              type: version.live ? 'put' : 'delete',
              kv: event?.kv ?? toKeyValue(version),
              prevKv: previous ? toKeyValue(previous) : null,
            };
          }
          delivered = withPrevious;
        } else {
          if (event === undefined) {
            event = {
              type: version.live ? 'put' : 'delete',
              kv: withPrevious?.kv ?? toKeyValue(version),
              prevKv: null,
            };
          }
          delivered = event;
        }
        this.deliver(watcher, revision, delivered);
      });
    }
  }

  private deliver(watcher: Watcher, revision: number, event: WatchEvent): void {
    if (watcher.batchRevision !== revision) {
      watcher.batchRevision = revision;
      watcher.batchStart = watcher.buffer.length;
    }
    if (watcher.buffer.length >= watcher.maxBufferedEvents) {
      // Too far behind: drop this revision's partial batch and fall back to history from it.
      watcher.buffer.length = watcher.batchStart;
      this.unregister(watcher);
      watcher.state = 'unsynced';
      watcher.nextRevision = revision;
      watcher.lagged = true;
      this.unsynced.add(watcher);
      this.toNotify.add(watcher);
      return;
    }
    if (watcher.buffer.length === 0) this.toNotify.add(watcher);
    watcher.buffer.push(event);
  }

  /** After compaction: unsynced watchers that needed compacted history are cancelled. */
  compacted(compactRevision: number): void {
    for (const watcher of this.unsynced) {
      if (watcher.buffer.length === 0 && watcher.nextRevision < compactRevision) {
        this.cancelCompacted(watcher, compactRevision);
      }
    }
  }

  private cancelCompacted(watcher: Watcher, compactRevision: number): void {
    this.cancel(watcher);
    watcher.compactRevision = compactRevision;
    this.toNotify.add(watcher);
  }

  take(watcher: Watcher): WatchBatch {
    const revision = this.source.revision();
    if (watcher.buffer.length > 0 || watcher.state !== 'unsynced') {
      const events = watcher.buffer;
      watcher.buffer = [];
      watcher.batchRevision = 0;
      const lagging = watcher.lagged;
      watcher.lagged = false;
      return {
        events,
        revision,
        synced: watcher.state === 'synced',
        lagging,
        canceled: watcher.state === 'canceled',
        compactRevision: watcher.compactRevision,
      };
    }
    const compactRevision = this.source.compactRevision();
    if (watcher.nextRevision < compactRevision) {
      this.cancelCompacted(watcher, compactRevision);
      this.toNotify.delete(watcher);
      return { events: [], revision, synced: false, lagging: false, canceled: true, compactRevision };
    }
    const events = this.catchUp(watcher);
    const lagging = watcher.lagged;
    watcher.lagged = false;
    return {
      events,
      revision,
      synced: (watcher.state as WatcherState) === 'synced',
      lagging,
      canceled: false,
      compactRevision: 0,
    };
  }

  /** Read the watcher's events from the changelog, a bounded amount per call. */
  private catchUp(watcher: Watcher): WatchEvent[] {
    const mvcc = this.source.mvcc;
    const events: WatchEvent[] = [];
    let position = mvcc.changePosition(watcher.nextRevision);
    const end = mvcc.changeEnd;
    let scanned = 0;
    while (position < end) {
      const version = mvcc.changeAt(position)!;
      const revision = version.modRevision;
      // Stop only between revisions, so a revision's events are never split across takes.
      if (
        revision !== watcher.nextRevision &&
        (events.length >= this.maxCatchUpEvents || scanned >= CATCH_UP_SCAN_ENTRIES)
      ) {
        break;
      }
      watcher.nextRevision = revision;
      position++;
      scanned++;
      if (!inRange(watcher.range, version.key)) continue;
      if (version.live ? watcher.noPut : watcher.noDelete) continue;
      if (revision < watcher.minRevision) continue;
      let prevKv = null;
      if (watcher.prevKv) {
        const previous = mvcc.previous(version);
        prevKv = previous ? toKeyValue(previous) : null;
      }
      events.push({ type: version.live ? 'put' : 'delete', kv: toKeyValue(version), prevKv });
    }
    if (position >= end) {
      // Caught up with everything committed: from now on, events are pushed.
      this.unsynced.delete(watcher);
      this.register(watcher);
    } else {
      const next = mvcc.changeAt(position);
      invariant(next !== undefined, 'changelog position out of range');
      watcher.nextRevision = next.modRevision;
    }
    return events;
  }

  /** etcd progress notify: the revision a synced, drained watcher has seen everything up to. */
  progressRevision(watcher: Watcher): number | null {
    return watcher.state === 'synced' && watcher.buffer.length === 0 ? this.source.revision() : null;
  }

  /** Run onReady callbacks gathered during an apply. */
  flush(): void {
    if (this.toNotify.size === 0) return;
    const ready = [...this.toNotify];
    this.toNotify.clear();
    let failure: unknown;
    for (const watcher of ready) {
      try {
        watcher.onReady?.(watcher);
      } catch (error) {
        failure ??= error;
      }
    }
    if (failure !== undefined) throw failure;
  }
}
