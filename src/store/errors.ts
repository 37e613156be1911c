/**
 * The store's error catalogue. Every failure a client can cause has a code here; the etcd and
 * Consul adapters map codes to their own wire errors (e.g. COMPACTED -> etcd's
 * "mvcc: required revision has been compacted", QUOTA_EXCEEDED -> "etcdserver: mvcc: database
 * space exceeded"; CAS_FAILED -> Consul's `false` body or a txn error entry).
 */

export const StoreErrorCode = {
  /** Read or watch at a revision below the compact revision (etcd ErrCompacted). */
  Compacted: 'COMPACTED',
  /** Read at a revision above the current one (etcd ErrFutureRev). */
  FutureRevision: 'FUTURE_REVISION',
  KeyNotFound: 'KEY_NOT_FOUND',
  EmptyKey: 'EMPTY_KEY',
  KeyTooLarge: 'KEY_TOO_LARGE',
  ValueTooLarge: 'VALUE_TOO_LARGE',
  TooManyOps: 'TOO_MANY_OPS',
  /** etcd rejects a txn that writes one key twice (ErrDuplicateKey). */
  DuplicateKey: 'DUPLICATE_KEY',
  /** The size quota is exhausted: writes fail, deletes and compaction still work. */
  QuotaExceeded: 'QUOTA_EXCEEDED',
  LeaseNotFound: 'LEASE_NOT_FOUND',
  LeaseExists: 'LEASE_EXISTS',
  LeaseTtlInvalid: 'LEASE_TTL_INVALID',
  /** Consul "invalid session" on acquire/release or check-session. */
  SessionNotFound: 'SESSION_NOT_FOUND',
  NodeNotFound: 'NODE_NOT_FOUND',
  CheckNotFound: 'CHECK_NOT_FOUND',
  /** Consul refuses to create a session tied to a critical check. */
  CheckCritical: 'CHECK_CRITICAL',
  /** A compare-and-set or check-index did not match (Consul cas / delete-cas / check-index). */
  CasFailed: 'CAS_FAILED',
  /** Consul lock held by another session, or unlock by a session that does not hold it. */
  LockHeld: 'LOCK_HELD',
  /** Consul lock-delay after an invalidated lock is still running. */
  LockDelay: 'LOCK_DELAY',
  /** check-session mismatch, check-not-exists on an existing key. */
  CheckFailed: 'CHECK_FAILED',
  InvalidArgument: 'INVALID_ARGUMENT',
  /** Too many watchers or blocking waiters (bounded queues). */
  TooManyWatchers: 'TOO_MANY_WATCHERS',
  CorruptSnapshot: 'CORRUPT_SNAPSHOT',
  CorruptCommand: 'CORRUPT_COMMAND',
} as const;
export type StoreErrorCode = (typeof StoreErrorCode)[keyof typeof StoreErrorCode];

export class StoreError extends Error {
  override name = 'StoreError';
  readonly code: StoreErrorCode;
  /** For COMPACTED: the compact revision the client must resync from. */
  readonly compactRevision: number | undefined;
  /** For Consul txn failures: index of the op that failed. */
  readonly opIndex: number | undefined;

  constructor(
    code: StoreErrorCode,
    message: string,
    extra: { compactRevision?: number; opIndex?: number } = {},
  ) {
    super(message);
    this.code = code;
    this.compactRevision = extra.compactRevision;
    this.opIndex = extra.opIndex;
  }
}

export function storeError(
  code: StoreErrorCode,
  message: string,
  extra?: { compactRevision?: number; opIndex?: number },
): StoreError {
  return new StoreError(code, message, extra);
}

/** Invariant violations are bugs, not client errors: they crash loudly (TigerBeetle style). */
export class StoreInvariantError extends Error {
  override name = 'StoreInvariantError';
}

export function invariant(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) throw new StoreInvariantError(typeof message === 'string' ? message : message());
}
