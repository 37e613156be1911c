/**
 * Record framing in a segment file. Each record is a 20-byte header and a payload:
 *
 *   0  u32  payload length in bytes
 *   4  u8   record type (RecordType)
 *   5  u8   flags (bit 0: last record of its write batch)
 *   6  u16  reserved, zero
 *   8  u32  batch sequence number (one per write+fdatasync; wraps)
 *  12  u32  CRC32 of the payload
 *  16  u32  CRC32 of header bytes 0..15
 *
 * The header has its own CRC so a flipped length bit is caught as corruption instead of
 * looking like a record that runs past the end of the file (a torn write). The batch number
 * lets recovery tell damage inside the final, possibly unsynced, batch (a torn write) from
 * damage in a batch that was synced before a later one was written (corruption).
 * All integers little-endian.
 */
import { crc32 } from 'node:zlib';

export const recordHeaderBytes = 20;

export const RecordType = {
  Entry: 1,
  HardState: 2,
  /** A snapshot installed from the leader: Raft §7 keep-or-discard of the log after it. */
  SnapshotMarker: 3,
  /** Discard entries from an index on (conflict truncation). */
  Truncate: 4,
} as const;
export type RecordType = (typeof RecordType)[keyof typeof RecordType];

const flagEndsBatch = 1;

/** Allocate a record with room for `payloadBytes`; fill the payload at `recordHeaderBytes`, then `finishPayload`. */
export function allocateRecord(type: RecordType, payloadBytes: number): Buffer {
  const record = Buffer.allocUnsafe(recordHeaderBytes + payloadBytes);
  record.writeUInt32LE(payloadBytes, 0);
  record.writeUInt8(type, 4);
  record.writeUInt8(0, 5);
  record.writeUInt16LE(0, 6);
  record.writeUInt32LE(0, 8);
  return record;
}

/** Compute the payload CRC once the payload bytes are in place. */
export function finishPayload(record: Buffer): Buffer {
  record.writeUInt32LE(crc32(record.subarray(recordHeaderBytes)), 12);
  return record;
}

export function encodeRecord(type: RecordType, payload: Uint8Array): Buffer {
  const record = allocateRecord(type, payload.byteLength);
  record.set(payload, recordHeaderBytes);
  return finishPayload(record);
}

/** Stamp the batch number and flag, then seal the header CRC. Done at write time. */
export function sealRecord(record: Buffer, batchSeq: number, endsBatch: boolean): void {
  record.writeUInt8(endsBatch ? flagEndsBatch : 0, 5);
  record.writeUInt32LE(batchSeq >>> 0, 8);
  record.writeUInt32LE(crc32(record.subarray(0, 16)), 16);
}

export interface FramedRecord {
  type: RecordType;
  /** Byte offset of the record header in its file. */
  offset: number;
  /** Offset just past the record. */
  end: number;
  batchSeq: number;
  endsBatch: boolean;
  payload: Buffer;
}

/** Why a record could not be read at an offset. */
export type FrameFailure =
  | 'short-header'
  | 'bad-header'
  | 'header-checksum'
  | 'record-too-large'
  | 'short-payload'
  | 'payload-checksum';

/** Read and verify the record at `offset`, or say why there is none. */
export function readRecordAt(
  buffer: Buffer,
  offset: number,
  maxRecordBytes: number,
): FramedRecord | FrameFailure {
  if (buffer.length - offset < recordHeaderBytes) return 'short-header';
  const payloadBytes = buffer.readUInt32LE(offset);
  const type = buffer.readUInt8(offset + 4);
  const flags = buffer.readUInt8(offset + 5);
  const reserved = buffer.readUInt16LE(offset + 6);
  // Cheap field checks first: resynchronisation probes every byte offset with this function.
  if (reserved !== 0 || flags > flagEndsBatch || type < RecordType.Entry || type > RecordType.Truncate) {
    return 'bad-header';
  }
  if (crc32(buffer.subarray(offset, offset + 16)) !== buffer.readUInt32LE(offset + 16))
    return 'header-checksum';
  if (recordHeaderBytes + payloadBytes > maxRecordBytes) return 'record-too-large';
  const end = offset + recordHeaderBytes + payloadBytes;
  if (end > buffer.length) return 'short-payload';
  const payload = buffer.subarray(offset + recordHeaderBytes, end);
  if (crc32(payload) !== buffer.readUInt32LE(offset + 12)) return 'payload-checksum';
  return {
    type: type as RecordType,
    offset,
    end,
    batchSeq: buffer.readUInt32LE(offset + 8),
    endsBatch: (flags & flagEndsBatch) !== 0,
    payload,
  };
}

/** Write a non-negative safe integer as u64 little-endian. */
export function writeUint64(buffer: Buffer, value: number, offset: number): void {
  buffer.writeUInt32LE(value >>> 0, offset);
  buffer.writeUInt32LE(Math.floor(value / 0x1_0000_0000), offset + 4);
}

/** Read a u64 written by writeUint64; values beyond 2^53 are not safe integers (caller checks). */
export function readUint64(buffer: Buffer, offset: number): number {
  const low = buffer.readUInt32LE(offset);
  const high = buffer.readUInt32LE(offset + 4);
  // Multiplying by 2^32 makes a boxed double even when `high` is 0; a small integer keeps the
  // fields of the recovered entries that hold it unboxed (see the Raft codec's `whole`).
  return high === 0 ? low : low + high * 0x1_0000_0000;
}
