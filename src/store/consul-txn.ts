/**
 * Consul's /v1/txn: the KV verbs, which the single-key KV endpoint also uses
 * (PUT ?cas= -> cas, ?acquire= -> lock, ?release= -> unlock, DELETE ?cas= -> delete-cas,
 * ?recurse -> delete-tree), and the Node, Service, Check and Session verbs, all in one ordered,
 * atomic list. Semantics follow Consul's state store (kvs.go, catalog.go, txn.go):
 * - set keeps the key's session and LockIndex;
 * - cas with index 0 creates only; otherwise ModifyIndex must equal the index;
 * - lock: another session's lock or a running lock-delay fails; a new holder increments
 *   LockIndex; the holder re-locking only updates the value;
 * - unlock by a session that does not hold the lock fails; LockIndex is kept;
 * - a write identical to the current entry is skipped, so it bumps no index and wakes no
 *   blocking query (Consul kvsSetTxn "skip ... if the entry is not actually changed");
 * - catalog cas: index 0 creates only, else the record must exist with that ModifyIndex
 *   (ensureNodeCASTxn and friends); catalog delete-cas fails on a missing record, unlike KV's;
 *   catalog delete of a missing record succeeds (deleteNodeTxn returns nil).
 * The store rolls back catalog and session changes of a failed txn (see Store, consulTxn).
 */
import { type ByteString, prefixEnd, toByteString } from './bytes.js';
import type { Catalog, CatalogEffects } from './catalog.js';
import type {
  ConsulCheckOp,
  ConsulKvOp,
  ConsulNodeOp,
  ConsulOpResult,
  ConsulServiceOp,
  ConsulSessionOp,
  ConsulTxnOp,
} from './commands.js';
import { invariant, StoreError, StoreErrorCode } from './errors.js';
import { checkKey, checkValue } from './etcd-txn.js';
import { toKeyValue } from './kv-view.js';
import type { Lease, LeaseTable } from './leases.js';
import type { StoreLimits } from './limits.js';
import type { LockDelays } from './locks.js';
import type { Version } from './mvcc.js';
import type { ConsulFlags, KeyValue } from './types.js';
import type { WriteTxn } from './write-txn.js';

/** What the catalog and session verbs need from the store. */
export interface ConsulCatalogContext {
  catalog: Catalog;
  effects: CatalogEffects;
  /** Called before the first change to a node's records in this txn (the store saves them). */
  touchNode(name: string): void;
  /** End a session as destroying it does: release (or delete) its locks, start lock-delay. */
  destroySession(lease: Lease): void;
}

export interface ConsulContext {
  txn: WriteTxn;
  leases: LeaseTable;
  /** Lock-delays in force, including those this txn started. */
  lockDelays: Pick<LockDelays, 'activeUntil'>;
  limits: StoreLimits;
  nowMs: number;
  catalog: ConsulCatalogContext;
}

/** KV ops carry no `target` (checked at run time: a decoded op is data, not a type). */
export function isKvOp(op: ConsulTxnOp): op is ConsulKvOp {
  return (op as { target?: unknown }).target === undefined;
}

/**
 * Bytes of text a catalog op carries (names, tags, meta), bounded like a KV value. Fields the
 * codec does not know are counted too; anything nested deeper than a record counts as too large.
 */
function textBytes(value: unknown, depth = 0): number {
  if (depth > 4) return Number.POSITIVE_INFINITY;
  if (typeof value === 'string') return Buffer.byteLength(value);
  if (Array.isArray(value)) return value.reduce((sum: number, item) => sum + textBytes(item, depth + 1), 0);
  if (typeof value === 'object' && value !== null) {
    let sum = 0;
    for (const [key, item] of Object.entries(value)) sum += key.length + textBytes(item, depth + 1);
    return sum;
  }
  return 8;
}

function catalogOpName(op: ConsulNodeOp | ConsulServiceOp | ConsulCheckOp): string {
  return op.target === 'node' ? op.node.node : op.node;
}

function validateCatalogOp(op: Exclude<ConsulTxnOp, ConsulKvOp>, limits: StoreLimits): void {
  const target: unknown = op.target;
  if (target !== 'node' && target !== 'service' && target !== 'check' && target !== 'session') {
    throw new StoreError(StoreErrorCode.InvalidArgument, `unknown transaction operation ${String(target)}`);
  }
  if (op.target === 'session') {
    // A negative id names a session no one issued (a UUID from elsewhere): it fails as unknown.
    if (!Number.isSafeInteger(op.session) || op.session === 0) {
      throw new StoreError(StoreErrorCode.InvalidArgument, `invalid session ${op.session}`);
    }
    return;
  }
  // Consul's txn docs: node ops need an ID or name; service and check ops a node name and an ID.
  const byId = op.target === 'node' && op.verb === 'get' && (op.node.id ?? '') !== '';
  if (catalogOpName(op) === '' && !byId) {
    throw new StoreError(StoreErrorCode.InvalidArgument, `${op.target} operation needs a node name`);
  }
  if (op.target === 'service' && op.service.id === '') {
    throw new StoreError(StoreErrorCode.InvalidArgument, 'service operation needs a service ID');
  }
  if (op.target === 'check' && op.check.checkId === '') {
    throw new StoreError(StoreErrorCode.InvalidArgument, 'check operation needs a check ID');
  }
  if (op.index !== undefined && (!Number.isSafeInteger(op.index) || op.index < 0)) {
    throw new StoreError(StoreErrorCode.InvalidArgument, `ModifyIndex must be a non-negative integer`);
  }
  const bytes = textBytes(op);
  if (bytes > limits.maxValueBytes) {
    throw new StoreError(
      StoreErrorCode.ValueTooLarge,
      `${op.target} operation is too large (over ${limits.maxValueBytes} bytes) or too deeply nested`,
    );
  }
}

export function validateConsulOps(ops: ConsulTxnOp[], limits: StoreLimits): void {
  if (ops.length > limits.maxTxnOps) {
    throw new StoreError(
      StoreErrorCode.TooManyOps,
      `too many operations in txn: ${ops.length} > ${limits.maxTxnOps}`,
    );
  }
  ops.forEach((op, opIndex) => {
    try {
      if (!isKvOp(op)) {
        validateCatalogOp(op, limits);
        return;
      }
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
  flags: ConsulFlags,
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

/** Consul's catalog CAS rule: index 0 means "must not exist", else it must equal ModifyIndex. */
function casMatches(existing: { modifyIndex: number } | undefined, index: number): boolean {
  return index === 0 ? existing === undefined : existing?.modifyIndex === index;
}

function applyNodeOp(context: ConsulCatalogContext, op: ConsulNodeOp, opIndex: number): ConsulOpResult {
  const { catalog, effects } = context;
  const name = op.node.node;
  const index = op.index ?? 0;
  switch (op.verb) {
    case 'get': {
      // Consul txnNode getNode: by ID when one is given, else by name.
      const id = op.node.id ?? '';
      const found = id !== '' ? catalog.nodeById(id) : catalog.node(name);
      if (found === undefined) fail(StoreErrorCode.NodeNotFound, `node "${name}" doesn't exist`, opIndex);
      return { kvs: [], node: found };
    }
    case 'cas':
      if (!casMatches(catalog.node(name), index)) {
        fail(StoreErrorCode.CasFailed, `failed to set node "${name}", index is stale`, opIndex);
      }
      return applyNodeOp(context, { ...op, verb: 'set' }, opIndex);
    case 'set': {
      context.touchNode(name);
      catalog.register(effects, op.node, undefined, []);
      const node = catalog.node(name);
      invariant(node !== undefined, 'node set left no node');
      return { kvs: [], node };
    }
    case 'delete-cas': {
      const existing = catalog.node(name);
      if (existing === undefined || existing.modifyIndex !== index) {
        fail(StoreErrorCode.CasFailed, `failed to delete node "${name}", index is stale`, opIndex);
      }
      return applyNodeOp(context, { ...op, verb: 'delete' }, opIndex);
    }
    case 'delete':
      context.touchNode(name);
      // Its services, checks and the sessions tied to it go too (Consul deleteNodeTxn).
      catalog.deregister(effects, name, undefined, undefined);
      invariant(catalog.node(name) === undefined, 'node delete left the node');
      return { kvs: [] };
  }
}

/** What a Service or Check verb does to its record (Consul's txnService and txnCheck share a shape). */
interface RecordVerbs<R extends { modifyIndex: number }> {
  what: 'service' | 'check';
  notFound: StoreErrorCode;
  get(): R | undefined;
  /** Writes the record and returns it as stored. */
  set(): R;
  remove(): void;
}

/**
 * get, cas (index 0 only creates), set, delete-cas (the record must exist at that index, unlike
 * KV's) and delete, for one service or check; the record for get and set, else undefined.
 */
function applyRecordVerb<R extends { modifyIndex: number }>(
  context: ConsulCatalogContext,
  verb: ConsulServiceOp['verb'],
  index: number,
  node: string,
  id: string,
  verbs: RecordVerbs<R>,
  opIndex: number,
): R | undefined {
  const existing = verbs.get();
  switch (verb) {
    case 'get':
      if (existing === undefined)
        fail(verbs.notFound, `${verbs.what} "${id}" on node "${node}" doesn't exist`, opIndex);
      return existing;
    case 'cas':
      if (!casMatches(existing, index))
        fail(
          StoreErrorCode.CasFailed,
          `failed to set ${verbs.what} "${id}" on node "${node}", index is stale`,
          opIndex,
        );
      return applyRecordVerb(context, 'set', index, node, id, verbs, opIndex);
    case 'set':
      context.touchNode(node);
      return verbs.set();
    case 'delete-cas':
      if (existing === undefined || existing.modifyIndex !== index)
        fail(
          StoreErrorCode.CasFailed,
          `failed to delete ${verbs.what} "${id}" on node "${node}", index is stale`,
          opIndex,
        );
      return applyRecordVerb(context, 'delete', index, node, id, verbs, opIndex);
    case 'delete':
      context.touchNode(node);
      verbs.remove();
      return undefined;
  }
}

function applyServiceOp(context: ConsulCatalogContext, op: ConsulServiceOp, opIndex: number): ConsulOpResult {
  const { catalog, effects } = context;
  const { node } = op;
  const id = op.service.id;
  invariant(id !== '', 'service op without an ID');
  const service = applyRecordVerb(
    context,
    op.verb,
    op.index ?? 0,
    node,
    id,
    {
      what: 'service',
      notFound: StoreErrorCode.KeyNotFound,
      get: () => catalog.service(node, id),
      set: () => {
        catalog.setService(effects, node, op.service);
        const stored = catalog.service(node, id);
        invariant(stored !== undefined, 'service set left no service');
        return stored;
      },
      // The service's checks go with it (Consul deleteServiceTxn).
      remove: () => catalog.deregister(effects, node, id, undefined),
    },
    opIndex,
  );
  return service === undefined ? { kvs: [] } : { kvs: [], service };
}

function applyCheckOp(context: ConsulCatalogContext, op: ConsulCheckOp, opIndex: number): ConsulOpResult {
  const { catalog, effects } = context;
  const { node } = op;
  const id = op.check.checkId;
  invariant(id !== '', 'check op without an ID');
  const check = applyRecordVerb(
    context,
    op.verb,
    op.index ?? 0,
    node,
    id,
    {
      what: 'check',
      notFound: StoreErrorCode.CheckNotFound,
      get: () => catalog.check(node, id),
      set: () => {
        // A check turning critical invalidates the sessions tied to it, inside this txn.
        catalog.setCheck(effects, node, op.check);
        const stored = catalog.check(node, id);
        invariant(stored !== undefined, 'check set left no check');
        return stored;
      },
      remove: () => catalog.deregister(effects, node, undefined, id),
    },
    opIndex,
  );
  return check === undefined ? { kvs: [] } : { kvs: [], check };
}

function applySessionOp(context: ConsulContext, op: ConsulSessionOp, opIndex: number): ConsulOpResult {
  const lease = context.leases.get(op.session);
  // Consul txnSession: deleting an unknown session fails the txn.
  if (lease === undefined) {
    fail(
      StoreErrorCode.SessionNotFound,
      `failed to delete session: session "${op.session}" not found`,
      opIndex,
    );
  }
  context.catalog.destroySession(lease);
  invariant(context.leases.get(op.session) === undefined, 'session delete left the session');
  return { kvs: [] };
}

function applyOne(context: ConsulContext, op: ConsulTxnOp, opIndex: number): ConsulOpResult {
  if (isKvOp(op)) return applyKvOp(context, op, opIndex);
  switch (op.target) {
    case 'node':
      return applyNodeOp(context.catalog, op, opIndex);
    case 'service':
      return applyServiceOp(context.catalog, op, opIndex);
    case 'check':
      return applyCheckOp(context.catalog, op, opIndex);
    case 'session':
      return applySessionOp(context, op, opIndex);
    default:
      // The codec admits only the targets above; a replica must not crash on anything else.
      return fail(StoreErrorCode.InvalidArgument, 'unknown transaction operation', opIndex);
  }
}

function emptyEntry(key: Uint8Array): KeyValue {
  return {
    key,
    value: new Uint8Array(0),
    createRevision: 0,
    modRevision: 0,
    version: 0,
    lease: 0,
    flags: 0,
    lockIndex: 0,
    session: 0,
  };
}

function applyKvOp(context: ConsulContext, op: ConsulKvOp, opIndex: number): ConsulOpResult {
  const { txn } = context;
  const key = toByteString(op.key);
  const existing = op.verb === 'get-tree' || op.verb === 'delete-tree' ? undefined : txn.get(key);
  const shown = (version: Version) => ({ kvs: [toKeyValue(version)] });
  const write = (value: Uint8Array, flags: ConsulFlags | undefined, lockIndex: number, session: number) =>
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
    case 'get-or-empty':
      // Consul answers the op's own entry, with no value and zero indexes, for a missing key.
      if (existing === undefined) return { kvs: [emptyEntry(op.key)] };
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

const KV_READ_VERBS: ReadonlySet<string> = new Set([
  'get',
  'get-or-empty',
  'get-tree',
  'check-index',
  'check-session',
  'check-not-exists',
]);

/**
 * Whether every op only reads. Consul serves such a txn as a read (Txn.Read: the request's
 * consistency mode, no Raft entry) and every other through Raft (Txn.Apply).
 */
export function isReadOnlyConsulTxn(ops: readonly ConsulTxnOp[]): boolean {
  return ops.every((op) => (isKvOp(op) ? KV_READ_VERBS.has(op.verb) : op.verb === 'get'));
}

/** Apply the ops in order; the first failing op throws (with its opIndex) and aborts them all. */
export function applyConsulTxn(context: ConsulContext, ops: ConsulTxnOp[]): ConsulOpResult[] {
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
