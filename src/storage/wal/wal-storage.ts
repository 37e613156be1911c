/**
 * WalStorage: the RaftLogStorage contract (../types.ts) on disk.
 *
 *   <dir>/LOCK      PID of the server using the directory
 *   <dir>/VERSION   data format version
 *   <dir>/wal/      segment files (segment-file.ts, record.ts)
 *   <dir>/snap/     snapshot files (snapshot-file.ts)
 *
 * save() validates and encodes its records at once (so encoding overlaps the fsync in flight)
 * and queues them; one flush loop writes everything queued as one batch, fdatasyncs, resolves
 * the batch's calls, and repeats: group commit with one fsync per batch.
 *
 * Log space is released when the *oldest* snapshot kept covers it, not the newest: then any
 * one snapshot file can be lost to corruption and the previous one plus the log still recover.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { Snapshot, SnapshotMeta } from '../../raft/types.js';
import { StorageClosedError, StorageFailedError, StorageNotLoadedError } from '../errors.js';
import { LogTracker } from '../log-tracker.js';
import type { RaftLogStorage, RecoveredState, StorageUpdate } from '../types.js';
import {
  encodeEntryRecord,
  encodeHardStateRecord,
  encodeSnapshotMarkerRecord,
  encodeTruncateRecord,
  type SnapshotMarker,
} from './codec.js';
import { acquireLock, checkVersion, type DataDirLock } from './data-dir.js';
import { type FsOps, nodeFsOps } from './fs-ops.js';
import type { PhysicalLog } from './physical-log.js';
import { recordHeaderBytes } from './record.js';
import { applyFixes, type RecoveryOptions, recover } from './recovery.js';
import { SegmentWriter } from './segment-writer.js';
import { decodeSnapshotFile, type SnapshotFileName, writeSnapshotFile } from './snapshot-file.js';

export interface WalStorageOptions {
  /** The data directory (created if missing). */
  dir: string;
  /** A segment rolls over before a batch that would grow it past this (one larger batch may exceed it). */
  maxSegmentBytes?: number;
  /** Largest single record (header included); a bigger entry fails the save. */
  maxRecordBytes?: number;
  /** Group commit stops adding calls to a batch past this size (a single larger call goes alone). */
  maxBatchBytes?: number;
  /** Segments are extended with zeros this much at a time (see segment-writer.ts). */
  preallocateBytes?: number;
  /** Snapshot files kept; log space is released up to the oldest of them. */
  snapshotsToKeep?: number;
  /** Truncate the log at corruption instead of refusing to start (--force-recover). */
  forceRecover?: boolean;
  /** File operations; tests inject faults here. */
  fs?: FsOps;
  /** Recovery warnings (skipped snapshot, forced truncation). Default: process.emitWarning. */
  warn?: (message: string) => void;
}

export const walDefaults = {
  maxSegmentBytes: 64 * 1024 * 1024,
  maxRecordBytes: 16 * 1024 * 1024,
  maxBatchBytes: 8 * 1024 * 1024,
  preallocateBytes: 4 * 1024 * 1024,
  snapshotsToKeep: 2,
} as const;

interface PendingSave {
  records: Buffer[];
  bytes: number;
  snapshot: Snapshot | undefined;
  applyToLog: (log: PhysicalLog) => void;
  resolve: () => void;
  reject: (error: Error) => void;
}

export class WalStorage implements RaftLogStorage {
  private readonly dir: string;
  private readonly walDir: string;
  private readonly snapDir: string;
  private readonly fs: FsOps;
  private readonly limits: typeof walDefaults;
  private readonly forceRecover: boolean;
  private readonly warn: (message: string) => void;

  private lock: DataDirLock | null = null;
  private tracker: LogTracker | null = null;
  private writer: SegmentWriter | null = null;
  private failure: StorageFailedError | null = null;
  private closed = false;

  private queue: PendingSave[] = [];
  private inFlight: PendingSave[] = [];
  private flushing: Promise<void> | null = null;
  /** Serialises snapshot-file work and segment release. */
  private snapshotLane: Promise<void> = Promise.resolve();
  /** Snapshot files on disk, oldest first. */
  private snapshotFiles: SnapshotFileName[] = [];

  constructor(options: WalStorageOptions) {
    this.dir = options.dir;
    this.walDir = join(options.dir, 'wal');
    this.snapDir = join(options.dir, 'snap');
    this.fs = options.fs ?? nodeFsOps;
    this.forceRecover = options.forceRecover ?? false;
    this.warn = options.warn ?? ((message) => process.emitWarning(message, 'ConclaveStorageWarning'));
    this.limits = {
      maxSegmentBytes: positiveInteger(
        'maxSegmentBytes',
        options.maxSegmentBytes ?? walDefaults.maxSegmentBytes,
      ),
      maxRecordBytes: positiveInteger('maxRecordBytes', options.maxRecordBytes ?? walDefaults.maxRecordBytes),
      maxBatchBytes: positiveInteger('maxBatchBytes', options.maxBatchBytes ?? walDefaults.maxBatchBytes),
      preallocateBytes: positiveInteger(
        'preallocateBytes',
        options.preallocateBytes ?? walDefaults.preallocateBytes,
      ),
      snapshotsToKeep: positiveInteger(
        'snapshotsToKeep',
        options.snapshotsToKeep ?? walDefaults.snapshotsToKeep,
      ),
    } as typeof walDefaults;
    if (this.limits.maxRecordBytes <= recordHeaderBytes) {
      throw new RangeError(
        `'maxRecordBytes' must exceed ${recordHeaderBytes}: current value is ${this.limits.maxRecordBytes}`,
      );
    }
  }

  async load(): Promise<RecoveredState> {
    if (this.closed) throw new StorageClosedError();
    assert.equal(this.tracker, null, 'load() called twice');
    await this.fs.mkdir(this.dir);
    this.lock = await acquireLock(this.dir);
    try {
      return await this.recoverLocked();
    } catch (error) {
      await this.writer?.close();
      this.writer = null;
      await this.lock.release();
      this.lock = null;
      throw error;
    }
  }

  save(update: StorageUpdate): Promise<void> {
    const tracker = this.usableTracker('save');
    if (tracker instanceof Error) return Promise.reject(tracker);
    let pending: PendingSave;
    try {
      const plan = tracker.apply(update);
      pending = this.encode(update, plan.snapshotKeptLog, plan.truncatedFromIndex);
    } catch (error) {
      return Promise.reject(this.fail(error));
    }
    const done = new Promise<void>((resolve, reject) => {
      pending.resolve = resolve;
      pending.reject = reject;
    });
    this.queue.push(pending);
    this.flushing ??= this.flushLoop();
    return done;
  }

  saveSnapshot(snapshot: Snapshot): Promise<void> {
    const tracker = this.usableTracker('saveSnapshot');
    if (tracker instanceof Error) return Promise.reject(tracker);
    try {
      if (tracker.checkCompaction(snapshot) === 'stale') return Promise.resolve();
      tracker.compact(snapshot);
    } catch (error) {
      return Promise.reject(this.fail(error));
    }
    return this.inSnapshotLane(async () => {
      await this.writeSnapshot(snapshot);
      await this.releaseCoveredSegments();
    });
  }

  readSnapshot(meta: SnapshotMeta): Promise<Uint8Array | null> {
    if (this.closed) return Promise.reject(new StorageClosedError());
    // In the snapshot lane, so that the file is not deleted under the read by a newer snapshot.
    // A failed read is the caller's to handle: it does not fail the storage.
    return this.queueInSnapshotLane(async () => {
      const name = this.snapshotFiles.find((file) => file.index === meta.index && file.term === meta.term);
      if (name === undefined) return null;
      const bytes = await this.fs.readFile(join(this.snapDir, name.fileName));
      return decodeSnapshotFile(bytes, name).data;
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.flushing;
    await this.snapshotLane.catch(() => undefined);
    await this.writer?.close();
    this.writer = null;
    await this.lock?.release();
    this.lock = null;
  }

  private async recoverLocked(): Promise<RecoveredState> {
    const entries = await this.fs.readdir(this.dir);
    await checkVersion(this.dir, entries.includes('wal') || entries.includes('snap'));
    await this.fs.mkdir(this.walDir);
    await this.fs.mkdir(this.snapDir);
    await this.fs.syncDir(this.dir);
    const recoveryOptions: RecoveryOptions = {
      fs: this.fs,
      walDir: this.walDir,
      snapDir: this.snapDir,
      maxRecordBytes: this.limits.maxRecordBytes,
      forceRecover: this.forceRecover,
      warn: this.warn,
    };
    const result = await recover(recoveryOptions);
    await applyFixes(recoveryOptions, result.fixes);
    this.snapshotFiles = result.snapshots;
    const writer = new SegmentWriter(
      {
        fs: this.fs,
        walDir: this.walDir,
        maxSegmentBytes: this.limits.maxSegmentBytes,
        preallocateBytes: this.limits.preallocateBytes,
      },
      result.physical,
      { nextSeq: result.nextSeq, nextBatchSeq: result.nextBatchSeq },
    );
    this.writer = writer;
    if (result.lastSegment !== null) {
      const { name, validEndBytes } = result.lastSegment;
      await writer.resume(name.fileName, name.seq, validEndBytes);
    }
    if (result.reconcileMarker !== null) {
      const marker = result.reconcileMarker;
      await writer.writeBatch([encodeSnapshotMarkerRecord(marker)], (log) => log.applyMarker(marker));
    }
    const { state } = result;
    const point = state.snapshot === null ? { index: 0, term: 0 } : state.snapshot.meta;
    this.tracker = new LogTracker({ index: point.index, term: point.term }, state.entries, state.hardState);
    return state;
  }

  /** Encode one update's records in write order: snapshot marker, truncation, entries, hard state. */
  private encode(update: StorageUpdate, snapshotKeptLog: boolean, truncatedFromIndex: number): PendingSave {
    const records: Buffer[] = [];
    let marker: SnapshotMarker | null = null;
    if (update.snapshot !== undefined) {
      marker = {
        index: update.snapshot.meta.index,
        term: update.snapshot.meta.term,
        keptLog: snapshotKeptLog,
      };
      records.push(encodeSnapshotMarkerRecord(marker));
    }
    const { entries, hardState } = update;
    const firstIndex = entries[0]?.index ?? 0;
    // The tracker and the physical log agree on the last index, so the tracker's verdict holds.
    const truncateFrom = truncatedFromIndex;
    if (truncateFrom > 0) records.push(encodeTruncateRecord(truncateFrom));
    for (const entry of entries) {
      const record = encodeEntryRecord(entry);
      if (record.length > this.limits.maxRecordBytes) {
        throw new RangeError(
          `entry ${entry.index} encodes to ${record.length} bytes, over maxRecordBytes ${this.limits.maxRecordBytes}`,
        );
      }
      records.push(record);
    }
    if (hardState !== undefined) records.push(encodeHardStateRecord(hardState));
    let bytes = 0;
    for (const record of records) bytes += record.length;
    const lastEntry = entries.at(-1);
    return {
      records,
      bytes,
      snapshot: update.snapshot,
      applyToLog: (log) => {
        if (marker !== null) log.applyMarker(marker);
        if (truncateFrom > 0) log.truncate(truncateFrom);
        if (lastEntry !== undefined) {
          for (let index = firstIndex; index <= lastEntry.index; index++) {
            log.appendEntry(index, entries[index - firstIndex]!.term);
          }
        }
        if (hardState !== undefined) log.setHardState({ ...hardState });
      },
      resolve: () => undefined,
      reject: () => undefined,
    };
  }

  /** The group-commit loop: runs while calls are queued. */
  private async flushLoop(): Promise<void> {
    try {
      while (this.queue.length > 0 && this.failure === null) {
        const batch = this.takeBatch();
        this.inFlight = batch;
        const writer = this.writer!;
        const first = batch[0]!;
        if (first.snapshot !== undefined) {
          const snapshot = first.snapshot;
          // The snapshot file is durable before the marker that points at it.
          await this.inSnapshotLane(() => this.writeSnapshot(snapshot));
        }
        const records = batch.flatMap((pending) => pending.records);
        if (records.length > 0) {
          await writer.writeBatch(records, (log) => {
            for (const pending of batch) pending.applyToLog(log);
          });
        }
        this.inFlight = [];
        for (const pending of batch) pending.resolve();
        if (first.snapshot !== undefined)
          void this.inSnapshotLane(() => this.releaseCoveredSegments()).catch(() => undefined);
      }
    } catch (error) {
      this.fail(error);
    } finally {
      this.flushing = null;
    }
  }

  /** Calls for the next batch: in order, up to maxBatchBytes; a snapshot install starts its own batch. */
  private takeBatch(): PendingSave[] {
    let bytes = 0;
    let count = 0;
    for (const pending of this.queue) {
      if (count > 0 && (pending.snapshot !== undefined || bytes + pending.bytes > this.limits.maxBatchBytes))
        break;
      bytes += pending.bytes;
      count++;
    }
    return this.queue.splice(0, count);
  }

  private async writeSnapshot(snapshot: Snapshot): Promise<void> {
    const name = await writeSnapshotFile(this.fs, this.snapDir, snapshot);
    this.snapshotFiles = this.snapshotFiles.filter((file) => file.fileName !== name.fileName);
    this.snapshotFiles.push(name);
    this.snapshotFiles.sort((a, b) => a.index - b.index);
    let removed = false;
    while (this.snapshotFiles.length > this.limits.snapshotsToKeep) {
      const oldest = this.snapshotFiles.shift()!;
      await this.fs.unlink(join(this.snapDir, oldest.fileName));
      removed = true;
    }
    if (removed) await this.fs.syncDir(this.snapDir);
  }

  /** Delete segments whose live entries all lie at or below the oldest kept snapshot. */
  private async releaseCoveredSegments(): Promise<void> {
    const writer = this.writer;
    if (writer === null || this.snapshotFiles.length < this.limits.snapshotsToKeep) return;
    const releaseIndex = this.snapshotFiles[0]!.index;
    const segments = writer.physical.segments;
    let count = 0;
    // Never the last segment: it is (or is about to become) the active one.
    while (count < segments.length - 1) {
      const segment = segments[count]!;
      if (segment.seq === writer.activeSeq || segment.liveMaxIndex > releaseIndex) break;
      count++;
    }
    if (count === 0) return;
    const released = segments.splice(0, count);
    for (const segment of released) await this.fs.unlink(join(this.walDir, segment.fileName));
    await this.fs.syncDir(this.walDir);
  }

  /** Snapshot writes, segment releases and snapshot reads run one at a time, in call order. */
  private queueInSnapshotLane<T>(work: () => Promise<T>): Promise<T> {
    const run = this.snapshotLane.then(work);
    this.snapshotLane = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /** Queue snapshot work whose failure fails the storage (G4). */
  private inSnapshotLane(work: () => Promise<void>): Promise<void> {
    return this.queueInSnapshotLane(work).catch((error: unknown) => {
      throw this.fail(error);
    });
  }

  private usableTracker(method: string): LogTracker | Error {
    if (this.closed) return new StorageClosedError();
    if (this.failure !== null) return this.failure;
    if (this.tracker === null) return new StorageNotLoadedError(method);
    return this.tracker;
  }

  /** Enter the failed state (G4): reject everything pending; every later call rejects too. */
  private fail(cause: unknown): StorageFailedError {
    if (this.failure === null) {
      const detail = cause instanceof Error ? cause.message : String(cause);
      this.failure = new StorageFailedError(`storage failed, no further writes accepted: ${detail}`, {
        cause,
      });
    }
    const failure = this.failure;
    const pending = [...this.inFlight, ...this.queue];
    this.inFlight = [];
    this.queue = [];
    for (const save of pending) save.reject(failure);
    return failure;
  }
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new RangeError(`'${name}' must be a positive integer: current value is ${value}`);
  }
  return value;
}
