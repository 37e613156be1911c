/**
 * Appends batches to the active segment: one durable write per batch, rolling over to a new
 * segment when the next batch would not fit.
 *
 * Preallocation: fdatasync of a write that grows the file must also commit the new size
 * (an ext4 journal commit), which makes it markedly slower than overwriting allocated blocks.
 * So the segment is extended with written zeros a chunk at a time, and most batches overwrite
 * zeros. Recovery reads zero fill after the last record as the end of the log.
 *
 * A batch that extends the file (or starts a segment) is written and then fdatasynced, which
 * also commits the zero fill and the new size. A batch that only overwrites preallocated zeros
 * goes through an O_DSYNC descriptor when the FsOps offers one (`openDsync`): one operation
 * instead of two, with the same guarantee for the bytes written.
 *
 * The next stretch of zeros is written ahead of need, in the background, once less than half a
 * stretch is left (`extendAhead`): writing and syncing megabytes of zeros takes milliseconds,
 * and inline every batch behind it would wait. Batches only ever write below the durable
 * allocated size; a background failure fails the next batch (fail-stop, like any write error).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { encodeHardStateRecord } from './codec.js';
import type { DsyncFile, FsOps, WalFile } from './fs-ops.js';
import type { PhysicalLog } from './physical-log.js';
import { sealRecord } from './record.js';
import { encodeSegmentHeader, segmentFileName, segmentHeaderBytes } from './segment-file.js';

export interface SegmentWriterOptions {
  fs: FsOps;
  walDir: string;
  maxSegmentBytes: number;
  preallocateBytes: number;
}

interface ActiveSegment {
  seq: number;
  path: string;
  file: WalFile;
  /** The same file opened with O_DSYNC, once a batch needed it. */
  dsync: DsyncFile | null;
  /** Where the next record goes. */
  writeOffsetBytes: number;
  /** File size: bytes up to here exist (zeros past writeOffsetBytes). */
  allocatedBytes: number;
}

const zeroFill = Buffer.alloc(1024 * 1024);

export class SegmentWriter {
  private active: ActiveSegment | null = null;
  /** The background zero fill in flight, and its failure, reported by the next batch. */
  private extending: Promise<void> | null = null;
  private extendFailure: unknown = null;
  private nextSeq: number;
  private nextBatchSeq: number;

  constructor(
    private readonly options: SegmentWriterOptions,
    /** Updated as records are written: the writer's model of the log on disk. */
    readonly physical: PhysicalLog,
    start: { nextSeq: number; nextBatchSeq: number },
  ) {
    this.nextSeq = start.nextSeq;
    this.nextBatchSeq = start.nextBatchSeq;
  }

  /** Continue appending to an existing segment (after recovery). */
  async resume(fileName: string, seq: number, validEndBytes: number): Promise<void> {
    assert.equal(this.active, null);
    assert.equal(seq + 1, this.nextSeq);
    const path = join(this.options.walDir, fileName);
    const file = await this.options.fs.open(path, 'r+');
    this.active = {
      seq,
      path,
      file,
      dsync: null,
      writeOffsetBytes: validEndBytes,
      allocatedBytes: validEndBytes,
    };
  }

  /** The sequence number of the segment being appended to (never released), or -1. */
  get activeSeq(): number {
    return this.active?.seq ?? -1;
  }

  /**
   * Write `records` (encoded, unsealed) as one batch and fdatasync. `applyToLog` updates the
   * physical model; it runs once the batch's segment is known, before the write.
   */
  async writeBatch(records: Buffer[], applyToLog: (log: PhysicalLog) => void): Promise<void> {
    assert.ok(records.length > 0, 'empty batch');
    if (this.extendFailure !== null) throw this.extendFailure;
    let batchBytes = 0;
    for (const record of records) batchBytes += record.length;
    const parts: Buffer[] = [];
    let createdSegment = false;
    let active = this.active;
    if (
      active === null ||
      (active.writeOffsetBytes + batchBytes > this.options.maxSegmentBytes &&
        active.writeOffsetBytes > segmentHeaderBytes)
    ) {
      // Truncation and close must not race the zero fill.
      await this.extending;
      active = await this.rollOver(parts);
      createdSegment = true;
    }
    const batch = parts.length > 0 ? [...parts.slice(1), ...records] : records;
    const batchSeq = this.nextBatchSeq;
    for (let i = 0; i < batch.length; i++) sealRecord(batch[i]!, batchSeq, i === batch.length - 1);
    const bytes = Buffer.concat(parts.length > 0 ? [parts[0]!, ...batch] : batch);
    const startOffset = createdSegment ? 0 : active.writeOffsetBytes;
    const endOffset = startOffset + bytes.length;
    applyToLog(this.physical);
    const { fs } = this.options;
    if (!createdSegment && endOffset > active.allocatedBytes && this.extending) {
      await this.extending;
      if (this.extendFailure !== null) throw this.extendFailure;
    }
    if (createdSegment || endOffset > active.allocatedBytes || !fs.openDsync) {
      if (endOffset > active.allocatedBytes) await this.extend(active, endOffset);
      await writeFully(active.file, bytes, startOffset);
      await active.file.datasync();
    } else {
      active.dsync ??= await fs.openDsync(active.path);
      await active.dsync.writeDurable(bytes, startOffset);
    }
    // A new segment's directory entry must be durable before anything in it is acknowledged.
    if (createdSegment) await this.options.fs.syncDir(this.options.walDir);
    active.writeOffsetBytes = endOffset;
    this.nextBatchSeq = (batchSeq + 1) >>> 0;
    this.extendAhead(active);
  }

  private extendAhead(active: ActiveSegment): void {
    const { preallocateBytes, maxSegmentBytes } = this.options;
    if (this.extending !== null || active.allocatedBytes >= maxSegmentBytes) return;
    if (active.allocatedBytes - active.writeOffsetBytes > preallocateBytes / 2) return;
    const from = active.allocatedBytes;
    const target = Math.min(from + preallocateBytes, maxSegmentBytes);
    this.extending = (async () => {
      try {
        await this.zeroFill(active.file, from, target);
        await active.file.datasync();
        active.allocatedBytes = target;
      } catch (err) {
        this.extendFailure = err;
      } finally {
        this.extending = null;
      }
    })();
  }

  async close(): Promise<void> {
    await this.extending;
    const active = this.active;
    this.active = null;
    if (active !== null) {
      await active.dsync?.close();
      await active.file.close();
    }
  }

  /** Seal the current segment and start the next; pushes the new header (and hard state copy) to `parts`. */
  private async rollOver(parts: Buffer[]): Promise<ActiveSegment> {
    const previous = this.active;
    if (previous !== null) {
      await previous.dsync?.close();
      previous.dsync = null;
      // Cut the zero fill: a segment that is not the last must end at its last record.
      await previous.file.truncate(previous.writeOffsetBytes);
      await previous.file.datasync();
      await previous.file.close();
      this.active = null;
    }
    const seq = this.nextSeq;
    const firstIndex = this.physical.lastIndex + 1;
    const path = join(this.options.walDir, segmentFileName(seq, firstIndex));
    const file = await this.options.fs.open(path, 'wx');
    this.nextSeq = seq + 1;
    this.physical.startSegment(seq, firstIndex, segmentFileName(seq, firstIndex));
    parts.push(encodeSegmentHeader(seq, firstIndex));
    // Every segment repeats the hard state, so releasing older segments never loses it.
    if (this.physical.hardState !== null) parts.push(encodeHardStateRecord(this.physical.hardState));
    this.active = { seq, path, file, dsync: null, writeOffsetBytes: segmentHeaderBytes, allocatedBytes: 0 };
    return this.active;
  }

  private async extend(active: ActiveSegment, endOffset: number): Promise<void> {
    const target = Math.max(
      endOffset,
      Math.min(active.allocatedBytes + this.options.preallocateBytes, this.options.maxSegmentBytes),
    );
    // Zeros go only past the batch; the batch itself is written next.
    await this.zeroFill(active.file, Math.max(endOffset, active.allocatedBytes), target);
    active.allocatedBytes = target;
  }

  private async zeroFill(file: WalFile, from: number, to: number): Promise<void> {
    for (let offset = from; offset < to; ) {
      const length = Math.min(zeroFill.length, to - offset);
      await writeFully(file, zeroFill.subarray(0, length), offset);
      offset += length;
    }
  }
}

async function writeFully(file: WalFile, bytes: Buffer, position: number): Promise<void> {
  let written = 0;
  while (written < bytes.length) {
    const { bytesWritten } = await file.write(bytes, written, bytes.length - written, position + written);
    assert.ok(bytesWritten > 0, 'write made no progress');
    written += bytesWritten;
  }
}
