/**
 * The durable-storage contract between the Raft shell and its disk.
 *
 * The shell drains a `Ready` from the core and hands its durable part to `save()`; it sends the
 * Ready's messages only after `save()` resolves (Raft Figure 2: "respond to RPCs only after
 * updating stable storage"). Two implementations: the WAL (`wal/wal-storage.ts`) for servers and
 * `MemoryStorage` for `-dev` mode and tests. The simulator's disk models the guarantees below.
 *
 * ## Guarantees (what a crash may and may not lose)
 *
 * G1. Durability: a `save()` that resolved is durable. After any crash, `load()` returns every
 *     record of it, unless a later call (issued before the crash) superseded it (a truncation,
 *     a newer hard state, an installed snapshot).
 * G2. Order and atomicity: calls are applied in call order, and each call is atomic. A crash
 *     keeps every resolved call, then possibly some of the unresolved ones, in order, each
 *     whole or not at all (never a later call without all earlier ones). One exception: a
 *     call carrying a `snapshot` may survive as just its snapshot, applied to the stored log
 *     by Raft §7 as if the call had no entries and no hard state.
 * G3. Resolution order: `save()` promises resolve in call order. A call made while a flush is
 *     in flight joins the next batch (group commit): one fdatasync per batch, not per call.
 * G4. Fail-stop: after any write or sync error, or a call that breaks an invariant (below), the
 *     storage is failed: the pending and every later call reject with `StorageFailedError`,
 *     and nothing whose durability is unknown is ever reported as saved. The node must stop;
 *     a restart recovers the durable prefix (G1, G2).
 * G5. Snapshots: `saveSnapshot()` resolves once the snapshot file is durable. Log space it covers
 *     is released only afterwards, and only up to the oldest snapshot kept, so one damaged
 *     snapshot file still leaves an older one plus the log to recover from. A stale snapshot
 *     (index at or below the current one) is a no-op, so an application snapshot racing a
 *     leader-installed one is harmless. `saveSnapshot()` is not ordered with `save()`: snapshot
 *     only entries whose save() has resolved (the shell applies only persisted entries anyway).
 * G6. Recovery: `load()` returns the newest valid snapshot, the log after it (contiguous, terms
 *     non-decreasing) and the last durable hard state (its `commit` may be below the snapshot
 *     index; the snapshot is committed by definition). A torn final write is dropped silently;
 *     corruption anywhere else refuses to start with an error naming the file and byte offset.
 *
 * ## Invariants checked on every call (a violation fails the storage, see G4)
 *
 * - entries are contiguous, their terms non-decreasing, and they join the log: entries[0].index
 *   is in [snapshotIndex + 1, lastIndex + 1] (below lastIndex + 1 means "truncate from there");
 * - entries[0].term is at least the term of the entry before it (log terms never decrease);
 * - nothing at or below the snapshot index is truncated (committed entries are never replaced);
 * - hardState.term never decreases, and the vote never changes within a term;
 * - an installed snapshot (save with `snapshot`) is not older than the current one;
 * - `saveSnapshot(s)` needs s.meta.index <= lastIndex and s.meta.term equal to that entry's term.
 */
import type { Entry, HardState, Snapshot, SnapshotMeta } from '../raft/types.js';

/** What was durable at the end of the last run. */
export interface RecoveredState {
  /** The last durable hard state; `{ term: 0, vote: '', commit: 0 }` on a fresh store. */
  hardState: HardState;
  /** The newest valid snapshot, or null if none was ever saved. */
  snapshot: Snapshot | null;
  /** Contiguous, terms non-decreasing, all with index > snapshot index (if any). */
  entries: Entry[];
}

/** The durable part of one `Ready`. */
export interface StorageUpdate {
  /**
   * A snapshot received from the leader (InstallSnapshot). Raft §7: if the stored log holds an
   * entry with the snapshot's index and term, the entries after it are kept; otherwise the whole
   * stored log is discarded. Recovery applies the same rule, so a crash between writing the
   * snapshot file and the log record that installs it leaves the same state. `entries` in the
   * same update are then applied as usual (truncating from entries[0].index if needed).
   */
  snapshot?: Snapshot;
  /**
   * New entries. If entries[0].index is at or below the last stored index, the stored suffix
   * from entries[0].index is discarded first (Raft's conflict truncation, Figure 2 rule 3).
   */
  entries: Entry[];
  /** The new hard state, written after the entries. */
  hardState?: HardState;
}

export interface RaftLogStorage {
  /**
   * Recovery: open the store and return what was durable at the end of the last run. Must be
   * called once, before any other method. Rejects with `StorageCorruptError`,
   * `StorageLockedError` or `StorageVersionError` when it cannot start safely.
   */
  load(): Promise<RecoveredState>;
  /**
   * Persist one Ready's durable part. Resolves only once an fdatasync covers it and every
   * earlier call (G1–G3). The update is validated synchronously (see the invariants above);
   * the caller may reuse its arrays but must not mutate entry data until the promise settles.
   */
  save(update: StorageUpdate): Promise<void>;
  /**
   * An application-made snapshot at `snapshot.meta.index` (an index already in the log). Written
   * durably (temp file, fsync, rename, fsync dir, checksum inside); then log space covered by
   * the snapshots kept is released. Keeps the newest `snapshotsToKeep` files (default 2).
   */
  saveSnapshot(snapshot: Snapshot): Promise<void>;
  /**
   * The data of a kept snapshot (saved by `saveSnapshot` or `save`, or recovered), read back:
   * a leader sends it to a follower that fell behind, and keeps no copy in memory meanwhile.
   * Resolves to null once that snapshot is no longer kept (a newer one replaced it); rejects if
   * the file cannot be read or fails its checksum. Never puts storage in the failed state.
   */
  readSnapshot(meta: SnapshotMeta): Promise<Uint8Array | null>;
  /** Wait for in-flight calls, then release files and the data-directory lock. Idempotent. */
  close(): Promise<void>;
}

/** The hard state of a store that has never saved one. */
export const emptyHardState: Readonly<HardState> = Object.freeze({ term: 0, vote: '', commit: 0 });
