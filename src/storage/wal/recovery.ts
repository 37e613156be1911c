/**
 * Recovery: find the newest valid snapshot, replay every segment, drop a torn final batch,
 * refuse on corruption (or, with forceRecover, cut the log there), and reconcile the log with
 * the snapshot by Raft §7. Reads only; the fixes it decides are applied by `applyFixes`.
 */
import { join } from 'node:path';
import type { Snapshot } from '../../raft/types.js';
import { StorageCorruptError } from '../errors.js';
import { emptyHardState, type RecoveredState } from '../types.js';
import {
  decodeEntry,
  decodeHardState,
  decodeSnapshotMarker,
  decodeTruncate,
  PayloadError,
  type SnapshotMarker,
} from './codec.js';
import type { FsOps } from './fs-ops.js';
import { PhysicalLog, ReplayError } from './physical-log.js';
import { type FramedRecord, RecordType } from './record.js';
import {
  checkSegmentHeader,
  parseSegmentFileName,
  type SegmentName,
  segmentHeaderBytes,
} from './segment-file.js';
import { scanSegment } from './segment-scan.js';
import { decodeSnapshotFile, parseSnapshotFileName, type SnapshotFileName } from './snapshot-file.js';

export interface RecoveryOptions {
  fs: FsOps;
  walDir: string;
  snapDir: string;
  maxRecordBytes: number;
  forceRecover: boolean;
  warn: (message: string) => void;
}

export interface RecoveryResult {
  state: RecoveredState;
  /** What is on disk once the fixes are applied; entries not kept (the writer's model). */
  physical: PhysicalLog;
  /** The segment appends continue in, and where; null to start a new segment. */
  lastSegment: { name: SegmentName; validEndBytes: number } | null;
  nextSeq: number;
  nextBatchSeq: number;
  /** Snapshot files to keep tracking, oldest first. */
  snapshots: SnapshotFileName[];
  /** To write before accepting saves when the recovered log differs from the one on disk (§7 discard). */
  reconcileMarker: SnapshotMarker | null;
  fixes: RecoveryFixes;
}

/** File changes recovery decided on. */
export interface RecoveryFixes {
  /** Segment file names to truncate to a byte length (torn tail, or forceRecover cut). */
  truncate: { fileName: string; lengthBytes: number }[];
  /** Segment file names to delete (after a forceRecover cut, or an empty torn last segment). */
  remove: string[];
  /** Snapshot file names that failed verification, to rename aside to `.corrupt`. */
  corruptSnapshots: string[];
  /** Leftover snapshot temp files. */
  tempSnapshots: string[];
}

export async function recover(options: RecoveryOptions): Promise<RecoveryResult> {
  const { fs, walDir } = options;
  const snapshots = await loadNewestSnapshot(options);
  const segments = await listSegments(fs, walDir);
  // A forceRecover cut restarts the replay with the log limited to before the cut; the
  // replay reaches the cut the second time, so this runs at most twice per corruption.
  let limit: ReplayLimit | null = null;
  for (let attempt = 0; attempt < 8; attempt++) {
    const outcome = await replaySegments(options, segments, limit);
    if ('physical' in outcome) return reconcile(options, snapshots, outcome);
    const file = join(walDir, segments[outcome.position]!.fileName);
    if (!options.forceRecover) throw new StorageCorruptError(file, outcome.offset, outcome.reason);
    const later = segments.length - outcome.position - 1;
    options.warn(
      `force-recover: ${file} is corrupt at byte offset ${outcome.offset} (${outcome.reason}); ` +
        `truncating the log there${later > 0 ? ` and deleting ${later} later segment(s)` : ''}`,
    );
    limit = { position: outcome.position, offsetBytes: outcome.offset };
  }
  throw new Error('force-recover did not converge; this is a bug');
}

interface ReplayLimit {
  /** The segment cut, and the byte offset in it where the log now ends. */
  position: number;
  offsetBytes: number;
}

interface ReplayOutcome {
  physical: PhysicalLog;
  lastSegment: RecoveryResult['lastSegment'];
  lastRecords: FramedRecord[];
  truncate: RecoveryFixes['truncate'];
  remove: string[];
}

interface ReplayCut {
  position: number;
  offset: number;
  reason: string;
}

async function listSegments(fs: FsOps, walDir: string): Promise<SegmentName[]> {
  const segments = (await fs.readdir(walDir))
    .map(parseSegmentFileName)
    .filter((name): name is SegmentName => name !== null)
    .sort((a, b) => a.seq - b.seq);
  for (let i = 1; i < segments.length; i++) {
    const previous = segments[i - 1]!;
    const segment = segments[i]!;
    if (segment.seq !== previous.seq + 1) {
      throw new StorageCorruptError(
        join(walDir, segment.fileName),
        0,
        `segment ${previous.seq + 1} is missing (gap between ${previous.fileName} and this file)`,
      );
    }
  }
  return segments;
}

async function replaySegments(
  options: RecoveryOptions,
  segments: SegmentName[],
  limit: ReplayLimit | null,
): Promise<ReplayOutcome | ReplayCut> {
  const physical = new PhysicalLog(true);
  const outcome: ReplayOutcome = { physical, lastSegment: null, lastRecords: [], truncate: [], remove: [] };
  const end = limit === null ? segments.length : limit.position + 1;
  for (const later of segments.slice(end)) outcome.remove.push(later.fileName);
  for (let position = 0; position < end; position++) {
    const segment = segments[position]!;
    const isLastSegment = position === end - 1;
    const wholeFile = await options.fs.readFile(join(options.walDir, segment.fileName));
    const isCutSegment = limit !== null && position === limit.position;
    if (isCutSegment && limit.offsetBytes <= segmentHeaderBytes) {
      outcome.remove.push(segment.fileName);
      break;
    }
    const buffer = isCutSegment ? wholeFile.subarray(0, limit.offsetBytes) : wholeFile;
    const headerProblem = checkSegmentHeader(buffer, segment);
    if (headerProblem !== null) {
      // Header and first batch go out in one write: a torn one leaves a short or zeroed file.
      if (isLastSegment && (buffer.length < segmentHeaderBytes || buffer.every((byte) => byte === 0))) {
        outcome.remove.push(segment.fileName);
        break;
      }
      return { position, offset: 0, reason: headerProblem };
    }
    try {
      physical.startSegment(segment.seq, segment.firstIndex, segment.fileName);
    } catch (error) {
      if (!(error instanceof ReplayError)) throw error;
      return { position, offset: 0, reason: error.message };
    }
    const scan = scanSegment(buffer, { isLastSegment, maxRecordBytes: options.maxRecordBytes });
    for (const record of scan.records) {
      try {
        applyRecord(physical, record);
      } catch (error) {
        if (!(error instanceof ReplayError || error instanceof PayloadError)) throw error;
        return { position, offset: record.offset, reason: error.message };
      }
    }
    if (scan.damage !== null && !scan.damage.torn) return { position, ...scan.damage };
    if (scan.validEndBytes < wholeFile.length) {
      outcome.truncate.push({ fileName: segment.fileName, lengthBytes: scan.validEndBytes });
    }
    outcome.lastSegment = { name: segment, validEndBytes: scan.validEndBytes };
    outcome.lastRecords = scan.records;
  }
  return outcome;
}

interface LoadedSnapshots {
  snapshot: Snapshot | null;
  /** Verified newest plus the older ones (not re-read), oldest first. */
  retained: SnapshotFileName[];
  /** Newer files that failed verification. */
  broken: { name: SnapshotFileName; reason: string }[];
  tempFiles: string[];
}

async function loadNewestSnapshot(options: RecoveryOptions): Promise<LoadedSnapshots> {
  const files = await options.fs.readdir(options.snapDir);
  const names = files
    .map(parseSnapshotFileName)
    .filter((name): name is SnapshotFileName => name !== null)
    .sort((a, b) => a.index - b.index);
  const loaded: LoadedSnapshots = {
    snapshot: null,
    retained: [],
    broken: [],
    tempFiles: files.filter((name) => name.endsWith('.tmp')),
  };
  for (let i = names.length - 1; i >= 0; i--) {
    const name = names[i]!;
    try {
      loaded.snapshot = decodeSnapshotFile(
        await options.fs.readFile(join(options.snapDir, name.fileName)),
        name,
      );
      loaded.retained = names.slice(0, i + 1);
      break;
    } catch (error) {
      loaded.broken.push({ name, reason: (error as Error).message });
    }
  }
  return loaded;
}

/** Join the replayed log to the chosen snapshot (Raft §7) and check nothing is missing. */
function reconcile(
  options: RecoveryOptions,
  loaded: LoadedSnapshots,
  outcome: ReplayOutcome,
): RecoveryResult {
  const { physical } = outcome;
  const snapshot = loaded.snapshot;
  const point =
    snapshot === null ? { index: 0, term: 0 } : { index: snapshot.meta.index, term: snapshot.meta.term };
  const firstSegment = outcome.physical.segments[0];
  const brokenNote = loaded.broken
    .map((b) => `${join(options.snapDir, b.name.fileName)}: ${b.reason}`)
    .join('; ');
  const refuse = (file: string, reason: string): never => {
    throw new StorageCorruptError(
      file,
      0,
      brokenNote === '' ? reason : `${reason} (unreadable newer snapshots: ${brokenNote})`,
    );
  };
  if (physical.resetSnapshotIndex > point.index) {
    refuse(
      join(options.snapDir, snapshotFileNameFor(physical.resetSnapshotIndex)),
      `the log was reset to a snapshot at index ${physical.resetSnapshotIndex}, but no valid snapshot file reaches it`,
    );
  }
  let entries = physical.entries ?? [];
  let reconcileMarker: SnapshotMarker | null = null;
  if (firstSegment === undefined) {
    // No log at all: it starts after the snapshot.
    physical.baseIndex = point.index;
    physical.lastIndex = point.index;
    physical.lastTerm = point.term;
  } else if (physical.baseIndex > point.index) {
    refuse(
      join(options.walDir, firstSegment.fileName),
      `the log starts at index ${physical.baseIndex + 1} but ` +
        (snapshot === null
          ? 'there is no snapshot'
          : `the newest valid snapshot covers only up to ${point.index}`) +
        '; earlier segments are missing',
    );
  } else if (physical.baseIndex < point.index) {
    if (physical.lastIndex >= point.index && physical.termAt(point.index) === point.term) {
      entries = entries.slice(point.index - physical.baseIndex);
    } else {
      // §7: the log does not hold the snapshot's last entry, so none of it follows the snapshot.
      entries = [];
      reconcileMarker = { index: point.index, term: point.term, keptLog: false };
    }
  }
  for (const { name } of loaded.broken) {
    if (physical.lastIndex < name.index) {
      refuse(
        join(options.snapDir, name.fileName),
        `snapshot at index ${name.index} is unreadable and the log reaches only index ${physical.lastIndex}`,
      );
    }
  }
  for (const { name, reason } of loaded.broken) {
    options.warn(
      `skipping unreadable snapshot ${join(options.snapDir, name.fileName)} (${reason}); ` +
        `recovering from ${snapshot === null ? 'the log alone' : `the snapshot at ${point.index}`} and the log`,
    );
  }
  const lastRecord = outcome.lastRecords.at(-1);
  const state: RecoveredState = {
    hardState: physical.hardState === null ? { ...emptyHardState } : { ...physical.hardState },
    snapshot,
    entries,
  };
  physical.entries = null;
  return {
    state,
    physical,
    lastSegment: outcome.lastSegment,
    nextSeq: (outcome.lastSegment?.name.seq ?? 0) + 1,
    nextBatchSeq: lastRecord === undefined ? 1 : (lastRecord.batchSeq + 1) >>> 0,
    snapshots: loaded.retained,
    reconcileMarker,
    fixes: {
      truncate: outcome.truncate,
      remove: outcome.remove,
      corruptSnapshots: loaded.broken.map((b) => b.name.fileName),
      tempSnapshots: loaded.tempFiles,
    },
  };
}

function snapshotFileNameFor(index: number): string {
  return `${String(index).padStart(20, '0')}-*.snap`;
}

/** Carry out the file changes recovery decided on, durably. */
export async function applyFixes(options: RecoveryOptions, fixes: RecoveryFixes): Promise<void> {
  const { fs, walDir, snapDir } = options;
  for (const fileName of [...fixes.remove].reverse()) await fs.unlink(join(walDir, fileName));
  for (const { fileName, lengthBytes } of fixes.truncate) {
    const file = await fs.open(join(walDir, fileName), 'r+');
    try {
      await file.truncate(lengthBytes);
      await file.datasync();
    } finally {
      await file.close();
    }
  }
  if (fixes.remove.length > 0) await fs.syncDir(walDir);
  for (const fileName of fixes.tempSnapshots) await fs.unlink(join(snapDir, fileName));
  for (const fileName of fixes.corruptSnapshots) {
    await fs.rename(join(snapDir, fileName), join(snapDir, `${fileName}.corrupt`));
  }
  if (fixes.tempSnapshots.length + fixes.corruptSnapshots.length > 0) await fs.syncDir(snapDir);
}

function applyRecord(log: PhysicalLog, record: FramedRecord): void {
  switch (record.type) {
    case RecordType.Entry: {
      const entry = decodeEntry(record.payload);
      log.appendEntry(entry.index, entry.term, entry);
      return;
    }
    case RecordType.HardState:
      log.setHardState(decodeHardState(record.payload));
      return;
    case RecordType.SnapshotMarker:
      log.applyMarker(decodeSnapshotMarker(record.payload));
      return;
    case RecordType.Truncate:
      log.truncate(decodeTruncate(record.payload));
      return;
  }
}
