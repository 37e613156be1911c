/**
 * MVCC key index and revision history (etcd's mvcc: keyIndex + the revision-ordered backend).
 *
 * - `histories`: hash map key -> history (every retained version of the key, oldest first), so
 *   point reads and writes cost one hash lookup. A key with a single version stores the
 *   version itself, not a one-element array: most keys have one, and at 1M keys the array
 *   would cost ~50 bytes each.
 * - `keys`: the same keys in byte order (a B+ tree used as a sorted set) for range scans; it
 *   only changes when a key first appears or compaction removes it.
 * - `changes`: every retained version in revision order (the "changelog"), shared with the
 *   histories; watchers catch up from it and compaction walks it.
 * A version with `version === 0` is a tombstone (the key was deleted at `modRevision`).
 */
import BTreeModule from 'sorted-btree';
import type { ByteString } from './bytes.js';
import { invariant } from './errors.js';
import type { ConsulFlags } from './types.js';

// sorted-btree ships CommonJS with `exports.default`: under Node's ESM the class sits on
// `.default`; a CommonJS-interop loader may hand us the class itself.
type BTreeClass = typeof BTreeModule.default;
const BTree: BTreeClass =
  (BTreeModule as { default?: BTreeClass }).default ?? (BTreeModule as unknown as BTreeClass);
export type BTreeOf<K, V> = InstanceType<typeof BTreeModule.default<K, V>>;

export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function newTree<V>(): BTreeOf<ByteString, V> {
  return new BTree<ByteString, V>(undefined, compareStrings);
}

export function newTreeWith<K, V>(compare: (a: K, b: K) => number): BTreeOf<K, V> {
  return new BTree<K, V>(undefined, compare);
}

/** Bytes we charge each retained version beyond key and value (index entries, counters). */
export const VERSION_OVERHEAD_BYTES = 64;

/** One version of one key. Immutable once committed. */
export class Version {
  readonly key: ByteString;
  readonly value: ByteString;
  readonly createRevision: number;
  readonly modRevision: number;
  /** 0 marks a tombstone. */
  readonly version: number;
  readonly lease: number;
  readonly flags: ConsulFlags;
  readonly lockIndex: number;
  readonly session: number;

  constructor(
    key: ByteString,
    value: ByteString,
    createRevision: number,
    modRevision: number,
    version: number,
    lease: number,
    flags: ConsulFlags,
    lockIndex: number,
    session: number,
  ) {
    this.key = key;
    this.value = value;
    this.createRevision = createRevision;
    this.modRevision = modRevision;
    this.version = version;
    this.lease = lease;
    this.flags = flags;
    this.lockIndex = lockIndex;
    this.session = session;
  }

  get live(): boolean {
    return this.version !== 0;
  }
}

export function tombstone(key: ByteString, revision: number): Version {
  return new Version(key, '', 0, revision, 0, 0, 0, 0, 0);
}

export function versionCost(version: Version): number {
  return version.key.length + version.value.length + VERSION_OVERHEAD_BYTES;
}

export type History = Version | Version[];

export function latestOf(history: History): Version {
  if (history instanceof Version) return history;
  const last = history[history.length - 1];
  invariant(last !== undefined, 'empty key history');
  return last;
}

/** Latest version with modRevision <= revision, or undefined. Binary search over the history. */
function versionAt(history: History, revision: number): Version | undefined {
  if (history instanceof Version) return history.modRevision <= revision ? history : undefined;
  let low = 0;
  let high = history.length - 1;
  let found: Version | undefined;
  while (low <= high) {
    const middle = (low + high) >>> 1;
    const candidate = history[middle]!;
    if (candidate.modRevision <= revision) {
      found = candidate;
      low = middle + 1;
    } else {
      high = middle - 1;
    }
  }
  return found;
}

/** Visitor: return false to stop. */
export type VersionVisitor = (version: Version) => boolean;

/** sorted-btree's forRange stops when its callback returns `{ break }`. */
const BREAK = { break: true } as const;

/**
 * A frozen view of every key's history, for a snapshot that is read while applies go on.
 *
 * The key set is an O(1) copy-on-write clone of the key tree. Versions are immutable and new
 * ones only ever get a higher revision, so a reader that skips versions above its revision sees
 * the old history in the live map. Only compaction rewrites history (drops old versions, or a
 * whole key): before it does, the capture keeps the history as it was, unless the reader has
 * already passed that key.
 */
export class HistoryCapture {
  /** Histories compaction replaced before the reader reached them. */
  private readonly saved = new Map<ByteString, History>();
  /** The last key handed out; keys at or before it need no saving. */
  private cursor: ByteString | null = null;
  private done = false;

  constructor(
    private readonly mvcc: Mvcc,
    private readonly frozenKeys: BTreeOf<ByteString, undefined>,
  ) {}

  /**
   * Visit more of the keys that existed when the capture began, in order, each with its history
   * as it was then (versions written since come after them: skip by revision), until what
   * `visit` returns (a cost, such as versions written; at least 1 each) adds up to `max`.
   * Returns how many keys were visited; 0 once every key has been.
   */
  visitBatch(max: number, visit: (key: ByteString, history: History) => number): number {
    const high = this.frozenKeys.maxKey();
    if (this.done || high === undefined) return 0;
    const resumeAfter = this.cursor;
    const saved = this.saved;
    const live = this.mvcc.histories;
    let visited = 0;
    let spent = 0;
    this.frozenKeys.forRange(resumeAfter ?? this.frozenKeys.minKey()!, high, true, (key) => {
      if (key === resumeAfter) return;
      let history = saved.size > 0 ? saved.get(key) : undefined;
      if (history === undefined) history = live.get(key);
      else saved.delete(key);
      invariant(history !== undefined, () => `captured key ${key} lost its history`);
      this.cursor = key;
      visited++;
      spent += Math.max(1, visit(key, history));
      return spent >= max ? BREAK : undefined;
    });
    if (spent < max) this.done = true;
    return visited;
  }

  /** @internal Called by Mvcc before it replaces or removes the history of `key`. */
  beforeRewrite(key: ByteString, history: History): void {
    if (this.cursor !== null && key <= this.cursor) return;
    if (!this.saved.has(key)) this.saved.set(key, history);
  }

  end(): void {
    this.mvcc.endCapture(this);
  }
}

export class Mvcc {
  readonly histories = new Map<ByteString, History>();
  readonly keys: BTreeOf<ByteString, undefined> = newTree<undefined>();
  /** Changelog: versions with modRevision >= compactRevision, in (revision, key) order. */
  private changes: Version[] = [];
  /** Index in `changes` of the first retained entry (we shift lazily to avoid O(n) splices). */
  private changesStart = 0;
  /** Highest revision of a tombstone that compaction removed (Consul's graveyard max index). */
  compactedTombstoneMax = 0;
  liveKeys = 0;
  /** Bytes charged to all retained versions (the quota counts these). */
  storedBytes = 0;
  /** Snapshot captures in progress (usually none, at most one). */
  private readonly captures = new Set<HistoryCapture>();

  /** Start a capture of every key's history as of now; call `end()` when done with it. */
  beginCapture(): HistoryCapture {
    const capture = new HistoryCapture(this, this.keys.clone());
    this.captures.add(capture);
    return capture;
  }

  /** @internal */
  endCapture(capture: HistoryCapture): void {
    this.captures.delete(capture);
  }

  /** Latest version of a key, live or tombstone. */
  latest(key: ByteString): Version | undefined {
    const history = this.histories.get(key);
    return history === undefined ? undefined : latestOf(history);
  }

  latestLive(key: ByteString): Version | undefined {
    const latest = this.latest(key);
    return latest?.live ? latest : undefined;
  }

  /** The key as of `revision` (undefined if absent then). Caller checks the revision is readable. */
  getAt(key: ByteString, revision: number): Version | undefined {
    const history = this.histories.get(key);
    if (history === undefined) return undefined;
    const found = versionAt(history, revision);
    return found?.live ? found : undefined;
  }

  /** The version before `version` in its key's history, if still retained. */
  previous(version: Version): Version | undefined {
    const history = this.histories.get(version.key);
    if (history === undefined) return undefined;
    const found = versionAt(history, version.modRevision - 1);
    return found?.live ? found : undefined;
  }

  /**
   * Visit the keys in [start, end) (end null: unbounded) as of `revision` (null: latest),
   * skipping keys absent at that revision. Reverse walks from the end down.
   */
  scan(
    start: ByteString,
    end: ByteString | null,
    reverse: boolean,
    revision: number | null,
    visit: VersionVisitor,
  ) {
    const pick =
      revision === null
        ? (history: History) => {
            const latest = latestOf(history);
            return latest.live ? latest : undefined;
          }
        : (history: History) => {
            const found = versionAt(history, revision);
            return found?.live ? found : undefined;
          };
    const histories = this.histories;
    if (!reverse) {
      for (const key of this.keys.keys(start)) {
        if (end !== null && key >= end) return;
        const found = pick(histories.get(key)!);
        if (found !== undefined && !visit(found)) return;
      }
    } else {
      for (const [key] of this.keys.entriesReversed(end ?? undefined, undefined, end !== null)) {
        if (key < start) return;
        const found = pick(histories.get(key)!);
        if (found !== undefined && !visit(found)) return;
      }
    }
  }

  /** Visit the latest version (live or tombstone) of every key in [start, end). */
  scanLatestAny(start: ByteString, end: ByteString | null, visit: VersionVisitor): void {
    for (const key of this.keys.keys(start)) {
      if (end !== null && key >= end) return;
      if (!visit(latestOf(this.histories.get(key)!))) return;
    }
  }

  /**
   * Record a version written at its modRevision. Versions of one revision must be appended in
   * key order, and revisions in increasing order.
   */
  append(version: Version, history: History | undefined = this.histories.get(version.key)): void {
    const last = this.changes.length > this.changesStart ? this.changes[this.changes.length - 1] : undefined;
    invariant(
      last === undefined ||
        last.modRevision < version.modRevision ||
        (last.modRevision === version.modRevision && last.key < version.key),
      () => `changelog out of order: ${last?.modRevision} then ${version.modRevision}`,
    );
    if (history === undefined) {
      invariant(version.live, 'tombstone for a key with no history');
      this.histories.set(version.key, version);
      this.keys.set(version.key, undefined);
      this.liveKeys++;
    } else {
      const previous = latestOf(history);
      invariant(previous.modRevision < version.modRevision, 'key history must grow in revision order');
      if (previous.live && !version.live) this.liveKeys--;
      else if (!previous.live && version.live) this.liveKeys++;
      if (history instanceof Version) this.histories.set(version.key, [history, version]);
      else history.push(version);
    }
    this.changes.push(version);
    this.storedBytes += versionCost(version);
  }

  /** Number of retained changelog entries. */
  get changeCount(): number {
    return this.changes.length - this.changesStart;
  }

  /** Position in the changelog of the first entry with modRevision >= revision. */
  changePosition(revision: number): number {
    let low = this.changesStart;
    let high = this.changes.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.changes[middle]!.modRevision < revision) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  changeAt(position: number): Version | undefined {
    return position >= this.changesStart ? this.changes[position] : undefined;
  }

  get changeEnd(): number {
    return this.changes.length;
  }

  /**
   * Compact history at `revision` (etcd Compact): for every key keep the latest version at or
   * below `revision` and everything after; a tombstone below `revision` goes with its history.
   * Only keys that changed since the previous compaction can hold versions to drop, so we walk
   * the changelog from the old compact revision, not the whole key space.
   */
  compact(previousCompactRevision: number, revision: number): void {
    invariant(revision >= previousCompactRevision, 'compaction must move forward');
    const from = this.changePosition(previousCompactRevision);
    const to = this.changePosition(revision + 1);
    const touched = new Set<ByteString>();
    for (let position = from; position < to; position++) touched.add(this.changes[position]!.key);
    for (const key of touched) this.compactKey(key, revision);
    const keepFrom = this.changePosition(revision);
    this.changesStart = keepFrom;
    if (this.changesStart > 1024 && this.changesStart * 2 > this.changes.length) {
      this.changes = this.changes.slice(this.changesStart);
      this.changesStart = 0;
    }
  }

  private compactKey(key: ByteString, revision: number): void {
    const history = this.histories.get(key);
    if (history === undefined) return;
    const versions = history instanceof Version ? [history] : history;
    let keepFrom = -1;
    for (let i = versions.length - 1; i >= 0; i--) {
      if (versions[i]!.modRevision <= revision) {
        keepFrom = i;
        break;
      }
    }
    if (keepFrom < 0) return;
    const pivot = versions[keepFrom]!;
    if (!pivot.live && pivot.modRevision < revision) keepFrom++;
    if (keepFrom === 0) return;
    for (const capture of this.captures) capture.beforeRewrite(key, history);
    for (let i = 0; i < keepFrom; i++) {
      const dropped = versions[i]!;
      this.storedBytes -= versionCost(dropped);
      if (!dropped.live && dropped.modRevision > this.compactedTombstoneMax) {
        this.compactedTombstoneMax = dropped.modRevision;
      }
    }
    const kept = versions.slice(keepFrom);
    if (kept.length === 0) {
      this.histories.delete(key);
      this.keys.delete(key);
    } else {
      this.histories.set(key, kept.length === 1 ? kept[0]! : kept);
    }
  }

  /** Every retained version of every key, in key then revision order (snapshots). */
  *allHistories(): IterableIterator<Version[]> {
    for (const key of this.keys.keys()) {
      const history = this.histories.get(key)!;
      yield history instanceof Version ? [history] : history;
    }
  }

  /** Rebuild from restored histories (keys in order). */
  restoreHistory(versions: Version[], compactRevision: number): void {
    invariant(versions.length > 0, 'restored key with no versions');
    const key = versions[0]!.key;
    invariant(!this.histories.has(key), 'key restored twice');
    this.histories.set(key, versions.length === 1 ? versions[0]! : versions);
    this.keys.set(key, undefined);
    if (latestOf(versions).live) this.liveKeys++;
    for (const version of versions) {
      this.storedBytes += versionCost(version);
      if (version.modRevision >= compactRevision) this.changes.push(version);
    }
  }

  /** After restoreHistory calls: order the changelog by (revision, key). */
  finishRestore(): void {
    this.changes.sort((a, b) => a.modRevision - b.modRevision || compareStrings(a.key, b.key));
    this.changesStart = 0;
  }

  /** O(n) consistency check for tests. */
  checkInvariants(): void {
    let live = 0;
    let bytes = 0;
    for (const versions of this.allHistories()) {
      invariant(versions.length > 0, 'empty history');
      for (let i = 1; i < versions.length; i++) {
        invariant(versions[i - 1]!.modRevision < versions[i]!.modRevision, 'history out of order');
      }
      if (latestOf(versions).live) live++;
      for (const version of versions) bytes += versionCost(version);
    }
    invariant(live === this.liveKeys, () => `liveKeys ${this.liveKeys} but counted ${live}`);
    invariant(bytes === this.storedBytes, () => `storedBytes ${this.storedBytes} but counted ${bytes}`);
    invariant(this.keys.size === this.histories.size, 'key set and histories disagree');
    for (let i = this.changesStart + 1; i < this.changes.length; i++) {
      const a = this.changes[i - 1]!;
      const b = this.changes[i]!;
      invariant(
        a.modRevision < b.modRevision || (a.modRevision === b.modRevision && a.key < b.key),
        'changelog order',
      );
    }
  }
}
