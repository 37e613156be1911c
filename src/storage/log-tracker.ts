/**
 * The shape of the stored log (snapshot point, last index, the term of every index) and the
 * invariants every update must keep. Shared by the WAL and MemoryStorage so both accept and
 * refuse exactly the same calls (types.ts, "Invariants checked on every call").
 */
import assert from 'node:assert/strict';
import type { Entry, HardState, Snapshot } from '../raft/types.js';
import type { StorageUpdate } from './types.js';

/** A run of consecutive indexes with one term; terms change rarely, so this stays small. */
interface TermRun {
  startIndex: number;
  term: number;
}

export interface LogPosition {
  index: number;
  term: number;
}

/** What applying an update did to the stored log. */
export interface UpdatePlan {
  /** For a snapshot install: whether the stored entries after it were kept (Raft §7). */
  snapshotKeptLog: boolean;
  /** Entries at and after this index were discarded before appending (0 if none). */
  truncatedFromIndex: number;
}

export class LogTracker {
  private snapshotPoint: LogPosition;
  private lastIndexValue: number;
  /** Runs covering (snapshotPoint.index, lastIndexValue]; empty when the log is empty. */
  private runs: TermRun[] = [];
  private hardStateValue: HardState;

  constructor(snapshotPoint: LogPosition, entries: readonly Entry[], hardState: HardState) {
    this.snapshotPoint = { ...snapshotPoint };
    this.lastIndexValue = snapshotPoint.index;
    this.hardStateValue = { ...hardState };
    if (entries.length > 0) this.appendChecked(entries);
  }

  get snapshotIndex(): number {
    return this.snapshotPoint.index;
  }
  get lastIndex(): number {
    return this.lastIndexValue;
  }
  get hardState(): HardState {
    return this.hardStateValue;
  }

  /** The term of `index`, or undefined if it is neither the snapshot point nor in the log. */
  termAt(index: number): number | undefined {
    if (index === this.snapshotPoint.index) return this.snapshotPoint.term;
    if (index < this.snapshotPoint.index || index > this.lastIndexValue) return undefined;
    for (let i = this.runs.length - 1; i >= 0; i--) {
      const run = this.runs[i]!;
      if (run.startIndex <= index) return run.term;
    }
    return undefined;
  }

  /** Validate `update` against the invariants and apply it; throws AssertionError on violation. */
  apply(update: StorageUpdate): UpdatePlan {
    const plan: UpdatePlan = { snapshotKeptLog: false, truncatedFromIndex: 0 };
    if (update.snapshot !== undefined) plan.snapshotKeptLog = this.installSnapshot(update.snapshot);
    if (update.entries.length > 0) {
      const first = update.entries[0]!;
      if (first.index <= this.lastIndexValue) plan.truncatedFromIndex = first.index;
      this.appendChecked(update.entries);
    }
    if (update.hardState !== undefined) this.setHardState(update.hardState);
    return plan;
  }

  /**
   * Check an application snapshot: 'stale' if it is not newer than the current snapshot point
   * (a no-op by contract), else it must name an entry in the log with the right term.
   */
  checkCompaction(snapshot: Snapshot): 'stale' | 'ok' {
    const { index, term } = snapshot.meta;
    assert.ok(
      Number.isSafeInteger(index) && index >= 0,
      `snapshot index must be an integer >= 0, got ${index}`,
    );
    if (index <= this.snapshotPoint.index) return 'stale';
    assert.ok(
      index <= this.lastIndexValue,
      `snapshot index ${index} is beyond the last log index ${this.lastIndexValue}`,
    );
    const termInLog = this.termAt(index);
    assert.equal(
      term,
      termInLog,
      `snapshot term ${term} differs from the log's term ${termInLog} at ${index}`,
    );
    return 'ok';
  }

  /** Move the snapshot point forward to an index already in the log (after checkCompaction). */
  compact(snapshot: Snapshot): void {
    const { index, term } = snapshot.meta;
    assert.ok(index > this.snapshotPoint.index && index <= this.lastIndexValue);
    this.snapshotPoint = { index, term };
    this.dropRunsThrough(index);
  }

  private installSnapshot(snapshot: Snapshot): boolean {
    const { index, term } = snapshot.meta;
    assert.ok(
      Number.isSafeInteger(index) && index >= 0,
      `snapshot index must be an integer >= 0, got ${index}`,
    );
    assert.ok(Number.isSafeInteger(term) && term >= 0, `snapshot term must be an integer >= 0, got ${term}`);
    assert.ok(
      index >= this.snapshotPoint.index,
      `installed snapshot at ${index} is older than the current snapshot at ${this.snapshotPoint.index}`,
    );
    const keep = index <= this.lastIndexValue && this.termAt(index) === term;
    this.snapshotPoint = { index, term };
    if (keep) {
      this.dropRunsThrough(index);
    } else {
      this.runs = [];
      this.lastIndexValue = index;
    }
    return keep;
  }

  private appendChecked(entries: readonly Entry[]): void {
    const first = entries[0]!;
    assert.ok(
      first.index > this.snapshotPoint.index,
      `entries start at ${first.index}, at or below the snapshot index ${this.snapshotPoint.index} ` +
        '(committed entries cannot be replaced)',
    );
    assert.ok(
      first.index <= this.lastIndexValue + 1,
      `entries start at ${first.index}, leaving a gap after the last index ${this.lastIndexValue}`,
    );
    const previousTerm = this.termAt(first.index - 1) ?? 0;
    let expectedIndex = first.index;
    let lastTerm = previousTerm;
    for (const entry of entries) {
      assert.equal(entry.index, expectedIndex, `entries are not contiguous: expected index ${expectedIndex}`);
      assert.ok(
        Number.isSafeInteger(entry.term) && entry.term >= lastTerm,
        `entry ${entry.index} has term ${entry.term}, below the term ${lastTerm} before it`,
      );
      expectedIndex++;
      lastTerm = entry.term;
    }
    // Truncate the stored suffix, then extend the runs.
    this.lastIndexValue = first.index - 1;
    while (this.runs.length > 0 && this.runs[this.runs.length - 1]!.startIndex >= first.index)
      this.runs.pop();
    for (const entry of entries) {
      const tail = this.runs[this.runs.length - 1];
      if (tail === undefined || tail.term !== entry.term)
        this.runs.push({ startIndex: entry.index, term: entry.term });
    }
    this.lastIndexValue = expectedIndex - 1;
  }

  private setHardState(next: HardState): void {
    const previous = this.hardStateValue;
    assert.ok(
      Number.isSafeInteger(next.term) && next.term >= previous.term,
      `hard state term went from ${previous.term} to ${next.term}`,
    );
    assert.ok(
      Number.isSafeInteger(next.commit) && next.commit >= 0,
      `hard state commit ${next.commit} is invalid`,
    );
    if (next.term === previous.term) {
      assert.ok(
        previous.vote === '' || previous.vote === next.vote,
        `vote changed within term ${next.term} from '${previous.vote}' to '${next.vote}'`,
      );
    }
    this.hardStateValue = { term: next.term, vote: next.vote, commit: next.commit };
  }

  private dropRunsThrough(index: number): void {
    // Keep the run containing index + 1 (re-started there) and everything after it.
    const kept: TermRun[] = [];
    for (let i = 0; i < this.runs.length; i++) {
      const run = this.runs[i]!;
      const next = this.runs[i + 1];
      const end = next === undefined ? this.lastIndexValue : next.startIndex - 1;
      if (end <= index) continue;
      kept.push({ startIndex: Math.max(run.startIndex, index + 1), term: run.term });
    }
    this.runs = kept;
  }
}
