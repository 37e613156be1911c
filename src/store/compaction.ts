/**
 * Auto-compaction policy (etcd --auto-compaction-mode revision|periodic). The store keeps a
 * coarse map of revision -> command time so "older than T" can be answered from replicated
 * state; the leader asks `compactionTarget` and proposes a compact command if it gets one.
 */

export interface CompactionPolicy {
  /** Keep at least this many most recent revisions (etcd revision mode). */
  retainRevisions?: number;
  /** Keep history written within this many ms (etcd periodic mode). */
  retainMs?: number;
}

/**
 * On by default (etcd #8009: unbounded history): ten minutes or 100k revisions of history,
 * whichever is less. Watchers that fall further behind get a compacted signal and resync.
 */
export const DEFAULT_COMPACTION_POLICY: Readonly<CompactionPolicy> = Object.freeze({
  retainRevisions: 100_000,
  retainMs: 10 * 60_000,
});

/** One sample per this many ms of command time bounds the map (a day is 86,400 samples). */
export const REVISION_TIME_SAMPLE_MS = 1000;
const MAX_SAMPLES = 200_000;

/** Revision -> time samples, oldest first; both columns non-decreasing. */
export class RevisionClock {
  revisions: number[] = [];
  times: number[] = [];

  record(revision: number, timeMs: number): void {
    const last = this.times.length - 1;
    if (last >= 0 && timeMs - this.times[last]! < REVISION_TIME_SAMPLE_MS) return;
    this.revisions.push(revision);
    this.times.push(timeMs);
    if (this.revisions.length > MAX_SAMPLES) {
      // Thin by half: older samples matter less; bounded memory whatever the history length.
      this.revisions = this.revisions.filter((_, i) => i % 2 === 0);
      this.times = this.times.filter((_, i) => i % 2 === 0);
    }
  }

  /** Highest sampled revision committed at or before `timeMs`, or 0. */
  revisionAt(timeMs: number): number {
    let low = 0;
    let high = this.times.length - 1;
    let found = 0;
    while (low <= high) {
      const middle = (low + high) >>> 1;
      if (this.times[middle]! <= timeMs) {
        found = this.revisions[middle]!;
        low = middle + 1;
      } else {
        high = middle - 1;
      }
    }
    return found;
  }

  /** Drop samples below the compact revision, keeping the last one (still a valid lower bound). */
  prune(compactRevision: number): void {
    let drop = 0;
    while (drop + 1 < this.revisions.length && this.revisions[drop + 1]! <= compactRevision) drop++;
    if (drop > 0) {
      this.revisions = this.revisions.slice(drop);
      this.times = this.times.slice(drop);
    }
  }
}

/**
 * The revision to compact to under `policy`, or null if nothing is due. With both limits set,
 * the more aggressive one wins, so both bounds hold.
 */
export function compactionTarget(
  state: { revision: number; compactRevision: number; clock: RevisionClock },
  policy: CompactionPolicy,
  nowMs: number,
): number | null {
  let target = 0;
  if (policy.retainRevisions !== undefined)
    target = Math.max(target, state.revision - policy.retainRevisions);
  if (policy.retainMs !== undefined)
    target = Math.max(target, state.clock.revisionAt(nowMs - policy.retainMs));
  target = Math.min(target, state.revision);
  return target > state.compactRevision ? target : null;
}
