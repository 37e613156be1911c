/**
 * Consul KV semantics: the /v1/txn KV verbs, which the single-key KV endpoint also uses
 * (PUT ?cas= -> cas, ?acquire= -> lock, ?release= -> unlock, DELETE ?cas= -> delete-cas,
 * ?recurse -> delete-tree). Semantics follow Consul's state store (kvs.go, txn.go):
 * - set keeps the key's session and LockIndex;
 * - cas with index 0 creates only; otherwise ModifyIndex must equal the index;
 * - lock: another session's lock or a running lock-delay fails; a new holder increments
 *   LockIndex; the holder re-locking only updates the value;
 * - unlock by a session that does not hold the lock fails; LockIndex is kept;
 * - a write identical to the current entry is skipped, so it bumps no index and wakes no
 *   blocking query (Consul kvsSetTxn "skip ... if the entry is not actually changed").
 */
import { type ByteString, prefixEnd, toByteString } from './bytes.js';
import type { ConsulKvOp, ConsulOpResult } from './commands.js';
import { StoreError, StoreErrorCode } from './errors.js';
import { checkKey, checkValue } from './etcd-txn.js';
import { toKeyValue } from './kv-view.js';
import type { LeaseTable } from './leases.js';
import type { StoreLimits } from './limits.js';
import type { LockDelays } from './locks.js';
import type { Version } from './mvcc.js';
import type { WriteTxn } from './write-txn.js';

export interface ConsulContext {
  txn: WriteTxn;
  leases: LeaseTable;
  lockDelays: LockDelays;
  limits: StoreLimits;
  nowMs: number;
}

export function validateConsulOps(ops: ConsulKvOp[], limits: StoreLimits): void {
  if (ops.length > limits.maxTxnOps) {
    throw new StoreError(
      StoreErrorCode.TooManyOps,
      `too many operations in txn: ${ops.length} > ${limits.maxTxnOps}`,
    );
  }
  ops.forEach((op, opIndex) => {
    try {
      // get-tree/delete-tree take a prefix, which may be empty (the whole KV store).
      if (op.verb !== 'get-tree' && op.verb !== 'delete-tree') checkKey(op.key, limits);
      if ('value' in op) checkValue(op.value, limits);
    } catch (error) {
      if (error instanceof StoreError) throw new StoreError(error.code, error.message, { opIndex });
      throw error;
    }
  });
}

/** Write unless identical to what is there; returns the resulting version and whether it wrote. */
function writeIfChanged(
  txn: WriteTxn,
  key: ByteString,
  existing: Version | undefined,
  value: ByteString,
  flags: number,
  lockIndex: number,
  session: number,
): Version {
  if (
    existing !== undefined &&
    existing.value === value &&
    existing.flags === flags &&
    existing.lockIndex === lockIndex &&
    existing.session === session
  ) {
    return existing;
  }
  return txn.put(key, value, { lease: existing?.lease ?? 0, flags, lockIndex, session });
}

function fail(code: StoreError['code'], message: string, opIndex: number): never {
  throw new StoreError(code, message, { opIndex });
}

function listPrefix(txn: WriteTxn, prefix: ByteString): Version[] {
  const found: Version[] = [];
  txn.scan({ start: prefix, end: prefixEnd(prefix), single: false }, false, (version) => {
    found.push(version);
    return true;
  });
  return found;
}

function applyOne(context: ConsulContext, op: ConsulKvOp, opIndex: number): ConsulOpResult {
  const { txn } = context;
  const key = toByteString(op.key);
  const existing = op.verb === 'get-tree' || op.verb === 'delete-tree' ? undefined : txn.get(key);
  const shown = (version: Version) => ({ kvs: [toKeyValue(version)] });
  const write = (value: Uint8Array, flags: number | undefined, lockIndex: number, session: number) =>
    writeIfChanged(txn, key, existing, toByteString(value), flags ?? 0, lockIndex, session);
  switch (op.verb) {
    case 'set': {
      const written = write(op.value, op.flags, existing?.lockIndex ?? 0, existing?.session ?? 0);
      return shown(written);
    }
    case 'cas': {
      if (op.index === 0 ? existing !== undefined : existing?.modRevision !== op.index) {
        fail(StoreErrorCode.CasFailed, `failed to set key "${key}", index is stale`, opIndex);
      }
      const written = write(op.value, op.flags, existing?.lockIndex ?? 0, existing?.session ?? 0);
      return shown(written);
    }
    case 'lock': {
      if (context.leases.get(op.session) === undefined) {
        fail(StoreErrorCode.SessionNotFound, `invalid session "${op.session}"`, opIndex);
      }
      if (existing !== undefined && existing.session !== 0 && existing.session !== op.session) {
        fail(StoreErrorCode.LockHeld, `failed to lock key "${key}", lock is already held`, opIndex);
      }
      if (context.lockDelays.activeUntil(key, context.nowMs) > 0) {
        fail(StoreErrorCode.LockDelay, `failed to lock key "${key}", lock-delay is in force`, opIndex);
      }
      const alreadyHeld = existing !== undefined && existing.session === op.session;
      const lockIndex = alreadyHeld ? existing.lockIndex : (existing?.lockIndex ?? 0) + 1;
      const written = write(op.value, op.flags, lockIndex, op.session);
      // The fencing token of a grant is the revision that granted it: unique and monotonic
      // across every lock in the store (a resource can reject any token below the last seen).
      const fencingToken = alreadyHeld ? context.leases.get(op.session)!.locks.get(key) : txn.revision;
      return fencingToken === undefined ? shown(written) : { ...shown(written), fencingToken };
    }
    case 'unlock': {
      if (existing === undefined || existing.session !== op.session) {
        fail(StoreErrorCode.LockHeld, `failed to unlock key "${key}", lock is not held by session`, opIndex);
      }
      const written = write(op.value, op.flags, existing.lockIndex, 0);
      return shown(written);
    }
    case 'get':
      if (existing === undefined) fail(StoreErrorCode.KeyNotFound, `key "${key}" doesn't exist`, opIndex);
      return shown(existing);
    case 'get-tree':
      return { kvs: listPrefix(txn, key).map((version) => toKeyValue(version)) };
    case 'check-index':
      if (existing === undefined) fail(StoreErrorCode.KeyNotFound, `key "${key}" doesn't exist`, opIndex);
      if (existing.modRevision !== op.index) {
        fail(
          StoreErrorCode.CasFailed,
          `current modify index ${existing.modRevision} for key "${key}" does not match ${op.index}`,
          opIndex,
        );
      }
      return shown(existing);
    case 'check-session':
      if (existing === undefined) fail(StoreErrorCode.KeyNotFound, `key "${key}" doesn't exist`, opIndex);
      if (existing.session !== op.session) {
        fail(StoreErrorCode.CheckFailed, `key "${key}" is not locked by session ${op.session}`, opIndex);
      }
      return shown(existing);
    case 'check-not-exists':
      if (existing !== undefined) fail(StoreErrorCode.CheckFailed, `key "${key}" exists`, opIndex);
      return { kvs: [] };
    case 'delete':
      txn.delete(key);
      return { kvs: [] };
    case 'delete-tree':
      for (const version of listPrefix(txn, key)) txn.delete(version.key);
      return { kvs: [] };
    case 'delete-cas':
      // Consul kvsDeleteCASTxn: a missing key counts as deleted; otherwise the index must match.
      if (existing !== undefined) {
        if (existing.modRevision !== op.index) {
          fail(StoreErrorCode.CasFailed, `failed to delete key "${key}", index is stale`, opIndex);
        }
        txn.delete(key);
      }
      return { kvs: [] };
  }
}

/** Apply the ops in order; the first failing op throws (with its opIndex) and aborts them all. */
export function applyConsulTxn(context: ConsulContext, ops: ConsulKvOp[]): ConsulOpResult[] {
  const results: ConsulOpResult[] = [];
  ops.forEach((op, opIndex) => {
    try {
      results.push(applyOne(context, op, opIndex));
    } catch (error) {
      if (error instanceof StoreError && error.opIndex === undefined) {
        throw new StoreError(error.code, error.message, { opIndex });
      }
      throw error;
    }
  });
  return results;
}
