/**
 * Segment files: `<seq>-<firstIndex>.wal`, both 20-digit decimal so names sort in log order.
 * `seq` numbers segments without gaps (a missing one is detectable); `firstIndex` is the index
 * the first entry appended to the segment was expected to carry. A 32-byte header repeats both:
 *
 *   0  8 bytes  magic "CNCL-WAL"
 *   8  u32      format version
 *  12  u32      CRC32 of bytes 16..31
 *  16  u64      seq
 *  24  u64      firstIndex
 */
import { crc32 } from 'node:zlib';
import { readUint64, writeUint64 } from './record.js';

export const segmentHeaderBytes = 32;
export const segmentFormatVersion = 1;
const magic = Buffer.from('CNCL-WAL', 'latin1');
const namePattern = /^(\d{20})-(\d{20})\.wal$/;

export interface SegmentName {
  seq: number;
  firstIndex: number;
  fileName: string;
}

export function segmentFileName(seq: number, firstIndex: number): string {
  return `${String(seq).padStart(20, '0')}-${String(firstIndex).padStart(20, '0')}.wal`;
}

export function parseSegmentFileName(fileName: string): SegmentName | null {
  const match = namePattern.exec(fileName);
  if (match === null) return null;
  const seq = Number(match[1]);
  const firstIndex = Number(match[2]);
  if (!Number.isSafeInteger(seq) || !Number.isSafeInteger(firstIndex)) return null;
  return { seq, firstIndex, fileName };
}

export function encodeSegmentHeader(seq: number, firstIndex: number): Buffer {
  const header = Buffer.alloc(segmentHeaderBytes);
  magic.copy(header, 0);
  header.writeUInt32LE(segmentFormatVersion, 8);
  writeUint64(header, seq, 16);
  writeUint64(header, firstIndex, 24);
  header.writeUInt32LE(crc32(header.subarray(16, 32)), 12);
  return header;
}

/** Check a segment's header against its name; returns a reason string if it does not match. */
export function checkSegmentHeader(buffer: Buffer, name: SegmentName): string | null {
  if (buffer.length < segmentHeaderBytes) return `file is ${buffer.length} bytes, shorter than its header`;
  if (!buffer.subarray(0, 8).equals(magic)) return 'bad magic (not a Conclave WAL segment)';
  const version = buffer.readUInt32LE(8);
  if (version !== segmentFormatVersion)
    return `segment format version ${version}, this build reads ${segmentFormatVersion}`;
  if (crc32(buffer.subarray(16, 32)) !== buffer.readUInt32LE(12)) return 'header checksum mismatch';
  const seq = readUint64(buffer, 16);
  const firstIndex = readUint64(buffer, 24);
  if (seq !== name.seq || firstIndex !== name.firstIndex) {
    return `header says seq ${seq}, first index ${firstIndex}; the file name disagrees`;
  }
  return null;
}
