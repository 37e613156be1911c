/**
 * The crash test's workload: a deterministic sequence of save() calls generated from a seed and
 * a starting state. The child process runs it against a real WalStorage; the parent regenerates
 * the very same sequence to know what each acknowledged call wrote.
 *
 * The workload looks like Raft's: appends in random batch sizes, term changes with votes,
 * conflict truncations of uncommitted entries, commit advancing, snapshots at the commit index.
 */
import type { Entry, HardState, Snapshot } from '../../src/raft/types.js';
import { EntryType } from '../../src/raft/types.js';
import type { RecoveredState, StorageUpdate } from '../../src/storage/types.js';
import { entryData } from './compliance.js';

/** Small segments so a run rolls over and releases segments many times. */
export const crashWalOptions = {
  maxSegmentBytes: 256 * 1024,
  preallocateBytes: 64 * 1024,
  snapshotsToKeep: 2,
};
/** The child keeps at most this many save() calls outstanding (group commit gets several). */
export const maxOutstandingSaves = 8;

/** Mulberry32: a tiny seeded PRNG. */
export function createRng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function entrySizeBytes(index: number, term: number): number {
  return 1 + ((index * 7919 + term * 104729) % 300);
}

export function workloadEntry(index: number, term: number): Entry {
  return { index, term, type: EntryType.Normal, data: entryData(index, term, entrySizeBytes(index, term)) };
}

export function workloadSnapshot(index: number, term: number): Snapshot {
  return {
    meta: { index, term, config: { voters: ['n1', 'n2', 'n3'], learners: [] } },
    data: entryData(index, term, 200),
  };
}

/** The log as the workload sees it: enough to generate the next call and to compare states. */
export class WorkloadModel {
  /** terms[i] is the term of entry i, for i in (firstKnown, lastIndex]. */
  terms: number[] = [];
  lastIndex = 0;
  snapshotIndex = 0;
  hardState: HardState = { term: 0, vote: '', commit: 0 };

  static fromRecovered(state: RecoveredState): WorkloadModel {
    const model = new WorkloadModel();
    model.snapshotIndex = state.snapshot?.meta.index ?? 0;
    model.lastIndex = model.snapshotIndex;
    if (state.snapshot !== null) model.terms[model.snapshotIndex] = state.snapshot.meta.term;
    for (const entry of state.entries) {
      model.terms[entry.index] = entry.term;
      model.lastIndex = entry.index;
    }
    model.hardState = { ...state.hardState };
    return model;
  }

  clone(): WorkloadModel {
    const copy = new WorkloadModel();
    copy.terms = [...this.terms];
    copy.lastIndex = this.lastIndex;
    copy.snapshotIndex = this.snapshotIndex;
    copy.hardState = { ...this.hardState };
    return copy;
  }

  apply(update: StorageUpdate): void {
    for (const entry of update.entries) this.terms[entry.index] = entry.term;
    if (update.entries.length > 0) this.lastIndex = update.entries.at(-1)!.index;
    if (update.hardState !== undefined) this.hardState = { ...update.hardState };
  }

  digest(): string {
    return `${this.lastIndex}:${this.terms[this.lastIndex] ?? 0}:${this.hardState.term}:${this.hardState.vote}:${this.hardState.commit}`;
  }
}

/** Generates the next call from the model; the caller applies it to the model. */
export class Workload {
  private readonly rng: () => number;
  constructor(
    seed: number,
    private readonly model: WorkloadModel,
  ) {
    this.rng = createRng(seed);
  }

  /**
   * The next call, applied to the model, and maybe a snapshot at the commit index. The child
   * issues the snapshot only after this call is acknowledged: a shell applies (and so
   * snapshots) only entries that are durable.
   */
  step(): { save: StorageUpdate; snapshot: Snapshot | null } {
    const save = this.nextSave();
    this.model.apply(save);
    return { save, snapshot: this.nextSnapshot() };
  }

  private nextSave(): StorageUpdate {
    const model = this.model;
    const rng = this.rng;
    const hs = model.hardState;
    const update: StorageUpdate = { entries: [] };
    const lastTerm = model.terms[model.lastIndex] ?? 0;
    if (hs.term === 0 || rng() < 0.06) {
      // A new term: vote, then either a conflict truncation of uncommitted entries or appends.
      const term = Math.max(hs.term, lastTerm) + 1;
      const commit = hs.commit;
      update.hardState = { term, vote: `n${1 + (term % 3)}`, commit };
      const uncommitted = model.lastIndex - Math.max(commit, model.snapshotIndex);
      const from =
        uncommitted > 0 && rng() < 0.5
          ? model.lastIndex - Math.floor(rng() * uncommitted)
          : model.lastIndex + 1;
      const count = Math.floor(rng() * 8);
      for (let i = 0; i < count; i++) update.entries.push(workloadEntry(from + i, term));
      // A truncation without new entries cannot be expressed; keep at least one then.
      if (from <= model.lastIndex && count === 0) update.entries.push(workloadEntry(from, term));
      return update;
    }
    const r = rng();
    const count =
      r < 0.7
        ? 1 + Math.floor(rng() * 4)
        : r < 0.95
          ? 5 + Math.floor(rng() * 60)
          : 65 + Math.floor(rng() * 448);
    const term = hs.term;
    for (let i = 1; i <= count; i++) update.entries.push(workloadEntry(model.lastIndex + i, term));
    if (rng() < 0.4 && model.lastIndex > hs.commit) {
      const lag = Math.floor(rng() * 10);
      update.hardState = { ...hs, commit: Math.max(hs.commit, model.lastIndex - lag) };
    }
    return update;
  }

  /** A snapshot at the commit index when enough has been committed since the last one. */
  private nextSnapshot(): Snapshot | null {
    const model = this.model;
    const commit = model.hardState.commit;
    if (commit - model.snapshotIndex < 300 || this.rng() < 0.5) return null;
    const term = model.terms[commit];
    if (term === undefined) return null;
    model.snapshotIndex = commit;
    return workloadSnapshot(commit, term);
  }
}
