import { Status } from '../../grpc/call.js';
import type { ServiceImplementation } from '../../grpc/server.js';
import type {
  Compare,
  CompareResult,
  CompareTarget,
  DeleteRangeOp,
  KeyValue,
  PutOp,
  RangeOp,
  RequestOp,
  ResponseOp,
  Result,
  SortOrder,
  SortTarget,
  TxnOp,
} from '../../store/index.js';
import { type EtcdContext, etcdError, header, int64, toEtcdError, toEtcdKv, unary } from './context.js';

/**
 * etcd's KV service over the store: Range, Put, DeleteRange, Txn, Compact. Writes go through
 * Raft (forwarded to the leader); Range is linearizable through ReadIndex unless
 * `serializable`, when this server answers from its own state.
 */

// biome-ignore lint/suspicious/noExplicitAny: decoded protobuf messages.
type Msg = any;

const bytes = (v: unknown): Uint8Array => (v instanceof Uint8Array ? v : new Uint8Array(0));
const optionalBytes = (v: unknown): Uint8Array | undefined => {
  const b = bytes(v);
  return b.byteLength > 0 ? b : undefined;
};

// Enum values in proto order; etcd's .proto spells names in several styles (NONE, Ascend,
// NotEqual), so names match with case and underscores ignored, and numbers by position.
const SORT_ORDER: SortOrder[] = ['none', 'ascend', 'descend'];
const SORT_TARGET: SortTarget[] = ['key', 'version', 'create', 'mod', 'value'];
const COMPARE_RESULT: CompareResult[] = ['equal', 'greater', 'less', 'notEqual'];
const COMPARE_TARGET: CompareTarget[] = ['version', 'create', 'mod', 'value', 'lease'];

const normalize = (name: string) => name.replace(/_/g, '').toUpperCase();

export function enumValue<T extends string>(values: readonly T[], raw: unknown, field: string): T {
  const v =
    typeof raw === 'number' || (typeof raw === 'string' && /^\d+$/.test(raw))
      ? values[Number(raw)]
      : values.find((x) => normalize(x) === normalize(String(raw)));
  if (v === undefined)
    throw etcdError(Status.INVALID_ARGUMENT, `etcdserver: invalid ${field} ${String(raw)}`);
  return v;
}

export function toRangeOp(r: Msg): RangeOp {
  const op: RangeOp = {
    type: 'range',
    key: bytes(r.key),
    limit: int64(r.limit, 'limit'),
    revision: int64(r.revision, 'revision'),
    sortOrder: enumValue(SORT_ORDER, r.sort_order ?? 'NONE', 'sort order'),
    sortTarget: enumValue(SORT_TARGET, r.sort_target ?? 'KEY', 'sort target'),
    keysOnly: !!r.keys_only,
    countOnly: !!r.count_only,
    minModRevision: int64(r.min_mod_revision, 'min_mod_revision'),
    maxModRevision: int64(r.max_mod_revision, 'max_mod_revision'),
    minCreateRevision: int64(r.min_create_revision, 'min_create_revision'),
    maxCreateRevision: int64(r.max_create_revision, 'max_create_revision'),
  };
  const end = optionalBytes(r.range_end);
  if (end) op.rangeEnd = end;
  return op;
}

export function toPutOp(r: Msg): PutOp {
  return {
    type: 'put',
    key: bytes(r.key),
    value: bytes(r.value),
    lease: int64(r.lease, 'lease'),
    prevKv: !!r.prev_kv,
    ignoreValue: !!r.ignore_value,
    ignoreLease: !!r.ignore_lease,
  };
}

export function toDeleteOp(r: Msg): DeleteRangeOp {
  const op: DeleteRangeOp = { type: 'deleteRange', key: bytes(r.key), prevKv: !!r.prev_kv };
  const end = optionalBytes(r.range_end);
  if (end) op.rangeEnd = end;
  return op;
}

function toCompare(c: Msg): Compare {
  const target = enumValue(COMPARE_TARGET, c.target, 'compare target');
  const compare: Compare = {
    key: bytes(c.key),
    target,
    result: enumValue(COMPARE_RESULT, c.result, 'compare result'),
    value:
      target === 'value'
        ? bytes(c.value)
        : target === 'version'
          ? int64(c.version, 'version')
          : target === 'create'
            ? int64(c.create_revision, 'create_revision')
            : target === 'mod'
              ? int64(c.mod_revision, 'mod_revision')
              : int64(c.lease, 'lease'),
  };
  const end = optionalBytes(c.range_end);
  if (end) compare.rangeEnd = end;
  return compare;
}

function toRequestOp(op: Msg): RequestOp {
  if (op.request_range) return toRangeOp(op.request_range);
  if (op.request_put) return toPutOp(op.request_put);
  if (op.request_delete_range) return toDeleteOp(op.request_delete_range);
  if (op.request_txn) return toTxnOp(op.request_txn);
  throw etcdError(Status.INVALID_ARGUMENT, 'etcdserver: empty request op in txn');
}

export function toTxnOp(r: Msg): TxnOp {
  return {
    type: 'txn',
    compare: (r.compare ?? []).map(toCompare),
    success: (r.success ?? []).map(toRequestOp),
    failure: (r.failure ?? []).map(toRequestOp),
  };
}

function isReadOnly(op: RequestOp): boolean {
  if (op.type === 'range') return true;
  if (op.type === 'txn') return [...op.success, ...op.failure].every(isReadOnly);
  return false;
}

export function rangeResponse(
  ctx: EtcdContext,
  out: { kvs: KeyValue[]; more: boolean; count: number },
  revision: number,
  keysOnly: boolean,
): Msg {
  return {
    header: header(ctx, revision),
    kvs: out.kvs.map((kv) => toEtcdKv(kv, keysOnly)),
    more: out.more,
    count: String(out.count),
  };
}

/** A txn's response ops in etcd's oneof shape. */
function responseOps(ctx: EtcdContext, ops: ResponseOp[], revision: number): Msg[] {
  return ops.map((op) => {
    switch (op.type) {
      case 'range':
        return { response_range: rangeResponse(ctx, op, revision, false) };
      case 'put':
        return {
          response_put: { header: header(ctx, revision), prev_kv: op.prevKv ? toEtcdKv(op.prevKv) : null },
        };
      case 'deleteRange':
        return {
          response_delete_range: {
            header: header(ctx, revision),
            deleted: String(op.deleted),
            prev_kvs: op.prevKvs.map((kv) => toEtcdKv(kv)),
          },
        };
      default:
        return {
          response_txn: {
            header: header(ctx, revision),
            succeeded: op.succeeded,
            responses: responseOps(ctx, op.responses, revision),
          },
        };
    }
  });
}

/** A store result, or its error thrown as etcd's gRPC error. */
export function expect<T extends Result['type']>(result: Result, type: T): Extract<Result, { type: T }> {
  if (result.type === 'error') throw toEtcdError(result.error);
  if (result.type !== type) throw etcdError(Status.INTERNAL, `unexpected ${result.type} result`);
  return result as Extract<Result, { type: T }>;
}

export async function range(ctx: EtcdContext, r: Msg): Promise<Msg> {
  const op = toRangeOp(r);
  await ctx.server.readBarrier(r.serializable ? 'stale' : 'default');
  try {
    const out = ctx.server.store.range(op);
    return rangeResponse(ctx, out, ctx.server.store.revision, !!op.keysOnly);
  } catch (err) {
    throw toEtcdError(err);
  }
}

export async function put(ctx: EtcdContext, r: Msg): Promise<Msg> {
  const result = expect(await ctx.server.write(toPutOp(r)), 'put');
  return { header: header(ctx, result.revision), prev_kv: result.prevKv ? toEtcdKv(result.prevKv) : null };
}

export async function deleteRange(ctx: EtcdContext, r: Msg): Promise<Msg> {
  const result = expect(await ctx.server.write(toDeleteOp(r)), 'deleteRange');
  return {
    header: header(ctx, result.revision),
    deleted: String(result.deleted),
    prev_kvs: result.prevKvs.map((kv) => toEtcdKv(kv)),
  };
}

export async function txn(ctx: EtcdContext, r: Msg): Promise<Msg> {
  const op = toTxnOp(r);
  // A read-only txn needs no log entry (etcd serves it after a read index, as a Range).
  const result = isReadOnly(op) ? await readOnlyTxn(ctx, op) : expect(await ctx.server.write(op), 'txn');
  return {
    header: header(ctx, result.revision),
    succeeded: result.succeeded,
    responses: responseOps(ctx, result.responses, result.revision),
  };
}

async function readOnlyTxn(ctx: EtcdContext, op: TxnOp): Promise<Extract<Result, { type: 'txn' }>> {
  await ctx.server.readBarrier('default');
  try {
    return { ...ctx.server.store.evaluateReadOnlyTxn(op), type: 'txn' };
  } catch (err) {
    throw toEtcdError(err);
  }
}

export async function compact(ctx: EtcdContext, r: Msg): Promise<Msg> {
  const revision = int64(r.revision, 'revision');
  const result = expect(await ctx.server.write({ type: 'compact', revision }), 'compact');
  return { header: header(ctx, result.revision) };
}

export function kvService(ctx: EtcdContext): ServiceImplementation {
  return {
    Range: unary((r: Msg) => range(ctx, r)),
    Put: unary((r: Msg) => put(ctx, r)),
    DeleteRange: unary((r: Msg) => deleteRange(ctx, r)),
    Txn: unary((r: Msg) => txn(ctx, r)),
    Compact: unary((r: Msg) => compact(ctx, r)),
  };
}
