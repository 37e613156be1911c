/** The replicated state machine: public surface for the server and the API adapters. */
export type { WaitResult, WaitTarget } from './blocking.js';
export { fromByteString, keySuccessor, prefixEnd, text, toByteString, utf8 } from './bytes.js';
export type {
  CatalogCheck,
  CatalogNode,
  CatalogService,
  CheckInput,
  NodeInput,
  ServiceEntry,
  ServiceInput,
} from './catalog.js';
export { Topic } from './catalog.js';
export { decodeCommand, encodeCommand, validateCommand } from './codec.js';
export type * from './commands.js';
export { type CompactionPolicy, DEFAULT_COMPACTION_POLICY } from './compaction.js';
export { isReadOnlyConsulTxn } from './consul-txn.js';
export { StoreError, StoreErrorCode, StoreInvariantError } from './errors.js';
export { DEFAULT_LIMITS, type StoreLimits } from './limits.js';
export { restore, snapshot, snapshotChunks, stateHash } from './snapshot.js';
export { Store, type StoreOptions, type StoreStatus } from './store.js';
export type * from './types.js';
export { consulFlags, isConsulFlags, MAX_CONSUL_FLAGS } from './types.js';
export type { WatchBatch, Watcher, WatchOptions } from './watch.js';
