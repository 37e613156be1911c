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
import { type Mvcc, tombstone, Version, type VersionVisitor, versionCost } from './mvcc.js';

export interface VersionFields {
  lease: number;
  flags: number;
  lockIndex: number;
  session: number;
}

export class WriteTxn {
  readonly mvcc: Mvcc;
  /** The revision this txn commits at (current + 1). */
  readonly revision: number;
  /** Quota in bytes (0: none) and whether the quota alarm is raised (puts fail). */
  private readonly quotaBytes: number;
  private readonly alarmed: boolean;
  private writes: Map<ByteString, Version> | null = null;
  private addedBytes = 0;

  constructor(mvcc: Mvcc, revision: number, quotaBytes: number, alarmed: boolean) {
    this.mvcc = mvcc;
    this.revision = revision;
    this.quotaBytes = quotaBytes;
    this.alarmed = alarmed;
  }

  /** The live version of `key` as this txn sees it. */
  get(key: ByteString): Version | undefined {
    const pending = this.writes?.get(key);
    if (pending !== undefined) return pending.live ? pending : undefined;
    return this.mvcc.latestLive(key);
  }

  /** `bypassQuota`: internal writes that free resources (releasing a lock) work under the alarm. */
  put(key: ByteString, value: ByteString, fields: VersionFields, bypassQuota = false): Version {
    const previous = this.get(key);
    const version = new Version(
      key,
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
    this.record(version);
    return version;
  }

  /** Delete a key; returns its previous live version (undefined if it was absent). */
  delete(key: ByteString): Version | undefined {
    const previous = this.get(key);
    if (previous === undefined) return undefined;
    this.record(tombstone(key, this.revision));
    return previous;
  }

  private record(version: Version): void {
    if (this.writes === null) this.writes = new Map();
    this.writes.set(version.key, version);
  }

  /** Live keys in range as this txn sees them: committed state merged with pending writes. */
  scan(range: KeyRange, reverse: boolean, visit: VersionVisitor): void {
    const writes = this.writes;
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
        const pending = writes.get(pendingKeys[next]!)!;
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
        const pending = writes.get(committed.key)!;
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
  effectiveWrites(): Version[] {
    if (this.writes === null) return [];
    const result: Version[] = [];
    for (const version of this.writes.values()) {
      if (!version.live && this.mvcc.latestLive(version.key) === undefined) continue;
      invariant(version.modRevision === this.revision, 'pending write at a foreign revision');
      result.push(version);
    }
    if (result.length > 1) result.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    return result;
  }
}
