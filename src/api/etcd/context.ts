import { type GrpcCall, type ServiceError, Status, type UnaryHandler } from '../../grpc/call.js';
import { RetryableError } from '../../server/raft-host.js';
import type { ConclaveServer } from '../../server/server.js';
import { type KeyValue, StoreError, StoreErrorCode } from '../../store/index.js';
import { clusterIdBitsOf, memberIdBitsOf, type Uint64Bits } from './ids.js';

/** What every etcd service handler needs. */
export interface EtcdContext {
  server: ConclaveServer;
  /** etcd's server version string reported by Status and /version. */
  version: string;
}

/** The etcd version whose API this adapter follows. */
export const ETCD_API_VERSION = '3.4.23';

/** Handlers hand 64-bit fields to the serializer as safe-integer numbers or as bits, never parsed. */
export interface ResponseHeader {
  cluster_id: Uint64Bits;
  member_id: Uint64Bits;
  revision: number;
  raft_term: number;
}

/** Every response carries one (etcd's ResponseHeader); revision defaults to the store's current one. */
export function header(ctx: EtcdContext, revision?: number): ResponseHeader {
  const { server } = ctx;
  return {
    cluster_id: clusterIdBitsOf(server.clusterIdentity()),
    member_id: memberIdBitsOf(server.id),
    revision: revision ?? server.store.revision,
    raft_term: server.raftTerm(),
  };
}

/** mvccpb.KeyValue on the wire (64-bit fields as safe-integer numbers: no parsing). */
export function toEtcdKv(kv: KeyValue, keysOnly = false): Record<string, unknown> {
  return {
    key: Buffer.from(kv.key),
    create_revision: kv.createRevision,
    mod_revision: kv.modRevision,
    version: kv.version,
    value: keysOnly ? Buffer.alloc(0) : Buffer.from(kv.value),
    lease: kv.lease,
  };
}

/** A gRPC error with etcd's exact message (clients match on the text: etcd's rpctypes). */
export function etcdError(code: Status, message: string): ServiceError {
  const err = new Error(message) as ServiceError;
  err.code = code;
  err.details = message;
  return err;
}

export const ERR_NO_LEADER = () => etcdError(Status.UNAVAILABLE, 'etcdserver: no leader');

export function toEtcdError(err: unknown): ServiceError {
  if (err instanceof RetryableError) {
    switch (err.code) {
      case 'no-leader':
      case 'not-leader':
        return ERR_NO_LEADER();
      case 'overloaded':
        return etcdError(Status.RESOURCE_EXHAUSTED, 'etcdserver: too many requests');
      case 'overwritten':
        return etcdError(Status.UNAVAILABLE, 'etcdserver: leader changed');
      case 'stopped':
        return etcdError(Status.UNAVAILABLE, 'etcdserver: server stopped');
      default:
        return etcdError(Status.UNAVAILABLE, 'etcdserver: request timed out');
    }
  }
  if (err instanceof StoreError) {
    switch (err.code) {
      case StoreErrorCode.Compacted:
        return etcdError(Status.OUT_OF_RANGE, 'etcdserver: mvcc: required revision has been compacted');
      case StoreErrorCode.FutureRevision:
        return etcdError(Status.OUT_OF_RANGE, 'etcdserver: mvcc: required revision is a future revision');
      case StoreErrorCode.EmptyKey:
        return etcdError(Status.INVALID_ARGUMENT, 'etcdserver: key is not provided');
      case StoreErrorCode.KeyNotFound:
        return etcdError(Status.INVALID_ARGUMENT, 'etcdserver: key not found');
      case StoreErrorCode.TooManyOps:
        return etcdError(Status.INVALID_ARGUMENT, 'etcdserver: too many operations in txn request');
      case StoreErrorCode.DuplicateKey:
        return etcdError(Status.INVALID_ARGUMENT, 'etcdserver: duplicate key given in txn request');
      case StoreErrorCode.KeyTooLarge:
      case StoreErrorCode.ValueTooLarge:
        return etcdError(Status.INVALID_ARGUMENT, 'etcdserver: request is too large');
      case StoreErrorCode.QuotaExceeded:
        return etcdError(Status.RESOURCE_EXHAUSTED, 'etcdserver: mvcc: database space exceeded');
      case StoreErrorCode.LeaseNotFound:
        return etcdError(Status.NOT_FOUND, 'etcdserver: requested lease not found');
      case StoreErrorCode.LeaseExists:
        return etcdError(Status.FAILED_PRECONDITION, 'etcdserver: lease already exists');
      case StoreErrorCode.LeaseTtlInvalid:
        return etcdError(Status.OUT_OF_RANGE, 'etcdserver: too large lease TTL');
      case StoreErrorCode.TooManyWatchers:
        return etcdError(Status.RESOURCE_EXHAUSTED, 'etcdserver: too many requests');
      default:
        return etcdError(Status.INVALID_ARGUMENT, `etcdserver: ${err.message}`);
    }
  }
  if (err && typeof err === 'object' && 'code' in err && typeof (err as ServiceError).code === 'number')
    return err as ServiceError;
  return etcdError(Status.UNKNOWN, err instanceof Error ? err.message : String(err));
}

/** Decimal-string or number int64 from a request, checked to be a safe integer. */
export function int64(value: unknown, field: string): number {
  const n = typeof value === 'string' ? Number(value) : typeof value === 'number' ? value : 0;
  if (!Number.isSafeInteger(n)) throw etcdError(Status.INVALID_ARGUMENT, `etcdserver: ${field} out of range`);
  return n;
}

/** Wrap an async unary handler: errors become etcd's gRPC errors. */
export function unary<Req, Res>(handler: (request: Req, call: GrpcCall) => Promise<Res>): UnaryHandler<Res> {
  return (call, callback) => {
    handler(call.request as Req, call).then(
      (res) => callback(null, res),
      (err: unknown) => callback(toEtcdError(err)),
    );
  };
}
