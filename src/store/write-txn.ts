/**
 * A write transaction: an overlay of pending writes over the committed MVCC state. Every
 * mutation of one command goes through one WriteTxn and commits at one revision (etcd: one
 * revision per write txn). Reads through the txn see its own earlier writes, as etcd's and
 * Consul's txns do. Discarding the txn discards its writes, which is how a failing op rolls
 * back the whole transaction.
 */
import type { ByteString } from './bytes.js';
import { invariant, StoreError, StoreErrorCode } from './errors.js';
import type { KeyRange } from './kv-view.js';
import {
  type History,
  latestOf,
  type Mvcc,
  tombstone,
  Version,
  type VersionVisitor,
  versionCost,
} from './mvcc.js';
import type { ConsulFlags } from './types.js';

export interface VersionFields {
  lease: number;
  flags: ConsulFlags;
  lockIndex: number;
  session: number;
}

/** A pending write and the committed history it replaces (looked up once, reused at commit). */
export interface PendingWrite {
  version: Version;
  base: History | undefined;
}

export class WriteTxn {
  readonly mvcc: Mvcc;
  /** The revision this txn commits at (current + 1). */
  readonly revision: number;
  /** Quota in bytes (0: none) and whether the quota alarm is raised (puts fail). */
  private readonly quotaBytes: number;
  private readonly alarmed: boolean;
  /** The first written key lives in `single`; a Map is made only when a second key is written. */
  private single: PendingWrite | null = null;
  private writes: Map<ByteString, PendingWrite> | null = null;
  private addedBytes = 0;

  constructor(mvcc: Mvcc, revision: number, quotaBytes: number, alarmed: boolean) {
    this.mvcc = mvcc;
    this.revision = revision;
    this.quotaBytes = quotaBytes;
    this.alarmed = alarmed;
  }

  /** The live version of `key` as this txn sees it. */
  private pendingOf(key: ByteString): PendingWrite | undefined {
    if (this.writes !== null) return this.writes.get(key);
    return this.single !== null && this.single.version.key === key ? this.single : undefined;
  }

  get(key: ByteString): Version | undefined {
    const pending = this.pendingOf(key);
    if (pending !== undefined) return pending.version.live ? pending.version : undefined;
    return this.mvcc.latestLive(key);
  }

  /** The committed history under a pending write, or a fresh lookup. */
  private baseOf(key: ByteString): History | undefined {
    const pending = this.pendingOf(key);
    return pending !== undefined ? pending.base : this.mvcc.histories.get(key);
  }

  /** `bypassQuota`: internal writes that free resources (releasing a lock) work under the alarm. */
  put(key: ByteString, value: ByteString, fields: VersionFields, bypassQuota = false): Version {
    const pending = this.pendingOf(key);
    const base = pending !== undefined ? pending.base : this.mvcc.histories.get(key);
    const candidate =
      pending !== undefined ? pending.version : base !== undefined ? latestOf(base) : undefined;
    const previous = candidate?.live ? candidate : undefined;
    // Reuse the key string the history already holds: the command's own copy then dies young
    // instead of living (and being copied by the young-generation GC) with every version.
    const storedKey = base !== undefined ? latestOf(base).key : key;
    const version = new Version(
      storedKey,
      value,
      previous ? previous.createRevision : this.revision,
      this.revision,
      previous ? previous.version + 1 : 1,
      fields.lease,
      fields.flags,
      fields.lockIndex,
      fields.session,
    );
    const cost = versionCost(version);
    if (
      !bypassQuota &&
      this.quotaBytes > 0 &&
      (this.alarmed || this.mvcc.storedBytes + this.addedBytes + cost > this.quotaBytes)
    ) {
      // etcd: once the NOSPACE alarm is raised, every put fails until space is reclaimed.
      throw new StoreError(StoreErrorCode.QuotaExceeded, 'database space exceeded: delete keys and compact');
    }
    this.addedBytes += cost;
    this.record(version, base);
    return version;
  }

  /** Delete a key; returns its previous live version (undefined if it was absent). */
  delete(key: ByteString): Version | undefined {
    const previous = this.get(key);
    if (previous === undefined) return undefined;
    this.record(tombstone(key, this.revision), this.baseOf(key));
    return previous;
  }

  private record(version: Version, base: History | undefined): void {
    const write = { version, base };
    if (this.writes === null) {
      if (this.single === null || this.single.version.key === version.key) {
        this.single = write;
        return;
      }
      this.writes = new Map([[this.single.version.key, this.single]]);
    }
    this.writes.set(version.key, write);
  }

  /** Live keys in range as this txn sees them: committed state merged with pending writes. */
  scan(range: KeyRange, reverse: boolean, visit: VersionVisitor): void {
    const writes =
      this.writes ?? (this.single === null ? null : new Map([[this.single.version.key, this.single]]));
    if (writes === null || writes.size === 0) {
      this.mvcc.scan(range.start, range.end, reverse, null, visit);
      return;
    }
    const pendingKeys: ByteString[] = [];
    for (const key of writes.keys()) {
      if (key >= range.start && (range.end === null || key < range.end)) pendingKeys.push(key);
    }
    pendingKeys.sort();
    if (reverse) pendingKeys.reverse();
    let next = 0;
    let stopped = false;
    const before = (a: ByteString, b: ByteString) => (reverse ? a > b : a < b);
    const emitPendingBefore = (key: ByteString | null): boolean => {
      while (next < pendingKeys.length && (key === null || before(pendingKeys[next]!, key))) {
        const pending = writes.get(pendingKeys[next]!)!.version;
        next++;
        if (pending.live && !visit(pending)) return false;
      }
      return true;
    };
    this.mvcc.scan(range.start, range.end, reverse, null, (committed) => {
      if (!emitPendingBefore(committed.key)) {
        stopped = true;
        return false;
      }
      if (next < pendingKeys.length && pendingKeys[next] === committed.key) {
        const pending = writes.get(committed.key)!.version;
        next++;
        if (!pending.live) return true;
        if (!visit(pending)) {
          stopped = true;
          return false;
        }
        return true;
      }
      if (!visit(committed)) {
        stopped = true;
        return false;
      }
      return true;
    });
    if (!stopped) emitPendingBefore(null);
  }

  /**
   * The writes that change committed state, in key order (the order their events are
   * published in). A delete of a key the committed state does not hold changes nothing.
   */
  effectiveWrites(): PendingWrite[] {
    if (this.writes === null && this.single === null) return [];
    const result: PendingWrite[] = [];
    for (const write of this.writes?.values() ?? [this.single!]) {
      const { version, base } = write;
      if (!version.live && (base === undefined || !latestOf(base).live)) continue;
      invariant(version.modRevision === this.revision, 'pending write at a foreign revision');
      result.push(write);
    }
    if (result.length > 1) {
      result.sort((a, b) => (a.version.key < b.version.key ? -1 : a.version.key > b.version.key ? 1 : 0));
    }
    return result;
  }
}
