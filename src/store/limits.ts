/**
 * Store limits with their defaults. The store enforces the generous etcd-side limits; the Consul
 * adapter enforces Consul's tighter ones (512 KiB values, 64 txn ops) at its edge.
 */
import { StoreError, StoreErrorCode } from './errors.js';

export interface StoreLimits {
  /** Longest key in bytes. etcd has no separate key limit (only the 1.5 MiB request); 32 KiB is ours. */
  maxKeyBytes: number;
  /** Largest value in bytes: etcd's default --max-request-bytes, 1.5 MiB. */
  maxValueBytes: number;
  /** Ops per txn level: etcd's --max-txn-ops default 128 (Consul: 64 at its edge). */
  maxTxnOps: number;
  /** Deepest nesting of etcd txns inside txns. */
  maxTxnDepth: number;
  /**
   * Bytes of retained KV data (all versions kept until compaction, plus per-version overhead)
   * above which writes fail with QUOTA_EXCEEDED: etcd's --quota-backend-bytes default 2 GiB.
   * 0 disables the quota.
   */
  quotaBytes: number;
  /** Longest TTL a lease/session may ask for: etcd MaxLeaseTTL (9e9 s) in ms. */
  maxLeaseTtlMs: number;
  /** Consul caps lock-delay at 60 s (structs.MaxLockDelay). */
  maxLockDelayMs: number;
  /** Events a watcher may have buffered before it is moved to catch-up from history. */
  maxWatcherBufferedEvents: number;
  /** Events returned by one catch-up read from history (bounded memory per take). */
  maxCatchUpEvents: number;
  maxWatchers: number;
  maxBlockingWaiters: number;
  /** Keys a sort-by-non-key range may buffer; larger ranges must page by key. */
  maxSortedRangeKeys: number;
}

export const DEFAULT_LIMITS: Readonly<StoreLimits> = Object.freeze({
  maxKeyBytes: 32 * 1024,
  maxValueBytes: 1.5 * 1024 * 1024,
  maxTxnOps: 128,
  maxTxnDepth: 16,
  quotaBytes: 2 * 1024 * 1024 * 1024,
  maxLeaseTtlMs: 9_000_000_000 * 1000,
  maxLockDelayMs: 60_000,
  maxWatcherBufferedEvents: 4096,
  maxCatchUpEvents: 1024,
  maxWatchers: 1_000_000,
  maxBlockingWaiters: 1_000_000,
  maxSortedRangeKeys: 1_000_000,
});

export function resolveLimits(overrides: Partial<StoreLimits> = {}): StoreLimits {
  const limits: StoreLimits = { ...DEFAULT_LIMITS, ...overrides };
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new StoreError(
        StoreErrorCode.InvalidArgument,
        `Cannot create store as limit '${name}' must be a non-negative integer: current value is ${value}`,
      );
    }
  }
  return limits;
}
