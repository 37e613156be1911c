/**
 * etcd KV semantics over a WriteTxn: Put, DeleteRange, Range and Txn (compare -> success /
 * failure, nested txns). See etcd's api/v3rpc and server/etcdserver/txn.
 */
import { type ByteString, toByteString } from './bytes.js';
import type { Compare, DeleteRangeOp, PutOp, RangeOp, RequestOp, ResponseOp, TxnOp } from './commands.js';
import { StoreError, StoreErrorCode } from './errors.js';
import { decodeRange, inRange, type KeyRange, toKeyValue } from './kv-view.js';
import type { StoreLimits } from './limits.js';
import type { Version } from './mvcc.js';
import { evaluateRange, type Scanner } from './range.js';
import type { KeyValue } from './types.js';
import type { WriteTxn } from './write-txn.js';

export interface EtcdContext {
  txn: WriteTxn;
  limits: StoreLimits;
  leaseExists(id: number): boolean;
  /** Committed-state scanner at a past revision (validated: throws COMPACTED / FUTURE_REVISION). */
  scannerAt(revision: number): Scanner;
}

export function checkKey(key: Uint8Array, limits: StoreLimits): void {
  if (key.length === 0) throw new StoreError(StoreErrorCode.EmptyKey, 'key is not provided');
  if (key.length > limits.maxKeyBytes) {
    throw new StoreError(
      StoreErrorCode.KeyTooLarge,
      `key is ${key.length} bytes, more than the limit of ${limits.maxKeyBytes}`,
    );
  }
}

export function checkValue(value: Uint8Array, limits: StoreLimits): void {
  if (value.length > limits.maxValueBytes) {
    throw new StoreError(
      StoreErrorCode.ValueTooLarge,
      `value is ${value.length} bytes, more than the limit of ${limits.maxValueBytes}`,
    );
  }
}

/** Size, count and depth checks for a whole txn tree (both branches, as etcd's checkTxnRequest). */
export function validateTxn(txn: TxnOp, limits: StoreLimits, depth = 1): void {
  if (depth > limits.maxTxnDepth) {
    throw new StoreError(StoreErrorCode.TooManyOps, `txn nesting deeper than ${limits.maxTxnDepth}`);
  }
  for (const list of [txn.compare, txn.success, txn.failure]) {
    if (list.length > limits.maxTxnOps) {
      throw new StoreError(
        StoreErrorCode.TooManyOps,
        `too many operations in txn request: ${list.length} > ${limits.maxTxnOps}`,
      );
    }
  }
  for (const compare of txn.compare) checkKey(compare.key, limits);
  for (const op of [...txn.success, ...txn.failure]) validateOp(op, limits, depth);
  checkDuplicates(txn.success);
  checkDuplicates(txn.failure);
}

function validateOp(op: RequestOp, limits: StoreLimits, depth: number): void {
  switch (op.type) {
    case 'put':
      checkKey(op.key, limits);
      checkValue(op.value, limits);
      return;
    case 'deleteRange':
    case 'range':
      checkKey(op.key, limits);
      return;
    case 'txn':
      validateTxn(op, limits, depth + 1);
      return;
  }
}

/**
 * etcd ErrDuplicateKey: a branch may not put one key twice, nor put a key that a delete in
 * the same branch covers; a nested txn's branches count against the enclosing branch.
 * Returns the put keys of the branch.
 */
function checkDuplicates(ops: RequestOp[]): Set<ByteString> {
  const puts = new Set<ByteString>();
  const deletes: KeyRange[] = [];
  const duplicate = () => new StoreError(StoreErrorCode.DuplicateKey, 'duplicate key given in txn request');
  for (const op of ops) {
    if (op.type === 'put') {
      const key = toByteString(op.key);
      if (puts.has(key)) throw duplicate();
      puts.add(key);
    } else if (op.type === 'deleteRange') {
      deletes.push(decodeRange(op.key, op.rangeEnd));
    }
  }
  for (const op of ops) {
    if (op.type !== 'txn') continue;
    const nested = new Set([...checkDuplicates(op.success), ...checkDuplicates(op.failure)]);
    for (const key of nested) {
      if (puts.has(key)) throw duplicate();
    }
    for (const key of nested) puts.add(key);
  }
  for (const key of puts) {
    if (deletes.some((range) => inRange(range, key))) throw duplicate();
  }
  return puts;
}

function compareBytes(a: ByteString, b: ByteString): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function compareOne(compare: Compare, version: Version | undefined): boolean {
  let order: number;
  if (compare.target === 'value') {
    if (version === undefined) return false;
    const expected =
      compare.value instanceof Uint8Array ? toByteString(compare.value) : String(compare.value);
    order = compareBytes(version.value, expected);
  } else {
    const expected = typeof compare.value === 'number' ? compare.value : Number(compare.value);
    const actual =
      version === undefined
        ? 0
        : compare.target === 'version'
          ? version.version
          : compare.target === 'create'
            ? version.createRevision
            : compare.target === 'mod'
              ? version.modRevision
              : version.lease;
    order = actual - expected;
  }
  switch (compare.result) {
    case 'equal':
      return order === 0;
    case 'notEqual':
      return order !== 0;
    case 'greater':
      return order > 0;
    case 'less':
      return order < 0;
  }
}

/**
 * etcd applyCompare: every key in the range must satisfy the compare; a missing key compares
 * as a zero KeyValue, except that a value compare on a missing key is false.
 * Compares read committed state: etcd evaluates the whole branch path before executing ops.
 */
function evaluateCompare(context: EtcdContext, compare: Compare): boolean {
  const range = decodeRange(compare.key, compare.rangeEnd);
  const mvcc = context.txn.mvcc;
  if (range.single) return compareOne(compare, mvcc.latestLive(range.start));
  let any = false;
  let all = true;
  mvcc.scan(range.start, range.end, false, null, (version) => {
    any = true;
    if (!compareOne(compare, version)) {
      all = false;
      return false;
    }
    return true;
  });
  if (!any) return compareOne(compare, undefined);
  return all;
}

export function applyPut(context: EtcdContext, op: PutOp): { type: 'put'; prevKv: KeyValue | null } {
  const key = toByteString(op.key);
  const { txn } = context;
  const previous = txn.get(key);
  if ((op.ignoreValue || op.ignoreLease) && previous === undefined) {
    throw new StoreError(StoreErrorCode.KeyNotFound, 'key not found');
  }
  const lease = op.ignoreLease ? previous!.lease : (op.lease ?? 0);
  if (lease !== 0 && !context.leaseExists(lease)) {
    throw new StoreError(StoreErrorCode.LeaseNotFound, `requested lease not found: ${lease}`);
  }
  const value = op.ignoreValue ? previous!.value : toByteString(op.value);
  // An etcd write keeps Consul's flags and lock state: it must not break a Consul lock's bookkeeping.
  txn.put(key, value, {
    lease,
    flags: previous?.flags ?? 0,
    lockIndex: previous?.lockIndex ?? 0,
    session: previous?.session ?? 0,
  });
  return { type: 'put', prevKv: op.prevKv && previous ? toKeyValue(previous) : null };
}

export function applyDeleteRange(
  context: EtcdContext,
  op: DeleteRangeOp,
): { type: 'deleteRange'; deleted: number; prevKvs: KeyValue[] } {
  const range = decodeRange(op.key, op.rangeEnd);
  const { txn } = context;
  const prevKvs: KeyValue[] = [];
  if (range.single) {
    const previous = txn.delete(range.start);
    if (previous && op.prevKv) prevKvs.push(toKeyValue(previous));
    return { type: 'deleteRange', deleted: previous ? 1 : 0, prevKvs };
  }
  const keys: ByteString[] = [];
  txn.scan(range, false, (version) => {
    keys.push(version.key);
    if (op.prevKv) prevKvs.push(toKeyValue(version));
    return true;
  });
  for (const key of keys) txn.delete(key);
  return { type: 'deleteRange', deleted: keys.length, prevKvs };
}

export function applyRange(context: EtcdContext, op: RangeOp): ResponseOp {
  const range = decodeRange(op.key, op.rangeEnd);
  const revision = op.revision ?? 0;
  const scanner: Scanner =
    revision > 0 ? context.scannerAt(revision) : (r, rev, visit) => context.txn.scan(r, rev, visit);
  const output = evaluateRange(scanner, range, op, context.limits.maxSortedRangeKeys);
  return { type: 'range', ...output };
}

export function applyTxn(
  context: EtcdContext,
  op: TxnOp,
): { type: 'txn'; succeeded: boolean; responses: ResponseOp[] } {
  let succeeded = true;
  for (const compare of op.compare) {
    if (!evaluateCompare(context, compare)) {
      succeeded = false;
      break;
    }
  }
  const ops = succeeded ? op.success : op.failure;
  const responses: ResponseOp[] = [];
  for (const request of ops) responses.push(applyRequest(context, request));
  return { type: 'txn', succeeded, responses };
}

export function applyRequest(context: EtcdContext, op: RequestOp): ResponseOp {
  switch (op.type) {
    case 'put':
      return applyPut(context, op);
    case 'deleteRange':
      return applyDeleteRange(context, op);
    case 'range':
      return applyRange(context, op);
    case 'txn':
      return applyTxn(context, op);
  }
}
