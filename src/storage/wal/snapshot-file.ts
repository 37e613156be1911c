/**
 * Snapshot files in `snap/`: `<index>-<term>.snap` (20-digit decimal, so names sort by index).
 *
 *   0  8 bytes  magic "CNCLSNAP"
 *   8  u32      format version (2; version 1 files are still read)
 *  12  u32      CRC32 of the payload
 *  16  u64      payload length in bytes
 *  24  payload: u32 meta length, msgpack [index, term, voters, learners], the data as is
 *      (version 1: msgpack [index, term, voters, learners, data])
 *
 * Version 2 keeps the state machine's bytes out of msgpack, so writing a snapshot of tens of
 * megabytes copies nothing on the event loop: the parts go to the file one after the other.
 *
 * Written to `<name>.tmp`, fsynced, renamed into place, directory fsynced: a crash leaves
 * either no file or a complete one under the final name (a leftover .tmp is deleted on load).
 */
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { pack, unpack } from 'msgpackr';
import type { Snapshot } from '../../raft/types.js';
import type { FsOps } from './fs-ops.js';
import { readUint64, writeUint64 } from './record.js';

const magic = Buffer.from('CNCLSNAP', 'latin1');
const snapshotFormatVersion = 2;
const headerBytes = 24;
const namePattern = /^(\d{20})-(\d{20})\.snap$/;

export interface SnapshotFileName {
  index: number;
  term: number;
  fileName: string;
}

export function snapshotFileName(index: number, term: number): string {
  return `${String(index).padStart(20, '0')}-${String(term).padStart(20, '0')}.snap`;
}

export function parseSnapshotFileName(fileName: string): SnapshotFileName | null {
  const match = namePattern.exec(fileName);
  if (match === null) return null;
  const index = Number(match[1]);
  const term = Number(match[2]);
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(term)) return null;
  return { index, term, fileName };
}

/** The file as parts to write in order (header, meta, data); the data is not copied. */
export function encodeSnapshotFile(snapshot: Snapshot): Uint8Array[] {
  const { header, metaPart } = fileFrame(snapshot);
  header.writeUInt32LE(crc32(snapshot.data, crc32(metaPart)), 12);
  return [header, metaPart, snapshot.data];
}

/** The header (its CRC field still zero) and the meta part of a snapshot's file. */
function fileFrame(snapshot: Snapshot): { header: Buffer; metaPart: Buffer } {
  const { meta } = snapshot;
  const packedMeta = pack([meta.index, meta.term, meta.config.voters, meta.config.learners]);
  const metaPart = Buffer.allocUnsafe(4 + packedMeta.length);
  metaPart.writeUInt32LE(packedMeta.length, 0);
  packedMeta.copy(metaPart, 4);
  const header = Buffer.alloc(headerBytes);
  magic.copy(header, 0);
  header.writeUInt32LE(snapshotFormatVersion, 8);
  writeUint64(header, metaPart.length + snapshot.data.byteLength, 16);
  return { header, metaPart };
}

/** Decode a snapshot file; throws an Error whose message says what is wrong. */
export function decodeSnapshotFile(bytes: Buffer, name: SnapshotFileName): Snapshot {
  if (bytes.length < headerBytes) throw new Error(`file is ${bytes.length} bytes, shorter than its header`);
  if (!bytes.subarray(0, 8).equals(magic)) throw new Error('bad magic (not a Conclave snapshot)');
  const version = bytes.readUInt32LE(8);
  if (version !== 1 && version !== snapshotFormatVersion)
    throw new Error(`snapshot format version ${version} is not supported`);
  const payloadBytes = readUint64(bytes, 16);
  if (headerBytes + payloadBytes !== bytes.length) {
    throw new Error(
      `header says ${payloadBytes} payload bytes, file holds ${bytes.length - headerBytes} (truncated?)`,
    );
  }
  const payload = bytes.subarray(headerBytes);
  if (crc32(payload) !== bytes.readUInt32LE(12)) throw new Error('payload checksum mismatch');
  let fields: unknown[];
  let data: unknown;
  if (version === 1) {
    const value = unpack(payload) as unknown;
    if (!Array.isArray(value) || value.length !== 5) throw new Error('payload is not a 5-element array');
    fields = value.slice(0, 4);
    data = value[4];
  } else {
    if (payload.length < 4) throw new Error('payload shorter than its meta length');
    const metaLength = payload.readUInt32LE(0);
    if (4 + metaLength > payload.length) throw new Error('meta overruns the payload');
    const value = unpack(payload.subarray(4, 4 + metaLength)) as unknown;
    if (!Array.isArray(value) || value.length !== 4) throw new Error('meta is not a 4-element array');
    fields = value;
    data = payload.subarray(4 + metaLength);
  }
  const [index, term, voters, learners] = fields;
  if (index !== name.index || term !== name.term)
    throw new Error('payload index/term disagree with the file name');
  if (!isStringArray(voters) || !isStringArray(learners) || !(data instanceof Uint8Array)) {
    throw new Error('payload fields invalid');
  }
  return {
    meta: { index, term, config: { voters, learners } },
    data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
  };
}

/** How much of a snapshot file is written between fdatasyncs. */
const SYNC_EVERY_BYTES = 1024 * 1024;

/** Write a snapshot durably under its final name (see the header comment for the steps). */
export async function writeSnapshotFile(
  fs: FsOps,
  snapDir: string,
  snapshot: Snapshot,
): Promise<SnapshotFileName> {
  const fileName = snapshotFileName(snapshot.meta.index, snapshot.meta.term);
  const finalPath = join(snapDir, fileName);
  const tempPath = `${finalPath}.tmp`;
  const { header, metaPart } = fileFrame(snapshot);
  const file = await fs.open(tempPath, 'w');
  try {
    // The payload goes first and the header, with its CRC, last: the CRC is summed a piece at a
    // time as the pieces are written, where summing tens of MB at once held the event loop
    // for 10-20 ms on the request path.
    let crc = 0;
    let position = headerBytes;
    let unsynced = 0;
    for (const part of [metaPart, snapshot.data]) {
      let written = 0;
      while (written < part.byteLength) {
        const length = Math.min(part.byteLength - written, SYNC_EVERY_BYTES - unsynced);
        const { bytesWritten } = await file.write(part, written, length, position);
        crc = crc32(part.subarray(written, written + bytesWritten), crc);
        written += bytesWritten;
        position += bytesWritten;
        unsynced += bytesWritten;
        // The disk flushes in write order: a WAL write issued during one big final fsync would
        // wait behind the whole file (hundreds of ms for tens of MB). Syncing as we go keeps
        // what stands before it to one stretch.
        if (unsynced >= SYNC_EVERY_BYTES) {
          await file.datasync();
          unsynced = 0;
        }
      }
    }
    header.writeUInt32LE(crc, 12);
    for (let written = 0; written < headerBytes; ) {
      written += (await file.write(header, written, headerBytes - written, written)).bytesWritten;
    }
    await file.sync();
  } finally {
    await file.close();
  }
  await fs.rename(tempPath, finalPath);
  await fs.syncDir(snapDir);
  return { index: snapshot.meta.index, term: snapshot.meta.term, fileName };
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string');
}
