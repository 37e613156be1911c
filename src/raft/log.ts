import { invariant } from './assert.js';
import { EntryArena } from './entry-arena.js';
import type { Entry, Snapshot } from './types.js';

/**
 * The in-memory Raft log of one server: the entries after the last compaction point, the
 * latest snapshot, and the watermarks that say what is durable, committed and applied.
 *
 *   offsetIndex < first entry ... stableIndex ... lastIndex
 *   applied <= committed <= lastIndex;   applied <= stableIndex
 *
 * Entries up to `stableIndex` are on disk; those after it are handed to the shell in the next
 * Ready. The log never reads from disk: the shell bounds its size by taking snapshots and
 * calling `compact`.
 */
export class RaftLog {
  /** The entry at position i has index offsetIndex + 1 + i. */
  private readonly entries = new EntryArena();
  /** Index and term of the last entry dropped by compaction (or covered by the snapshot). */
  offsetIndex = 0;
  offsetTerm = 0;
  /** Highest index known durable on this server's disk. */
  stableIndex = 0;
  /** First index not yet handed out for persistence. */
  unstableFrom = 1;
  committed = 0;
  /** Highest index handed to the application for applying. */
  applied = 0;
  /** Latest snapshot: received from a leader, or made by the application. */
  snapshot: Snapshot | null = null;
  /** A snapshot received from the leader that is not yet durable. */
  pendingSnapshot: Snapshot | null = null;
  /** Sum of `data` bytes of entries after `committed`, for the uncommitted-size limit. */
  uncommittedBytes = 0;

  /** Restore from what storage recovered. */
  static recover(snapshot: Snapshot | null, entries: Entry[], committed: number): RaftLog {
    const log = new RaftLog();
    if (snapshot) {
      log.snapshot = snapshot;
      log.offsetIndex = snapshot.meta.index;
      log.offsetTerm = snapshot.meta.term;
    }
    for (const [i, e] of entries.entries()) {
      invariant(e.index === log.offsetIndex + 1 + i, () => `recovered log has a gap at ${e.index}`);
    }
    for (const e of entries) log.entries.push(e);
    log.stableIndex = log.lastIndex();
    log.unstableFrom = log.lastIndex() + 1;
    log.committed = Math.min(Math.max(committed, log.offsetIndex), log.lastIndex());
    log.applied = log.offsetIndex;
    return log;
  }

  firstIndex(): number {
    return this.offsetIndex + 1;
  }

  lastIndex(): number {
    return this.offsetIndex + this.entries.length;
  }

  lastTerm(): number {
    const count = this.entries.length;
    return count > 0 ? this.entries.term(count - 1) : this.offsetTerm;
  }

  /** Term of the entry at `index`, or undefined when compacted away or beyond the end. */
  term(index: number): number | undefined {
    if (index === this.offsetIndex) return this.offsetTerm;
    if (index < this.offsetIndex || index > this.lastIndex()) return undefined;
    return this.entries.term(index - this.offsetIndex - 1);
  }

  /** The entry at `index`, or undefined when compacted away or beyond the end (a new object each call). */
  entry(index: number): Entry | undefined {
    if (index <= this.offsetIndex || index > this.lastIndex()) return undefined;
    return this.entries.entry(index - this.offsetIndex - 1, index);
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** §5.4.1: a candidate's log is at least as up-to-date as ours. */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const ourTerm = this.lastTerm();
    return lastTerm > ourTerm || (lastTerm === ourTerm && lastIndex >= this.lastIndex());
  }

  /**
   * Largest index <= `index` whose term is <= `term` (fast backtracking, as etcd-io/raft's
   * findConflictByTerm). Stops at the compaction point, where terms are no longer known.
   */
  findConflictByTerm(index: number, term: number): number {
    let i = Math.min(index, this.lastIndex());
    while (i > this.offsetIndex) {
      const t = this.term(i)!;
      if (t <= term) return i;
      i--;
    }
    return i;
  }

  /** Leader append of new entries at the end. */
  append(entries: Entry[]): void {
    for (const e of entries) {
      invariant(e.index === this.lastIndex() + 1, () => `append at ${e.index}, last is ${this.lastIndex()}`);
      invariant(e.term >= this.lastTerm(), 'terms in the log never decrease');
      this.entries.push(e);
      this.uncommittedBytes += e.data.byteLength;
    }
  }

  /**
   * Follower side of AppendEntries (Figure 2, receiver steps 2–5). Returns the index of the
   * last new entry, or null when the log does not contain (prevIndex, prevTerm).
   * `onTruncate` is called with the first removed index before a conflicting suffix is cut.
   */
  maybeAppend(
    prevIndex: number,
    prevTerm: number,
    leaderCommit: number,
    entries: Entry[],
    onTruncate: (fromIndex: number) => void,
  ): number | null {
    if (!this.matchTerm(prevIndex, prevTerm)) return null;
    const lastNew = prevIndex + entries.length;
    let firstNew = -1;
    for (const [i, e] of entries.entries()) {
      invariant(e.index === prevIndex + 1 + i, 'entries in an append are contiguous');
      if (e.index <= this.offsetIndex) continue;
      const ours = this.term(e.index);
      if (ours === e.term) continue;
      firstNew = i;
      break;
    }
    if (firstNew >= 0) {
      const from = entries[firstNew]!.index;
      if (from <= this.lastIndex()) {
        invariant(from > this.committed, () => `conflict at ${from} is at or below commit ${this.committed}`);
        onTruncate(from);
        this.truncateFrom(from);
      }
      for (let i = firstNew; i < entries.length; i++) {
        const e = entries[i]!;
        this.entries.push(e);
        this.uncommittedBytes += e.data.byteLength;
      }
    }
    this.commitTo(Math.min(leaderCommit, lastNew));
    return lastNew;
  }

  /** Drop entries with index >= `from` (only uncommitted entries may go). */
  private truncateFrom(from: number): void {
    invariant(from > this.committed && from > this.offsetIndex, 'truncating committed entries');
    const keep = from - this.offsetIndex - 1;
    for (let i = keep; i < this.entries.length; i++) this.uncommittedBytes -= this.entries.dataBytes(i);
    this.entries.truncate(keep, this.offsetIndex + 1);
    if (this.unstableFrom > from) this.unstableFrom = from;
    if (this.stableIndex >= from) this.stableIndex = from - 1;
  }

  commitTo(index: number): boolean {
    if (index <= this.committed) return false;
    invariant(index <= this.lastIndex(), () => `commit ${index} beyond last index ${this.lastIndex()}`);
    for (let i = Math.max(this.committed, this.offsetIndex) + 1; i <= index; i++)
      this.uncommittedBytes -= this.entries.dataBytes(i - this.offsetIndex - 1);
    this.committed = index;
    return true;
  }

  /** Entries from `lo` (inclusive) up to `hi` (inclusive), at most `maxBytes` of data, at least one. */
  slice(lo: number, hi: number, maxBytes: number): Entry[] | null {
    if (lo <= this.offsetIndex) return null;
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = lo; i <= hi && i <= this.lastIndex(); i++) {
      const position = i - this.offsetIndex - 1;
      bytes += this.entries.dataBytes(position);
      if (out.length > 0 && bytes > maxBytes) break;
      out.push(this.entries.entry(position, i));
    }
    return out;
  }

  unstableEntries(): Entry[] {
    const out: Entry[] = [];
    for (let i = this.unstableFrom; i <= this.lastIndex(); i++)
      out.push(this.entries.entry(i - this.offsetIndex - 1, i));
    return out;
  }

  markHandedOut(): void {
    this.unstableFrom = this.lastIndex() + 1;
  }

  /** The shell made entries up to (index, term) durable. Ignored if that entry was since replaced. */
  stableTo(index: number, term: number): void {
    if (this.term(index) === term && index > this.stableIndex && index < this.unstableFrom) {
      this.stableIndex = index;
    }
  }

  /** Committed entries not yet handed to the application, durable ones only, within a byte budget. */
  nextCommitted(maxBytes: number): Entry[] {
    const hi = Math.min(this.committed, this.stableIndex);
    if (this.applied >= hi || this.pendingSnapshot) return [];
    return this.slice(this.applied + 1, hi, maxBytes) ?? [];
  }

  appliedTo(index: number): void {
    invariant(index <= this.committed, () => `applied ${index} beyond commit ${this.committed}`);
    if (index > this.applied) this.applied = index;
  }

  /** Replace the whole log with a snapshot received from the leader (§7). */
  restore(snapshot: Snapshot): void {
    const { index, term } = snapshot.meta;
    invariant(index > this.committed, 'restoring a snapshot at or below commit');
    this.entries.clear();
    this.offsetIndex = index;
    this.offsetTerm = term;
    this.snapshot = snapshot;
    this.pendingSnapshot = snapshot;
    this.committed = index;
    this.stableIndex = index;
    this.unstableFrom = index + 1;
    this.uncommittedBytes = 0;
  }

  /** The received snapshot is durable and handed to the application. */
  snapshotApplied(index: number): void {
    if (this.pendingSnapshot && this.pendingSnapshot.meta.index === index) {
      this.pendingSnapshot = null;
      if (this.applied < index) this.applied = index;
    }
  }

  /** Discard entries up to and including `index`, which must be covered by the snapshot. */
  compact(index: number): void {
    if (index <= this.offsetIndex) return;
    invariant(this.snapshot !== null && index <= this.snapshot.meta.index, 'compacting past the snapshot');
    invariant(index <= this.applied && index <= this.stableIndex, 'compacting entries not yet applied');
    const term = this.term(index)!;
    this.entries.dropFront(index - this.offsetIndex, this.offsetIndex + 1);
    this.offsetIndex = index;
    this.offsetTerm = term;
  }
}
