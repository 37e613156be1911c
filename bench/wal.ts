/**
 * WAL throughput: 256-byte entries at batch sizes 1, 16, 256, 4096 (one save() per batch,
 * awaited), plus batch size 1 with many save() calls in flight so group commit shows. Also
 * measures this disk's raw fdatasync rate (4 KiB write + fdatasync loop) in the same directory,
 * both appending (the file grows: each sync commits metadata) and overwriting allocated blocks.
 *
 *   npm run bench:wal [-- --seconds 3 --dir /path/on/the/disk/to/test]
 */
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Entry } from '../src/raft/types.js';
import { EntryType } from '../src/raft/types.js';
import { type FsOps, nodeFsOps } from '../src/storage/wal/fs-ops.js';
import { WalStorage } from '../src/storage/wal/wal-storage.js';

const { values } = parseArgs({
  options: { seconds: { type: 'string', default: '3' }, dir: { type: 'string' } },
});
const secondsPerRow = Number(values.seconds);
const baseDir = values.dir ?? tmpdir();
const entryBytes = 256;

interface Row {
  name: string;
  appendsPerSecond: number;
  fsyncsPerSecond: number;
}

/** Raw disk: write 4 KiB, fdatasync, repeat. */
async function rawFsync(mode: 'append' | 'overwrite'): Promise<Row> {
  const dir = await mkdtemp(join(baseDir, 'conclave-bench-raw-'));
  const file = await open(join(dir, 'probe'), 'w');
  const block = Buffer.alloc(4096, 7);
  try {
    if (mode === 'overwrite') {
      // Allocate the region first so the loop never grows the file.
      for (let i = 0; i < 4096; i++) await file.write(block, 0, block.length, i * 4096);
      await file.sync();
    }
    let syncs = 0;
    const started = performance.now();
    while (performance.now() - started < secondsPerRow * 1000) {
      const position = mode === 'append' ? syncs * 4096 : (syncs % 4096) * 4096;
      await file.write(block, 0, block.length, position);
      await file.datasync();
      syncs++;
    }
    const rate = syncs / ((performance.now() - started) / 1000);
    return { name: `raw 4 KiB write+fdatasync (${mode})`, appendsPerSecond: rate, fsyncsPerSecond: rate };
  } finally {
    await file.close();
    await rm(dir, { recursive: true, force: true });
  }
}

function countingFs(counter: { syncs: number }): FsOps {
  return {
    ...nodeFsOps,
    open: async (path, flags) => {
      const file = await nodeFsOps.open(path, flags);
      return {
        write: (buffer, offset, length, position) => file.write(buffer, offset, length, position),
        datasync: () => {
          counter.syncs++;
          return file.datasync();
        },
        sync: () => {
          counter.syncs++;
          return file.sync();
        },
        truncate: (lengthBytes) => file.truncate(lengthBytes),
        close: () => file.close(),
      };
    },
    // A write through an O_DSYNC descriptor is one sync too.
    openDsync: async (path) => {
      const file = await nodeFsOps.openDsync!(path);
      return {
        writeDurable: (bytes, position) => {
          counter.syncs++;
          return file.writeDurable(bytes, position);
        },
        close: () => file.close(),
      };
    },
  };
}

function makeEntry(index: number, payload: Uint8Array): Entry {
  return { index, term: 1, type: EntryType.Normal, data: payload };
}

/** `batchSize` entries per save(); `inFlight` save() calls outstanding at once. */
async function walRow(batchSize: number, inFlight: number): Promise<Row> {
  const dir = await mkdtemp(join(baseDir, 'conclave-bench-wal-'));
  const counter = { syncs: 0 };
  const storage = new WalStorage({ dir, fs: countingFs(counter) });
  const payload = new Uint8Array(entryBytes).fill(42);
  try {
    await storage.load();
    await storage.save({ entries: [], hardState: { term: 1, vote: 'a', commit: 0 } });
    let nextIndex = 1;
    let appended = 0;
    let outstanding = 0;
    const syncsBefore = counter.syncs;
    const started = performance.now();
    const deadline = started + secondsPerRow * 1000;
    await new Promise<void>((resolve, reject) => {
      const issue = () => {
        while (outstanding < inFlight && performance.now() < deadline) {
          const entries: Entry[] = [];
          for (let i = 0; i < batchSize; i++) entries.push(makeEntry(nextIndex++, payload));
          outstanding++;
          storage.save({ entries }).then(() => {
            outstanding--;
            appended += batchSize;
            if (performance.now() < deadline) issue();
            else if (outstanding === 0) resolve();
          }, reject);
        }
      };
      issue();
    });
    const elapsedSeconds = (performance.now() - started) / 1000;
    return {
      name: inFlight === 1 ? `WAL batch ${batchSize}` : `WAL batch ${batchSize}, ${inFlight} saves in flight`,
      appendsPerSecond: appended / elapsedSeconds,
      fsyncsPerSecond: (counter.syncs - syncsBefore) / elapsedSeconds,
    };
  } finally {
    await storage.close();
    await rm(dir, { recursive: true, force: true });
  }
}

const format = (n: number) => Math.round(n).toLocaleString('en-US');

async function main(): Promise<void> {
  console.log(
    `WAL benchmark: ${entryBytes}-byte entries, ${secondsPerRow} s per row, directory ${baseDir}\n`,
  );
  const rawAppend = await rawFsync('append');
  const rawOverwrite = await rawFsync('overwrite');
  const rows: Row[] = [rawAppend, rawOverwrite];
  for (const batch of [1, 16, 256, 4096]) rows.push(await walRow(batch, 1));
  for (const inFlight of [16, 256]) rows.push(await walRow(1, inFlight));
  const header = ['', 'appends/s', 'fsyncs/s', 'MB/s', 'fsyncs vs raw append', 'vs raw overwrite'];
  const table = rows.map((row) => [
    row.name,
    format(row.appendsPerSecond),
    format(row.fsyncsPerSecond),
    row.name.startsWith('raw') ? '' : ((row.appendsPerSecond * entryBytes) / 1e6).toFixed(1),
    `${((row.fsyncsPerSecond / rawAppend.fsyncsPerSecond) * 100).toFixed(0)}%`,
    `${((row.fsyncsPerSecond / rawOverwrite.fsyncsPerSecond) * 100).toFixed(0)}%`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(line(header));
  for (const row of table) console.log(line(row));
}

await main();
