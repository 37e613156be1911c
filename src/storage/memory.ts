/**
 * MemoryStorage: the RaftLogStorage contract with no disk, for `-dev` mode and tests.
 * Everything a save() hands over is "durable" the moment it is applied, so a restart
 * (a new MemoryStorage over the same MemoryDisk) sees every resolved call.
 */
import type { Entry, HardState, Snapshot, SnapshotMeta } from '../raft/types.js';
import { StorageClosedError, StorageFailedError, StorageNotLoadedError } from './errors.js';
import { LogTracker } from './log-tracker.js';
import { emptyHardState, type RaftLogStorage, type RecoveredState, type StorageUpdate } from './types.js';

/** The state that survives a MemoryStorage "restart". */
export interface MemoryDisk {
  hardState: HardState;
  /** Newest last. */
  snapshots: Snapshot[];
  /** Entries after the newest snapshot, contiguous. */
  entries: Entry[];
}

export function createMemoryDisk(): MemoryDisk {
  return { hardState: { ...emptyHardState }, snapshots: [], entries: [] };
}

export interface MemoryStorageOptions {
  /** Share one disk between successive instances to model restarts. */
  disk?: MemoryDisk;
  /** Snapshot objects kept (the newest N); default 2, as the WAL. */
  snapshotsToKeep?: number;
}

export class MemoryStorage implements RaftLogStorage {
  readonly disk: MemoryDisk;
  private readonly snapshotsToKeep: number;
  private tracker: LogTracker | null = null;
  private failure: StorageFailedError | null = null;
  private closed = false;

  constructor(options: MemoryStorageOptions = {}) {
    this.disk = options.disk ?? createMemoryDisk();
    this.snapshotsToKeep = options.snapshotsToKeep ?? 2;
    if (!Number.isSafeInteger(this.snapshotsToKeep) || this.snapshotsToKeep < 1) {
      throw new RangeError(
        `'snapshotsToKeep' must be an integer >= 1: current value is ${this.snapshotsToKeep}`,
      );
    }
  }

  async load(): Promise<RecoveredState> {
    if (this.closed) throw new StorageClosedError();
    const snapshot = this.disk.snapshots[this.disk.snapshots.length - 1] ?? null;
    const point =
      snapshot === null ? { index: 0, term: 0 } : { index: snapshot.meta.index, term: snapshot.meta.term };
    this.tracker = new LogTracker(point, this.disk.entries, this.disk.hardState);
    return {
      hardState: { ...this.disk.hardState },
      snapshot: snapshot === null ? null : copySnapshot(snapshot),
      entries: this.disk.entries.map(copyEntry),
    };
  }

  save(update: StorageUpdate): Promise<void> {
    const tracker = this.checkUsable('save');
    if (tracker instanceof Error) return Promise.reject(tracker);
    let plan: ReturnType<LogTracker['apply']>;
    try {
      plan = tracker.apply(update);
    } catch (error) {
      return Promise.reject(this.fail(error));
    }
    const disk = this.disk;
    if (update.snapshot !== undefined) {
      const index = update.snapshot.meta.index;
      disk.entries = plan.snapshotKeptLog ? disk.entries.filter((e) => e.index > index) : [];
      this.keepSnapshot(update.snapshot);
    }
    if (update.entries.length > 0) {
      const firstIndex = update.entries[0]!.index;
      const keepCount = disk.entries.findIndex((e) => e.index >= firstIndex);
      if (keepCount >= 0) disk.entries.length = keepCount;
      for (const entry of update.entries) disk.entries.push(copyEntry(entry));
    }
    if (update.hardState !== undefined) disk.hardState = { ...update.hardState };
    return Promise.resolve();
  }

  saveSnapshot(snapshot: Snapshot): Promise<void> {
    const tracker = this.checkUsable('saveSnapshot');
    if (tracker instanceof Error) return Promise.reject(tracker);
    try {
      if (tracker.checkCompaction(snapshot) === 'stale') return Promise.resolve();
      tracker.compact(snapshot);
    } catch (error) {
      return Promise.reject(this.fail(error));
    }
    this.keepSnapshot(snapshot);
    this.disk.entries = this.disk.entries.filter((e) => e.index > snapshot.meta.index);
    return Promise.resolve();
  }

  readSnapshot(meta: SnapshotMeta): Promise<Uint8Array | null> {
    if (this.closed) return Promise.reject(new StorageClosedError());
    const kept = this.disk.snapshots.find((s) => s.meta.index === meta.index && s.meta.term === meta.term);
    return Promise.resolve(kept ? new Uint8Array(kept.data) : null);
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private keepSnapshot(snapshot: Snapshot): void {
    this.disk.snapshots.push(copySnapshot(snapshot));
    while (this.disk.snapshots.length > this.snapshotsToKeep) this.disk.snapshots.shift();
  }

  private checkUsable(method: string): LogTracker | Error {
    if (this.closed) return new StorageClosedError();
    if (this.failure !== null) return this.failure;
    if (this.tracker === null) return new StorageNotLoadedError(method);
    return this.tracker;
  }

  private fail(cause: unknown): StorageFailedError {
    const detail = cause instanceof Error ? cause.message : String(cause);
    this.failure = new StorageFailedError(`storage failed: ${detail}`, { cause });
    return this.failure;
  }
}

// Copies use `new Uint8Array(x)`: Buffer#slice would share memory with the caller.
function copyEntry(entry: Entry): Entry {
  const copy: Entry = {
    term: entry.term,
    index: entry.index,
    type: entry.type,
    data: new Uint8Array(entry.data),
  };
  if (entry.change !== undefined) {
    copy.change = { type: entry.change.type, node: entry.change.node };
    if (entry.change.context !== undefined) copy.change.context = new Uint8Array(entry.change.context);
  }
  if (entry.config !== undefined) {
    copy.config = { voters: [...entry.config.voters], learners: [...entry.config.learners] };
  }
  return copy;
}

function copySnapshot(snapshot: Snapshot): Snapshot {
  const { config } = snapshot.meta;
  return {
    meta: {
      index: snapshot.meta.index,
      term: snapshot.meta.term,
      config: { voters: [...config.voters], learners: [...config.learners] },
    },
    data: new Uint8Array(snapshot.data),
  };
}
