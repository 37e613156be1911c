/**
 * Commands: the plain objects API layers build and the leader proposes through Raft. Every
 * command carries `timeMs`, the leader's wall clock when it stamped the command; the store never
 * reads a clock (TTL deadlines and lock-delays are computed from these stamps).
 */

import type {
  CatalogCheck,
  CatalogNode,
  CatalogService,
  CheckInput,
  NodeInput,
  ServiceInput,
} from './catalog.js';
import type { StoreError } from './errors.js';
import type { ConsulFlags, HealthStatus, KeyValue, LeaseBehavior, SortOrder, SortTarget } from './types.js';

// ---- etcd KV requests (also the ops inside a txn) ----

export interface RangeOp {
  type: 'range';
  key: Uint8Array;
  /** Absent/empty: just `key`. [0x00]: every key >= `key` (etcd convention). */
  rangeEnd?: Uint8Array;
  limit?: number;
  /** 0 or absent: current revision. */
  revision?: number;
  sortOrder?: SortOrder;
  sortTarget?: SortTarget;
  keysOnly?: boolean;
  countOnly?: boolean;
  minModRevision?: number;
  maxModRevision?: number;
  minCreateRevision?: number;
  maxCreateRevision?: number;
}

export interface PutOp {
  type: 'put';
  key: Uint8Array;
  value: Uint8Array;
  lease?: number;
  prevKv?: boolean;
  /** etcd ignore_value: keep the current value (key must exist). */
  ignoreValue?: boolean;
  /** etcd ignore_lease: keep the current lease (key must exist). */
  ignoreLease?: boolean;
}

export interface DeleteRangeOp {
  type: 'deleteRange';
  key: Uint8Array;
  rangeEnd?: Uint8Array;
  prevKv?: boolean;
}

export type CompareTarget = 'value' | 'version' | 'create' | 'mod' | 'lease';
export type CompareResult = 'equal' | 'notEqual' | 'greater' | 'less';

export interface Compare {
  key: Uint8Array;
  rangeEnd?: Uint8Array;
  target: CompareTarget;
  result: CompareResult;
  /** Uint8Array for target 'value', a number otherwise. */
  value: Uint8Array | number;
}

export interface TxnOp {
  type: 'txn';
  compare: Compare[];
  success: RequestOp[];
  failure: RequestOp[];
}

export type RequestOp = RangeOp | PutOp | DeleteRangeOp | TxnOp;

// ---- Consul /v1/txn KV verbs (and the single-key KV endpoint, built as a one-op txn) ----

export type ConsulKvOp =
  | { verb: 'set'; key: Uint8Array; value: Uint8Array; flags?: ConsulFlags }
  | { verb: 'cas'; key: Uint8Array; value: Uint8Array; flags?: ConsulFlags; index: number }
  | { verb: 'lock'; key: Uint8Array; value: Uint8Array; flags?: ConsulFlags; session: number }
  | { verb: 'unlock'; key: Uint8Array; value: Uint8Array; flags?: ConsulFlags; session: number }
  | { verb: 'get'; key: Uint8Array }
  /** Consul 1.14+: like get, but a missing key answers an empty entry instead of failing. */
  | { verb: 'get-or-empty'; key: Uint8Array }
  | { verb: 'get-tree'; key: Uint8Array }
  | { verb: 'check-index'; key: Uint8Array; index: number }
  | { verb: 'check-session'; key: Uint8Array; session: number }
  | { verb: 'check-not-exists'; key: Uint8Array }
  | { verb: 'delete'; key: Uint8Array }
  | { verb: 'delete-tree'; key: Uint8Array }
  | { verb: 'delete-cas'; key: Uint8Array; index: number };

export type ConsulVerb = ConsulKvOp['verb'];

/**
 * Consul /v1/txn catalog and session verbs (api-docs/txn "Tables of Operations"). They carry a
 * `target`; KV ops have none, so logs written before these existed decode unchanged.
 * `index` is the ModifyIndex a cas / delete-cas compares against (cas with 0: create only).
 */
export type ConsulCatalogVerb = 'set' | 'cas' | 'get' | 'delete' | 'delete-cas';

export interface ConsulNodeOp {
  target: 'node';
  verb: ConsulCatalogVerb;
  node: NodeRegistration;
  index?: number;
}

export interface ConsulServiceOp {
  target: 'service';
  verb: ConsulCatalogVerb;
  /** The node name the service instance lives on. */
  node: string;
  service: ServiceRegistration;
  index?: number;
}

export interface ConsulCheckOp {
  target: 'check';
  verb: ConsulCatalogVerb;
  node: string;
  check: CheckRegistration;
  index?: number;
}

/** Consul's TxnSessionOp: ends the session as destroying it does (its locks are released). */
export interface ConsulSessionOp {
  target: 'session';
  verb: 'delete';
  session: number;
}

export type ConsulTxnOp = ConsulKvOp | ConsulNodeOp | ConsulServiceOp | ConsulCheckOp | ConsulSessionOp;

// ---- catalog ----

/** Absent optional fields take Consul's defaults (a new check starts critical). */
export type NodeRegistration = NodeInput;
export type ServiceRegistration = ServiceInput;
export type CheckRegistration = CheckInput;

// ---- the command union ----

interface Stamped {
  /** Leader wall-clock ms when the command was proposed. */
  timeMs: number;
}

export type Command = Stamped &
  (
    | PutOp
    | DeleteRangeOp
    | TxnOp
    | { type: 'compact'; revision: number }
    | {
        type: 'leaseGrant';
        /** 0: the store picks the next free id (deterministically). */
        id: number;
        /** 0: no TTL (a Consul session tied only to node/checks). */
        ttlMs: number;
        /** 'delete' for etcd leases; Consul sessions default to 'release'. */
        behavior?: LeaseBehavior;
        lockDelayMs?: number;
        node?: string;
        checks?: string[];
        name?: string;
      }
    | { type: 'leaseRevoke'; id: number }
    /** Batched keep-alives: every listed lease gets a full TTL from `timeMs`. */
    | { type: 'leaseKeepAlive'; ids: number[] }
    /** etcd lease checkpoint: remember remaining TTL so a new leader does not reset it. */
    | { type: 'leaseCheckpoint'; checkpoints: { id: number; remainingMs: number }[] }
    /** Proposed by the leader for leases it found due; the store re-checks each deadline. */
    | { type: 'leaseExpire'; ids: number[] }
    /** A new leader: every lease gets a fresh TTL (or its checkpointed remainder) from now. */
    | { type: 'leaseRenewAll' }
    | { type: 'consulTxn'; ops: ConsulTxnOp[] }
    | {
        type: 'catalogRegister';
        node: NodeRegistration;
        service?: ServiceRegistration;
        checks?: CheckRegistration[];
      }
    | { type: 'catalogDeregister'; node: string; serviceId?: string; checkId?: string }
    | { type: 'checkUpdate'; node: string; checkId: string; status: HealthStatus; output?: string }
  );

export type CommandType = Command['type'];

// ---- results ----

export type ResponseOp =
  | { type: 'range'; kvs: KeyValue[]; more: boolean; count: number }
  | { type: 'put'; prevKv: KeyValue | null }
  | { type: 'deleteRange'; deleted: number; prevKvs: KeyValue[] }
  | { type: 'txn'; succeeded: boolean; responses: ResponseOp[] };

export interface ConsulOpResult {
  /** Entries the op returned: one for get/set verbs, any number for get-tree, none for deletes. */
  kvs: KeyValue[];
  /** For a lock verb that acquired: the fencing token of this grant (its revision). */
  fencingToken?: number;
  /** Catalog verbs other than deletes return the record as it stands after the op. */
  node?: CatalogNode;
  service?: CatalogService;
  check?: CatalogCheck;
}

/** Every result carries the store revision after the command (etcd's header revision). */
export type Result = { revision: number } & (
  | { type: 'error'; error: StoreError }
  | { type: 'put'; prevKv: KeyValue | null }
  | { type: 'deleteRange'; deleted: number; prevKvs: KeyValue[] }
  | { type: 'txn'; succeeded: boolean; responses: ResponseOp[] }
  | { type: 'compact'; compactRevision: number }
  | { type: 'leaseGrant'; id: number; ttlMs: number }
  | { type: 'leaseRevoke'; id: number }
  | { type: 'leaseKeepAlive'; leases: { id: number; ttlMs: number; found: boolean }[] }
  | { type: 'leaseCheckpoint'; applied: number }
  | { type: 'leaseExpire'; expired: number[] }
  | { type: 'leaseRenewAll'; renewed: number }
  | { type: 'consulTxn'; results: ConsulOpResult[] }
  | { type: 'catalogRegister'; changed: boolean }
  | { type: 'catalogDeregister'; changed: boolean }
  | { type: 'checkUpdate'; changed: boolean }
);
