/** The storage layer's public surface: the contract, its two implementations, its errors. */
export * from './errors.js';
export { createMemoryDisk, type MemoryDisk, MemoryStorage, type MemoryStorageOptions } from './memory.js';
export { emptyHardState, type RaftLogStorage, type RecoveredState, type StorageUpdate } from './types.js';
export type { FsOps, WalFile } from './wal/fs-ops.js';
export { nodeFsOps } from './wal/fs-ops.js';
export { WalStorage, type WalStorageOptions, walDefaults } from './wal/wal-storage.js';
