/**
 * The member list as one member sees it: name → record, plus an array for uniform random
 * picks and a running count of active (alive or suspect) members for the log(n) formulas.
 */
import { invariant } from './assert.js';
import type { Address, MemberMeta, MemberState, MemberStatus } from './types.js';

export interface MemberRecord {
  readonly name: string;
  address: Address;
  incarnation: number;
  status: MemberStatus;
  meta: MemberMeta;
  /** Clock time of the last status change. */
  changedMs: number;
}

export function isActive(status: MemberStatus): boolean {
  return status === 'alive' || status === 'suspect';
}

export function snapshotOf(record: MemberRecord): MemberState {
  return {
    name: record.name,
    address: record.address,
    incarnation: record.incarnation,
    status: record.status,
    meta: record.meta,
  };
}

export class MemberTable {
  private readonly byName = new Map<string, MemberRecord>();
  private readonly names: string[] = [];
  private readonly position = new Map<string, number>();
  private active = 0;

  get size(): number {
    return this.byName.size;
  }

  /** Alive and suspect members, this one included. */
  get activeCount(): number {
    return this.active;
  }

  get(name: string): MemberRecord | undefined {
    return this.byName.get(name);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  values(): IterableIterator<MemberRecord> {
    return this.byName.values();
  }

  add(record: MemberRecord): void {
    invariant(!this.byName.has(record.name), () => `member ${record.name} added twice`);
    this.byName.set(record.name, record);
    this.position.set(record.name, this.names.length);
    this.names.push(record.name);
    if (isActive(record.status)) this.active++;
  }

  remove(name: string): void {
    const record = this.byName.get(name);
    const index = this.position.get(name);
    invariant(record !== undefined && index !== undefined, () => `removing unknown member ${name}`);
    if (isActive(record.status)) this.active--;
    this.byName.delete(name);
    this.position.delete(name);
    const last = this.names.pop()!;
    if (last !== name) {
      this.names[index] = last;
      this.position.set(last, index);
    }
  }

  setStatus(record: MemberRecord, status: MemberStatus, nowMs: number): void {
    invariant(this.byName.get(record.name) === record, () => `member ${record.name} not in the table`);
    if (record.status === status) return;
    this.active += (isActive(status) ? 1 : 0) - (isActive(record.status) ? 1 : 0);
    record.status = status;
    record.changedMs = nowMs;
  }

  /**
   * Up to `count` distinct members `accept` admits, chosen uniformly (memberlist's
   * kRandomNodes): rejection sampling bounded at 3 × size draws.
   */
  randomMembers(
    count: number,
    random: () => number,
    accept: (record: MemberRecord) => boolean,
  ): MemberRecord[] {
    const chosen: MemberRecord[] = [];
    const n = this.names.length;
    for (let draws = 0; draws < 3 * n && chosen.length < count; draws++) {
      const record = this.byName.get(this.names[Math.floor(random() * n)]!)!;
      if (!accept(record) || chosen.includes(record)) continue;
      chosen.push(record);
    }
    return chosen;
  }
}
