import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMemoryDisk, MemoryStorage } from '../../src/storage/memory.js';
import { WalStorage } from '../../src/storage/wal/wal-storage.js';
import { registerStorageCompliance } from './compliance.js';

registerStorageCompliance('MemoryStorage', async () => {
  const disk = createMemoryDisk();
  return { open: () => new MemoryStorage({ disk }), cleanup: async () => undefined };
});

registerStorageCompliance('WalStorage', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'conclave-wal-'));
  return { open: () => new WalStorage({ dir }), cleanup: () => rm(dir, { recursive: true, force: true }) };
});

// Tiny segments and records force rollovers and segment release through the same tests.
registerStorageCompliance('WalStorage with 4 KiB segments', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'conclave-wal-'));
  return {
    open: () => new WalStorage({ dir, maxSegmentBytes: 4096, preallocateBytes: 1024, maxBatchBytes: 2048 }),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});
