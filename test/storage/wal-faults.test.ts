/**
 * Fault injection at the file layer: torn writes, bit flips, missing files, full disks,
 * locks and format versions. Each test damages files the way a crash or a bad disk would,
 * then checks what recovery does.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import {
  StorageCorruptError,
  StorageFailedError,
  StorageLockedError,
  StorageVersionError,
} from '../../src/storage/errors.js';
import { nodeFsOps } from '../../src/storage/wal/fs-ops.js';
import { readRecordAt } from '../../src/storage/wal/record.js';
import { segmentHeaderBytes } from '../../src/storage/wal/segment-file.js';
import { writeSnapshotFile } from '../../src/storage/wal/snapshot-file.js';
import { WalStorage, type WalStorageOptions } from '../../src/storage/wal/wal-storage.js';
import { assertRecovered, makeEntries, makeSnapshot } from './compliance.js';
import { FaultyFs } from './faulty-fs.js';

let dir = '';
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'conclave-wal-fault-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const warnings: string[] = [];
function open(options: Partial<WalStorageOptions> = {}): WalStorage {
  return new WalStorage({ dir, warn: (message) => warnings.push(message), ...options });
}

/** Save `batches` as separate calls (so separate write batches), then close. */
async function writeBatches(batches: [number, number, number][], options: Partial<WalStorageOptions> = {}) {
  const storage = open(options);
  await storage.load();
  for (const [from, to, term] of batches) await storage.save({ entries: makeEntries(from, to, term, 40) });
  await storage.close();
}

async function segmentFiles(): Promise<string[]> {
  return (await readdir(join(dir, 'wal'))).filter((name) => name.endsWith('.wal')).sort();
}

async function lastSegmentPath(): Promise<string> {
  return join(dir, 'wal', (await segmentFiles()).at(-1)!);
}

/** Byte offsets of the records in a segment, in order. */
async function recordOffsets(path: string): Promise<{ offset: number; end: number }[]> {
  const bytes = await readFile(path);
  const offsets: { offset: number; end: number }[] = [];
  let offset = segmentHeaderBytes;
  for (;;) {
    const record = readRecordAt(bytes, offset, 1 << 30);
    if (typeof record === 'string') return offsets;
    offsets.push({ offset, end: record.end });
    offset = record.end;
  }
}

async function flipByte(path: string, offset: number): Promise<void> {
  const bytes = await readFile(path);
  bytes[offset] = bytes[offset]! ^ 0x10;
  await writeFile(path, bytes);
}

async function loadFresh(options: Partial<WalStorageOptions> = {}) {
  const storage = open(options);
  try {
    return await storage.load();
  } finally {
    await storage.close();
  }
}

describe('torn writes', () => {
  test('a last record cut short is dropped with its whole batch', async () => {
    await writeBatches([
      [1, 10, 1],
      [11, 20, 1],
      [21, 30, 1],
    ]);
    const path = await lastSegmentPath();
    const records = await recordOffsets(path);
    await truncate(path, records.at(-1)!.offset + 7);
    assertRecovered(await loadFresh(), { entries: makeEntries(1, 20, 1, 40) });
    // The log continues cleanly after the cut.
    const storage = open();
    await storage.load();
    await storage.save({ entries: makeEntries(21, 25, 2, 40) });
    await storage.close();
    assertRecovered(await loadFresh(), {
      entries: [...makeEntries(1, 20, 1, 40), ...makeEntries(21, 25, 2, 40)],
    });
  });

  test('a last record failing its checksum at the end of the log is a torn write', async () => {
    await writeBatches([
      [1, 10, 1],
      [11, 20, 1],
    ]);
    const path = await lastSegmentPath();
    const last = (await recordOffsets(path)).at(-1)!;
    await flipByte(path, last.end - 3);
    assertRecovered(await loadFresh(), { entries: makeEntries(1, 10, 1, 40) });
  });

  test('a hole inside the final batch (pages written out of order) is a torn write', async () => {
    await writeBatches([
      [1, 10, 1],
      [11, 60, 1],
    ]);
    const path = await lastSegmentPath();
    const records = await recordOffsets(path);
    const bytes = await readFile(path);
    bytes.fill(0, records[30]!.offset, records[40]!.offset + 5);
    await writeFile(path, bytes);
    assertRecovered(await loadFresh(), { entries: makeEntries(1, 10, 1, 40) });
  });

  test('garbage after the last complete batch is dropped', async () => {
    await writeBatches([[1, 10, 1]]);
    const path = await lastSegmentPath();
    const end = (await recordOffsets(path)).at(-1)!.end;
    const bytes = await readFile(path);
    bytes.fill(0xab, end, end + 100);
    await writeFile(path, bytes);
    assertRecovered(await loadFresh(), { entries: makeEntries(1, 10, 1, 40) });
  });

  test('a last segment whose header never made it to disk is discarded', async () => {
    await writeBatches([[1, 10, 1]]);
    const name = (await segmentFiles()).at(-1)!;
    // As a rollover does: the old segment is cut to its last record before the next is created.
    const path = join(dir, 'wal', name);
    await truncate(path, (await recordOffsets(path)).at(-1)!.end);
    const [seq] = name.split('-');
    const nextName = `${String(Number(seq) + 1).padStart(20, '0')}-${String(11).padStart(20, '0')}.wal`;
    await writeFile(join(dir, 'wal', nextName), Buffer.from('CNCL-W'));
    assertRecovered(await loadFresh(), { entries: makeEntries(1, 10, 1, 40) });
    assert.deepStrictEqual(await segmentFiles(), [name]);
  });
});

describe('corruption', () => {
  test('a bit flip in a middle record refuses to start, naming file and offset', async () => {
    await writeBatches([
      [1, 10, 1],
      [11, 20, 1],
      [21, 30, 1],
    ]);
    const path = await lastSegmentPath();
    const records = await recordOffsets(path);
    const victim = records[14]!; // entry 15, in the second batch
    await flipByte(path, victim.offset + 30);
    await assert.rejects(loadFresh(), (error: unknown) => {
      assert.ok(error instanceof StorageCorruptError);
      assert.equal(error.file, path);
      assert.equal(error.offset, victim.offset);
      assert.match(
        error.message,
        new RegExp(`${path.replaceAll(/[/\\.]/g, '\\$&')} at byte offset ${victim.offset}`),
      );
      assert.match(error.message, /force-recover/);
      return true;
    });
  });

  test('a flipped length bit in a middle record is corruption, not a torn write', async () => {
    await writeBatches([
      [1, 10, 1],
      [11, 20, 1],
    ]);
    const path = await lastSegmentPath();
    const victim = (await recordOffsets(path))[3]!;
    await flipByte(path, victim.offset + 2);
    await assert.rejects(loadFresh(), StorageCorruptError);
  });

  test('forceRecover truncates at the corruption and the log carries on', async () => {
    await writeBatches([
      [1, 10, 1],
      [11, 20, 1],
      [21, 30, 1],
    ]);
    const path = await lastSegmentPath();
    const victim = (await recordOffsets(path))[14]!;
    await flipByte(path, victim.offset + 30);
    warnings.length = 0;
    // Entries 11..14 share the damaged batch: a batch is kept whole or not at all.
    assertRecovered(await loadFresh({ forceRecover: true }), { entries: makeEntries(1, 10, 1, 40) });
    assert.ok(
      warnings.some((w) => w.includes('force-recover') && w.includes(`byte offset ${victim.offset}`)),
    );
    const storage = open();
    await storage.load();
    await storage.save({ entries: makeEntries(11, 12, 2, 40) });
    await storage.close();
    assertRecovered(await loadFresh(), {
      entries: [...makeEntries(1, 10, 1, 40), ...makeEntries(11, 12, 2, 40)],
    });
  });

  test('corruption in a segment that is not the last refuses, and forceRecover drops the later segments', async () => {
    const small = { maxSegmentBytes: 2048, preallocateBytes: 512 };
    await writeBatches(
      Array.from({ length: 20 }, (_, i): [number, number, number] => [i * 5 + 1, i * 5 + 5, 1]),
      small,
    );
    const files = await segmentFiles();
    assert.ok(files.length >= 3, `expected several segments, got ${files.length}`);
    const path = join(dir, 'wal', files[1]!);
    const victim = (await recordOffsets(path)).at(-1)!;
    await flipByte(path, victim.end - 1);
    await assert.rejects(
      loadFresh(small),
      (error: unknown) => error instanceof StorageCorruptError && error.file === path,
    );
    const state = await loadFresh({ ...small, forceRecover: true });
    assert.ok(state.entries.length > 0 && state.entries.length < 100);
    assert.equal((await segmentFiles()).length, 2);
  });

  test('a missing segment in the middle refuses to start', async () => {
    const small = { maxSegmentBytes: 2048, preallocateBytes: 512 };
    await writeBatches(
      Array.from({ length: 20 }, (_, i): [number, number, number] => [i * 5 + 1, i * 5 + 5, 1]),
      small,
    );
    const files = await segmentFiles();
    await rm(join(dir, 'wal', files[1]!));
    await assert.rejects(loadFresh(small), (error: unknown) => {
      assert.ok(error instanceof StorageCorruptError);
      assert.match(error.message, /missing/);
      assert.equal(error.file, join(dir, 'wal', files[2]!));
      return true;
    });
  });

  test('a missing first segment (no snapshot covers it) refuses to start', async () => {
    const small = { maxSegmentBytes: 2048, preallocateBytes: 512 };
    await writeBatches(
      Array.from({ length: 20 }, (_, i): [number, number, number] => [i * 5 + 1, i * 5 + 5, 1]),
      small,
    );
    await rm(join(dir, 'wal', (await segmentFiles())[0]!));
    await assert.rejects(loadFresh(small), /earlier segments are missing/);
  });
});

describe('snapshots', () => {
  const small = { maxSegmentBytes: 2048, preallocateBytes: 512 };

  async function snapshotScenario(options: Partial<WalStorageOptions>) {
    const storage = open({ ...small, ...options });
    await storage.load();
    for (let i = 0; i < 40; i++) await storage.save({ entries: makeEntries(i * 5 + 1, i * 5 + 5, 1, 40) });
    await storage.saveSnapshot(makeSnapshot(100, 1));
    await storage.saveSnapshot(makeSnapshot(150, 1));
    await storage.close();
  }

  const snapFiles = async () => (await readdir(join(dir, 'snap'))).sort();

  test('old segments are released only up to the oldest kept snapshot', async () => {
    const before = open(small);
    await before.load();
    for (let i = 0; i < 40; i++) await before.save({ entries: makeEntries(i * 5 + 1, i * 5 + 5, 1, 40) });
    const segmentsBefore = (await segmentFiles()).length;
    await before.saveSnapshot(makeSnapshot(100, 1));
    // One snapshot of two kept: the log must still cover "no snapshot" as the fallback.
    assert.equal((await segmentFiles()).length, segmentsBefore);
    await before.saveSnapshot(makeSnapshot(150, 1));
    const segmentsAfter = await segmentFiles();
    assert.ok(segmentsAfter.length < segmentsBefore, `${segmentsAfter.length} < ${segmentsBefore}`);
    await before.saveSnapshot(makeSnapshot(190, 1));
    assert.equal((await snapFiles()).length, 2);
    await before.close();
    assertRecovered(await loadFresh(small), { snapshotIndex: 190, entries: makeEntries(191, 200, 1, 40) });
  });

  test('a truncated newest snapshot falls back to the older one plus the log, with a warning', async () => {
    await snapshotScenario({});
    const newest = (await snapFiles()).at(-1)!;
    await truncate(join(dir, 'snap', newest), 30);
    warnings.length = 0;
    const state = await loadFresh(small);
    assertRecovered(state, { snapshotIndex: 100, entries: makeEntries(101, 200, 1, 40) });
    assert.ok(
      warnings.some((w) => w.includes(newest) && w.includes('truncated')),
      warnings.join('\n'),
    );
    assert.ok((await snapFiles()).includes(`${newest}.corrupt`));
  });

  test('a truncated snapshot with nothing older covering it refuses to start', async () => {
    await snapshotScenario({ snapshotsToKeep: 1 });
    const files = await snapFiles();
    assert.equal(files.length, 1);
    await truncate(join(dir, 'snap', files[0]!), 30);
    await assert.rejects(loadFresh({ ...small, snapshotsToKeep: 1 }), (error: unknown) => {
      assert.ok(error instanceof StorageCorruptError);
      assert.match(error.message, new RegExp(files[0]!.replace('.', '\\.')));
      return true;
    });
  });

  test('a crash between an installed snapshot file and its log record recovers by Raft §7', async () => {
    await writeBatches([[1, 10, 1]]);
    // The snapshot file is durable; the marker record that installs it never reached the log.
    await writeSnapshotFile(nodeFsOps, join(dir, 'snap'), makeSnapshot(8, 2));
    assertRecovered(await loadFresh(), { snapshotIndex: 8, entries: [] });
    const storage = open();
    await storage.load();
    await storage.save({ entries: makeEntries(9, 12, 2, 40) });
    await storage.close();
    assertRecovered(await loadFresh(), { snapshotIndex: 8, entries: makeEntries(9, 12, 2, 40) });
  });

  test('a snapshot file matching a logged entry keeps the log after it', async () => {
    await writeBatches([[1, 10, 1]]);
    await writeSnapshotFile(nodeFsOps, join(dir, 'snap'), makeSnapshot(6, 1));
    assertRecovered(await loadFresh(), { snapshotIndex: 6, entries: makeEntries(7, 10, 1, 40) });
  });

  test('a leftover temp snapshot file is removed', async () => {
    await snapshotScenario({});
    await writeFile(join(dir, 'snap', 'x.snap.tmp'), 'partial');
    await loadFresh(small);
    assert.ok(!(await snapFiles()).includes('x.snap.tmp'));
  });
});

describe('write failures', () => {
  test('ENOSPC rejects the save and every later one; nothing unacknowledged is reported saved', async () => {
    const fs = new FaultyFs({});
    const storage = open({ fs, preallocateBytes: 4096 });
    await storage.load();
    await storage.save({ entries: makeEntries(1, 10, 1, 40) });
    fs.arm({ failWritesAfterBytes: fs.writtenBytes + 1000, code: 'ENOSPC' });
    const big = storage.save({ entries: makeEntries(11, 200, 1, 40) });
    const after = storage.save({ entries: makeEntries(201, 201, 1, 40) });
    await assert.rejects(big, (error: unknown) => {
      assert.ok(error instanceof StorageFailedError);
      assert.match(error.message, /ENOSPC/);
      return true;
    });
    await assert.rejects(after, StorageFailedError);
    await assert.rejects(storage.save({ entries: [] }), StorageFailedError);
    await assert.rejects(storage.saveSnapshot(makeSnapshot(5, 1)), StorageFailedError);
    await storage.close();
    const state = await loadFresh();
    assert.ok(state.entries.length >= 10);
    assertRecovered(
      { ...state, entries: state.entries.slice(0, 10) },
      { entries: makeEntries(1, 10, 1, 40) },
    );
  });

  test('an fdatasync error (EIO) fails the storage', async () => {
    const fs = new FaultyFs({});
    const storage = open({ fs });
    await storage.load();
    await storage.save({ entries: makeEntries(1, 3, 1) });
    fs.arm({ failSyncFrom: fs.syncs + 1, code: 'EIO' });
    await assert.rejects(storage.save({ entries: makeEntries(4, 5, 1) }), /EIO/);
    await assert.rejects(storage.save({ entries: [] }), StorageFailedError);
    await storage.close();
  });

  test('a failing snapshot write fails the storage', async () => {
    const fs = new FaultyFs({});
    const storage = open({ fs });
    await storage.load();
    await storage.save({ entries: makeEntries(1, 3, 1) });
    fs.arm({ failSyncFrom: fs.syncs + 1, code: 'EIO' });
    await assert.rejects(storage.saveSnapshot(makeSnapshot(2, 1)), StorageFailedError);
    await assert.rejects(storage.save({ entries: [] }), StorageFailedError);
    await storage.close();
  });
});

describe('data directory guards', () => {
  test('a second instance on the same directory is refused', async () => {
    const first = open();
    await first.load();
    try {
      await assert.rejects(loadFresh(), StorageLockedError);
    } finally {
      await first.close();
    }
    await loadFresh();
  });

  test('a lock held by another live process is refused, naming its PID', async (t) => {
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    t.after(() => child.kill('SIGKILL'));
    await writeFile(join(dir, 'LOCK'), `${child.pid}\n`);
    await assert.rejects(loadFresh(), (error: unknown) => {
      assert.ok(error instanceof StorageLockedError);
      assert.equal(error.pid, child.pid);
      assert.match(error.message, new RegExp(`process ${child.pid}`));
      return true;
    });
  });

  test('a stale lock (its process is gone) is taken over', async () => {
    const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
    await writeFile(join(dir, 'LOCK'), `${gone.stdout.toString()}\n`);
    await loadFresh();
  });

  test('an unknown format version is refused with a message', async () => {
    await loadFresh();
    await writeFile(join(dir, 'VERSION'), 'conclave-data 2\n');
    await assert.rejects(loadFresh(), (error: unknown) => {
      assert.ok(error instanceof StorageVersionError);
      assert.match(error.message, /format version 2.*reads version 1.*newer/);
      return true;
    });
  });

  test('data without a VERSION file is refused', async () => {
    await writeBatches([[1, 2, 1]]);
    await rm(join(dir, 'VERSION'));
    await assert.rejects(loadFresh(), StorageVersionError);
  });
});
