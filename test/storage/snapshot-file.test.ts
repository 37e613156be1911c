import assert from 'node:assert/strict';
import { test } from 'node:test';
import { crc32 } from 'node:zlib';
import { pack } from 'msgpackr';
import type { Snapshot } from '../../src/raft/types.js';
import {
  decodeSnapshotFile,
  encodeSnapshotFile,
  parseSnapshotFileName,
  snapshotFileName,
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
