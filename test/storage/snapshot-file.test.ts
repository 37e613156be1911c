import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { crc32 } from 'node:zlib';
import { pack } from 'msgpackr';
import type { Snapshot } from '../../src/raft/types.js';
import { type FsOps, nodeFsOps } from '../../src/storage/wal/fs-ops.js';
import {
  decodeSnapshotFile,
  encodeSnapshotFile,
  parseSnapshotFileName,
  snapshotFileName,
  writeSnapshotFile,
} from '../../src/storage/wal/snapshot-file.js';

const snapshot: Snapshot = {
  meta: { index: 42, term: 3, config: { voters: ['a', 'b'], learners: ['c'] } },
  data: new Uint8Array([0, 1, 2, 255, 254]),
};
const name = parseSnapshotFileName(snapshotFileName(42, 3))!;

test('a snapshot file round-trips, and its data is written as given (not copied into msgpack)', () => {
  const parts = encodeSnapshotFile(snapshot);
  assert.equal(parts.at(-1), snapshot.data);
  const decoded = decodeSnapshotFile(Buffer.concat(parts), name);
  assert.deepEqual(decoded.meta, snapshot.meta);
  assert.deepEqual([...decoded.data], [...snapshot.data]);
});

test('a damaged snapshot file is refused with the reason', () => {
  const bytes = Buffer.concat(encodeSnapshotFile(snapshot));
  const flipped = Buffer.from(bytes);
  flipped[flipped.length - 1]! ^= 1;
  assert.throws(() => decodeSnapshotFile(flipped, name), /checksum/);
  assert.throws(() => decodeSnapshotFile(bytes.subarray(0, bytes.length - 1), name), /truncated/);
  assert.throws(() => decodeSnapshotFile(bytes, parseSnapshotFileName(snapshotFileName(43, 3))!), /disagree/);
});

test('format 1 files, written before the data left msgpack, still load', () => {
  const payload = pack([42, 3, ['a', 'b'], ['c'], snapshot.data]);
  const header = Buffer.alloc(24);
  header.write('CNCLSNAP', 0, 'latin1');
  header.writeUInt32LE(1, 8);
  header.writeUInt32LE(crc32(payload), 12);
  header.writeUInt32LE(payload.length, 16);
  const decoded = decodeSnapshotFile(Buffer.concat([header, payload]), name);
  assert.deepEqual(decoded.meta, snapshot.meta);
  assert.deepEqual([...decoded.data], [...snapshot.data]);
});

test('a written snapshot file holds exactly the encoded bytes, also when the disk takes short writes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'conclave-snapfile-'));
  try {
    // Several megabytes, so the payload spans several sync pieces; writes of at most 100,000
    // bytes, so pieces end mid-part and the header is written in more than one go.
    const big: Snapshot = { meta: snapshot.meta, data: randomBytes(3 * 1024 * 1024 + 17) };
    const shortWrites: FsOps = {
      ...nodeFsOps,
      open: async (path, flags) => {
        const file = await nodeFsOps.open(path, flags);
        return {
          ...file,
          write: (buffer, offset, length, position) =>
            file.write(buffer, offset, Math.min(length, position === 0 ? 7 : 100_000), position),
          datasync: () => file.datasync(),
          sync: () => file.sync(),
          truncate: (n) => file.truncate(n),
          close: () => file.close(),
        };
      },
    };
    for (const fs of [nodeFsOps, shortWrites]) {
      const written = await writeSnapshotFile(fs, dir, big);
      const bytes = readFileSync(join(dir, written.fileName));
      assert.deepEqual(bytes, Buffer.concat(encodeSnapshotFile(big)));
      assert.deepEqual(Buffer.from(decodeSnapshotFile(bytes, written).data), Buffer.from(big.data));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
