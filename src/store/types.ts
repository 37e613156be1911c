/** Public data shapes the store returns to the API adapters. Byte fields are Uint8Array. */

/**
 * Consul's opaque uint64 KV flags (Go's api.Lock writes 0x2ddccbc058a50c18). Canonical form: a
 * number when it is a safe integer, a bigint otherwise, so `===` compares two flags and msgpack
 * encodes each value one way (snapshots stay byte-identical).
 */
export type ConsulFlags = number | bigint;

export const MAX_CONSUL_FLAGS = (1n << 64n) - 1n;

/** The canonical form of a flags value in 0..2^64-1; undefined when out of range. */
export function consulFlags(value: number | bigint): ConsulFlags | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  if (value < 0n || value > MAX_CONSUL_FLAGS) return undefined;
  return value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
}

/** True for a flags value in canonical form. */
export function isConsulFlags(value: unknown): value is ConsulFlags {
  if (typeof value === 'number') return Number.isSafeInteger(value);
  return typeof value === 'bigint' && value > BigInt(Number.MAX_SAFE_INTEGER) && value <= MAX_CONSUL_FLAGS;
}

/** One key at one revision: etcd's mvccpb.KeyValue plus Consul's DirEntry fields. */
export interface KeyValue {
  key: Uint8Array;
  value: Uint8Array;
  /** Revision that created this incarnation of the key (Consul CreateIndex). */
  createRevision: number;
  /** Revision of the last write (Consul ModifyIndex). */
  modRevision: number;
  /** Writes since creation; a delete resets it (etcd). */
  version: number;
  /** Attached lease id, 0 for none. */
  lease: number;
  /** Consul's opaque 64-bit flags (see ConsulFlags). */
  flags: ConsulFlags;
  /** Consul LockIndex: how many times the lock on this key was acquired. */
  lockIndex: number;
  /** Session (lease id) holding the lock on this key, 0 for none. */
  session: number;
}

export type SortOrder = 'none' | 'ascend' | 'descend';
export type SortTarget = 'key' | 'version' | 'create' | 'mod' | 'value';

export interface RangeResult {
  kvs: KeyValue[];
  /** More keys matched than `limit` returned. */
  more: boolean;
  /** Keys in the range at that revision, before filters and limit (as etcd counts). */
  count: number;
  /** Store revision the read was served at. */
  revision: number;
}

export type LeaseBehavior = 'delete' | 'release';

export interface LeaseInfo {
  id: number;
  /** Granted TTL in ms; 0 means no TTL (a Consul session without TTL). */
  ttlMs: number;
  /** Deadline in leader wall-clock ms (from command stamps); 0 when there is no TTL. */
  deadlineMs: number;
  behavior: LeaseBehavior;
  lockDelayMs: number;
  node: string;
  checks: string[];
  name: string;
  /** Revision at which it was granted (Consul session CreateIndex). */
  createRevision: number;
  /** Keys attached with `lease` (deleted on expiry, as etcd). */
  keys: Uint8Array[];
  /** Keys whose lock this session holds, with the fencing token of each grant. */
  locks: { key: Uint8Array; fencingToken: number }[];
}

export type EventType = 'put' | 'delete';

export interface WatchEvent {
  type: EventType;
  /** For a delete: key and modRevision (the delete revision), other fields zero, as etcd. */
  kv: KeyValue;
  /** Previous version if the watcher asked for it and it is still in history; else null. */
  prevKv: KeyValue | null;
}

export type HealthStatus = 'passing' | 'warning' | 'critical' | 'maintenance';
