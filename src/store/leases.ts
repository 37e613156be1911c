/**
 * Leases and Consul sessions: one object. An etcd lease deletes its attached keys on expiry; a
 * Consul session releases (or deletes, behavior 'delete') the locks it holds and starts their
 * lock-delay. Deadlines are leader wall-clock ms from command stamps; an ordered index on
 * (deadline, id) answers "which leases are due at T" in O(log n + due).
 */
import type { ByteString } from './bytes.js';
import { invariant } from './errors.js';
import { type BTreeOf, newTreeWith } from './mvcc.js';
import type { LeaseBehavior } from './types.js';

export class Lease {
  readonly id: number;
  readonly ttlMs: number;
  deadlineMs: number;
  /** etcd lease checkpoint: remaining TTL a new leader should honour instead of the full TTL. */
  checkpointRemainingMs = 0;
  readonly behavior: LeaseBehavior;
  readonly lockDelayMs: number;
  readonly node: string;
  readonly checks: string[];
  readonly name: string;
  readonly createRevision: number;
  /** Keys attached with `lease` = id. */
  readonly keys = new Set<ByteString>();
  /** Keys whose lock this session holds -> fencing token of the grant. */
  readonly locks = new Map<ByteString, number>();

  constructor(fields: {
    id: number;
    ttlMs: number;
    deadlineMs: number;
    behavior: LeaseBehavior;
    lockDelayMs: number;
    node: string;
    checks: string[];
    name: string;
    createRevision: number;
  }) {
    this.id = fields.id;
    this.ttlMs = fields.ttlMs;
    this.deadlineMs = fields.deadlineMs;
    this.behavior = fields.behavior;
    this.lockDelayMs = fields.lockDelayMs;
    this.node = fields.node;
    this.checks = fields.checks;
    this.name = fields.name;
    this.createRevision = fields.createRevision;
  }
}

interface ExpiryKey {
  deadlineMs: number;
  id: number;
}

export class LeaseTable {
  readonly byId = new Map<number, Lease>();
  /** Consul: sessions tied to a node are invalidated when the node goes. */
  readonly byNode = new Map<string, Set<number>>();
  private readonly expiry: BTreeOf<ExpiryKey, undefined> = newTreeWith<ExpiryKey, undefined>(
    (a, b) => a.deadlineMs - b.deadlineMs || a.id - b.id,
  );
  private readonly expiryKeys = new Map<number, ExpiryKey>();
  /** Next id the store hands out when a grant asks for id 0. */
  nextId = 1;

  get size(): number {
    return this.byId.size;
  }

  get(id: number): Lease | undefined {
    return this.byId.get(id);
  }

  /** The next free id at or after nextId (deterministic: the same on every replica). */
  allocateId(): number {
    while (this.byId.has(this.nextId)) this.nextId++;
    return this.nextId++;
  }

  add(lease: Lease): void {
    invariant(!this.byId.has(lease.id), () => `lease ${lease.id} already exists`);
    this.byId.set(lease.id, lease);
    if (lease.node !== '') {
      let set = this.byNode.get(lease.node);
      if (set === undefined) {
        set = new Set();
        this.byNode.set(lease.node, set);
      }
      set.add(lease.id);
    }
    this.index(lease);
  }

  remove(id: number): Lease | undefined {
    const lease = this.byId.get(id);
    if (lease === undefined) return undefined;
    this.byId.delete(id);
    this.unindex(lease);
    if (lease.node !== '') {
      const set = this.byNode.get(lease.node);
      set?.delete(id);
      if (set?.size === 0) this.byNode.delete(lease.node);
    }
    return lease;
  }

  /** Move a lease's deadline (keep-alive, renew-all, checkpoint restore). */
  setDeadline(lease: Lease, deadlineMs: number): void {
    if (lease.ttlMs === 0) return;
    this.unindex(lease);
    lease.deadlineMs = deadlineMs;
    this.index(lease);
  }

  private index(lease: Lease): void {
    if (lease.ttlMs === 0) return;
    const key = { deadlineMs: lease.deadlineMs, id: lease.id };
    this.expiry.set(key, undefined);
    this.expiryKeys.set(lease.id, key);
  }

  private unindex(lease: Lease): void {
    const key = this.expiryKeys.get(lease.id);
    if (key === undefined) return;
    this.expiry.delete(key);
    this.expiryKeys.delete(lease.id);
  }

  /** Ids of leases whose deadline is <= nowMs, earliest first, at most `limit`. */
  due(nowMs: number, limit: number): number[] {
    const ids: number[] = [];
    for (const [key] of this.expiry.entries()) {
      if (key.deadlineMs > nowMs || ids.length >= limit) break;
      ids.push(key.id);
    }
    return ids;
  }

  /** Earliest deadline, for the leader to arm one timer. */
  nextDeadline(): number | undefined {
    return this.expiry.minKey()?.deadlineMs;
  }

  /** Leases in id order (snapshots). */
  sorted(): Lease[] {
    return [...this.byId.values()].sort((a, b) => a.id - b.id);
  }

  checkInvariants(): void {
    let indexed = 0;
    for (const lease of this.byId.values()) {
      if (lease.ttlMs > 0) {
        indexed++;
        const key = this.expiryKeys.get(lease.id);
        invariant(
          key !== undefined && key.deadlineMs === lease.deadlineMs,
          `lease ${lease.id} expiry index stale`,
        );
      }
    }
    invariant(indexed === this.expiry.size, 'expiry index size mismatch');
  }
}
