import type { Entry, NodeId } from '../../src/raft/types.js';
import { EntryType } from '../../src/raft/types.js';

export class SafetyViolation extends Error {
  override name = 'SafetyViolation';
}

const decoder = new TextDecoder();

/** What an entry says, as a comparable string. */
export function entryKey(e: Entry): string {
  if (e.type === EntryType.ConfChange)
    return `conf:${JSON.stringify(e.config)}:${JSON.stringify(e.change ?? null)}`;
  return `cmd:${decoder.decode(e.data)}`;
}

/**
 * The Raft safety properties (Figure 3 of the Raft paper) plus linearizable reads, checked
 * incrementally as the simulation runs, so each check is O(1) per event or per entry.
 */
export class SafetyChecker {
  /** Election Safety: at most one leader per term. */
  private leaderOfTerm = new Map<number, NodeId>();
  /** Log Matching, by induction: each (index, term) names exactly one entry and one predecessor term. */
  private entryAt = new Map<string, string>();
  /** State Machine Safety: what was applied at each index, anywhere. */
  private appliedAt = new Map<number, { term: number; key: string; commitTermBound: number }>();
  maxApplied = 0;
  /** Leader Append-Only: each current leader's last (index, term) at the last check. */
  private leaderTail = new Map<NodeId, { term: number; index: number; indexTerm: number }>();
  /** Linearizability: the highest index any completed operation observed. */
  maxCompleted = 0;
  checks = 0;

  fail(message: string): never {
    throw new SafetyViolation(message);
  }

  onLeader(id: NodeId, term: number): void {
    this.checks++;
    const existing = this.leaderOfTerm.get(term);
    if (existing !== undefined && existing !== id) {
      this.fail(`Election Safety: ${existing} and ${id} both leader in term ${term}`);
    }
    this.leaderOfTerm.set(term, id);
  }

  /**
   * Leader Completeness: an entry committed in term c is in the log of every leader of a term
   * after c. We know c only from above (the term of the first server that applied the entry),
   * so leaders of terms after that bound are checked: never a false alarm, rarely a miss.
   */
  onNewLeaderLog(
    id: NodeId,
    term: number,
    offsetIndex: number,
    termAt: (i: number) => number | undefined,
  ): void {
    this.checks++;
    for (let i = offsetIndex + 1; i <= this.maxApplied; i++) {
      const applied = this.appliedAt.get(i);
      if (!applied || applied.commitTermBound >= term) continue;
      const ours = termAt(i);
      if (ours !== applied.term) {
        this.fail(
          `Leader Completeness: leader ${id} of term ${term} has ${ours === undefined ? 'no entry' : `term ${ours}`} ` +
            `at ${i}, committed with term ${applied.term} by term ${applied.commitTermBound}`,
        );
      }
    }
  }

  /** Leader Append-Only: while leader in a term, a node never shortens or rewrites its log. */
  onLeaderLog(id: NodeId, term: number, lastIndex: number, termAt: (i: number) => number | undefined): void {
    this.checks++;
    const prev = this.leaderTail.get(id);
    if (prev && prev.term === term) {
      if (lastIndex < prev.index || termAt(prev.index) !== prev.indexTerm) {
        this.fail(`Leader Append-Only: leader ${id} in term ${term} lost or rewrote entry ${prev.index}`);
      }
    }
    this.leaderTail.set(id, { term, index: lastIndex, indexTerm: termAt(lastIndex) ?? 0 });
  }

  onNotLeader(id: NodeId): void {
    this.leaderTail.delete(id);
  }

  /** Called for every entry a server persists, with the term of the entry before it. */
  onPersist(e: Entry, prevTerm: number | undefined): void {
    this.checks++;
    const key = `${e.index}:${e.term}`;
    const value = `${prevTerm ?? '?'}|${entryKey(e)}`;
    const seen = this.entryAt.get(key);
    if (seen === undefined) {
      this.entryAt.set(key, value);
    } else if (seen !== value) {
      // A '?' predecessor term (compacted on one side) matches any known one.
      const [seenPrev, ...seenRest] = seen.split('|');
      const [prev, ...rest] = value.split('|');
      if (seenRest.join('|') !== rest.join('|') || (seenPrev !== '?' && prev !== '?' && seenPrev !== prev)) {
        this.fail(
          `Log Matching: two different entries at index ${e.index} term ${e.term}: ${seen} vs ${value}`,
        );
      }
    }
  }

  /** State Machine Safety: no two servers apply different entries at one index. */
  onApply(node: NodeId, nodeTerm: number, e: Entry): void {
    this.checks++;
    const key = entryKey(e);
    const seen = this.appliedAt.get(e.index);
    if (seen === undefined) {
      this.appliedAt.set(e.index, { term: e.term, key, commitTermBound: nodeTerm });
      if (e.index > this.maxApplied) this.maxApplied = e.index;
    } else if (seen.term !== e.term || seen.key !== key) {
      this.fail(
        `State Machine Safety: ${node} applied term ${e.term} "${key}" at ${e.index}, ` +
          `another server applied term ${seen.term} "${seen.key}"`,
      );
    }
  }

  /** A write or read finished, having observed the state at `index`. */
  onComplete(index: number): void {
    if (index > this.maxCompleted) this.maxCompleted = index;
  }

  /**
   * Linearizable read: the state it returns (applied index `index`) must include every
   * operation that completed before the read started (`floor`).
   */
  onReadResult(node: NodeId, context: string, index: number, floor: number): void {
    this.checks++;
    if (index < floor) {
      this.fail(
        `Linearizability: read ${context} on ${node} saw index ${index}, but ${floor} had completed before it began`,
      );
    }
    this.onComplete(index);
  }
}
