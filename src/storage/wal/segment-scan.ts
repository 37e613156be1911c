/**
 * Reading the records of one segment and deciding what a bad record means.
 *
 * The writer issues one write + fdatasync per batch and starts the next batch only after that
 * fdatasync returned, so a crash can damage only the final batch of the last segment: a
 * partial record, a record failing its CRC, pages of the batch missing (zeros) or out of
 * order. Such damage is a torn write and is dropped. Damage anywhere else (a non-final
 * segment, or followed by a record of a later batch) cannot come from a crash: corruption.
 * Bit rot inside the final batch is indistinguishable from a torn write and is dropped too;
 * that batch was, at worst, the last one acknowledged.
 *
 * A batch is all or nothing: if the last segment's final batch is incomplete (its last record,
 * flagged "ends batch", is missing), the records of it that did survive are dropped as well.
 * A batch holds whole save() calls, so each call survives a crash entirely or not at all.
 */
import { type FramedRecord, type FrameFailure, readRecordAt, recordHeaderBytes } from './record.js';
import { segmentHeaderBytes } from './segment-file.js';

export interface SegmentDamage {
  /** Byte offset of the first bad record. */
  offset: number;
  reason: string;
  /** True if the damage is a torn final write (drop it), false if it is corruption. */
  torn: boolean;
}

export interface SegmentScan {
  records: FramedRecord[];
  /** Offset just past the last good record: where the data ends and appends continue. */
  validEndBytes: number;
  damage: SegmentDamage | null;
}

export interface ScanOptions {
  isLastSegment: boolean;
  maxRecordBytes: number;
}

const failureText: Record<FrameFailure, string> = {
  'short-header': 'record header cut short by the end of the file',
  'bad-header': 'record header has invalid fields',
  'header-checksum': 'record header checksum mismatch',
  'record-too-large': 'record length exceeds maxRecordBytes',
  'short-payload': 'record payload cut short by the end of the file',
  'payload-checksum': 'record payload checksum mismatch',
};

export function scanSegment(buffer: Buffer, options: ScanOptions): SegmentScan {
  const records: FramedRecord[] = [];
  let offset = segmentHeaderBytes;
  let damage: SegmentDamage | null = null;
  while (offset < buffer.length) {
    const result = readRecordAt(buffer, offset, options.maxRecordBytes);
    if (typeof result !== 'string') {
      records.push(result);
      offset = result.end;
      continue;
    }
    const dataEnd = lastNonZeroByte(buffer, offset) + 1;
    // Zero fill after the last record is where a preallocated last segment's data ends.
    if (dataEnd === 0 && options.isLastSegment) break;
    const torn =
      options.isLastSegment &&
      dataEnd > 0 &&
      isTornFinalBatch(buffer, offset, dataEnd, records.at(-1), options);
    const reason = dataEnd === 0 ? 'zeros where records should continue' : failureText[result];
    damage = { offset, reason, torn };
    break;
  }
  const last = records.at(-1);
  if (last !== undefined && !last.endsBatch && (damage === null || damage.torn)) {
    if (!options.isLastSegment) {
      // Segments roll over between batches, so only the last one may end mid-batch.
      return {
        records,
        validEndBytes: offset,
        damage: { offset, reason: 'segment ends inside a batch', torn: false },
      };
    }
    while (records.length > 0 && records.at(-1)!.batchSeq === last.batchSeq) records.pop();
    offset = records.at(-1)?.end ?? segmentHeaderBytes;
  }
  return { records, validEndBytes: offset, damage };
}

/**
 * Whether every record still readable after the damage belongs to the batch the damaged
 * record belongs to, the final one: then the damage is within that batch.
 */
function isTornFinalBatch(
  buffer: Buffer,
  damageOffset: number,
  dataEnd: number,
  previous: FramedRecord | undefined,
  options: ScanOptions,
): boolean {
  const data = buffer.subarray(0, dataEnd);
  let damagedBatch: number | undefined;
  if (previous !== undefined)
    damagedBatch = previous.endsBatch ? (previous.batchSeq + 1) >>> 0 : previous.batchSeq;
  // Probe each byte offset: after damage the record boundaries are unknown.
  let offset = damageOffset + 1;
  while (offset + recordHeaderBytes <= dataEnd) {
    const record = readRecordAt(data, offset, options.maxRecordBytes);
    if (typeof record === 'string') {
      offset++;
      continue;
    }
    damagedBatch ??= record.batchSeq;
    if (record.batchSeq !== damagedBatch) return false;
    offset = record.end;
  }
  return true;
}

const zeroChunk = Buffer.alloc(64 * 1024);

/** The offset of the last non-zero byte at or after `from`, or -1 if there is none. */
function lastNonZeroByte(buffer: Buffer, from: number): number {
  let end = buffer.length;
  while (end > from) {
    const start = Math.max(from, end - zeroChunk.length);
    if (!buffer.subarray(start, end).equals(zeroChunk.subarray(0, end - start))) {
      for (let i = end - 1; i >= start; i--) if (buffer[i] !== 0) return i;
    }
    end = start;
  }
  return -1;
}
