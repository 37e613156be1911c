import type { Entry, HardState, Snapshot } from '../../src/raft/types.js';

export interface DiskState {
  hardState: HardState;
  snapshot: Snapshot | null;
  entries: Entry[];
}

export interface DiskWrite {
  hardState?: HardState;
  snapshot?: Snapshot;
  entries: Entry[];
}

/**
 * A simulated disk with the write-ahead log's guarantees: writes are applied in order; a
 * write is durable only once a sync covering it completes; a crash keeps some prefix of the
 * unsynced writes (a torn tail is dropped whole, as WAL recovery drops a torn record) and loses
 * the rest. Application snapshots are written durably before the log is compacted.
 */
export class SimDisk {
  durable: DiskState;
  private unsynced: DiskWrite[] = [];

  constructor(initial: DiskState) {
    this.durable = initial;
  }

  write(w: DiskWrite): void {
    this.unsynced.push(w);
  }

  sync(): void {
    for (const w of this.unsynced) applyWrite(this.durable, w);
    this.unsynced = [];
  }

  /** Crash: keep the first `keep` unsynced writes (chosen by the simulator), lose the rest. */
  crash(keep: number): void {
    for (const w of this.unsynced.slice(0, keep)) applyWrite(this.durable, w);
    this.unsynced = [];
  }

  pendingWrites(): number {
    return this.unsynced.length;
  }

  /** An application snapshot; entries it covers are released once it is durable. */
  saveAppSnapshot(snapshot: Snapshot): void {
    const current = this.durable.snapshot;
    if (current && current.meta.index >= snapshot.meta.index) return;
    this.durable.snapshot = snapshot;
    this.durable.entries = this.durable.entries.filter((e) => e.index > snapshot.meta.index);
  }

  /** A copy as a restarted process would read it. */
  load(): DiskState {
    return {
      hardState: { ...this.durable.hardState },
      snapshot: this.durable.snapshot,
      entries: this.durable.entries.slice(),
    };
  }
}

function applyWrite(state: DiskState, w: DiskWrite): void {
  if (w.snapshot) {
    // A snapshot from the leader replaces the whole log (§7).
    state.snapshot = w.snapshot;
    state.entries = [];
  }
  const first = w.entries[0];
  if (first) {
    const offset = state.snapshot?.meta.index ?? 0;
    const keep = first.index - offset - 1;
    if (keep < state.entries.length) state.entries.length = Math.max(0, keep);
    if (keep > state.entries.length) {
      throw new Error(
        `simulated disk: write at ${first.index} leaves a gap after ${offset + state.entries.length}`,
      );
    }
    for (const e of w.entries) state.entries.push(e);
  }
  if (w.hardState) state.hardState = w.hardState;
}
