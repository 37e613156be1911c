/**
 * The replicated state machine. `apply(index, command)` is the only way state changes; it is
 * deterministic (no clock, no randomness, no I/O): replicas that apply the same log hold the
 * same state and produce byte-identical snapshots. Reads are plain method calls on the local
 * replica; the server decides when a read is linearizable (ReadIndex) or stale.
 *
 * One store revision per state-changing command (etcd: one per write txn). Consul's
 * CreateIndex/ModifyIndex/X-Consul-Index are these revisions. Lease grants, session changes and
 * catalog writes take a revision too, so every blocking-query index is fresh (etcd clients
 * see gaps in revisions, which the etcd API allows: revisions are monotonic, not dense).
 */
import { BlockingWaiters, type WaitResult, type WaitTarget } from './blocking.js';
import { type ByteString, fromByteString, prefixEnd, toByteString } from './bytes.js';
import { Catalog, type CatalogEffects, Topic } from './catalog.js';
import type { Command, ConsulOpResult, ConsulTxnOp, RangeOp, ResponseOp, Result, TxnOp } from './commands.js';
import { type CompactionPolicy, compactionTarget, RevisionClock } from './compaction.js';
import { applyConsulTxn, type ConsulContext, isReadOnlyConsulTxn, validateConsulOps } from './consul-txn.js';
import { invariant, StoreError, StoreErrorCode } from './errors.js';
import {
  applyDeleteRange,
  applyPut,
  applyTxn,
  checkKey,
  checkValue,
  type EtcdContext,
  validateTxn,
} from './etcd-txn.js';
import { decodeRange, toKeyValue } from './kv-view.js';
import { Lease, LeaseTable } from './leases.js';
import { resolveLimits, type StoreLimits } from './limits.js';
import { LockDelays } from './locks.js';
import { latestOf, Mvcc, type Version } from './mvcc.js';
import { evaluateRange, type Scanner } from './range.js';
import type { KeyValue, LeaseInfo, RangeResult } from './types.js';
import { type Watcher, WatchHub, type WatchOptions } from './watch.js';
import { WriteTxn } from './write-txn.js';

/** The quota alarm clears when stored bytes fall to this fraction of the quota. */
export const QUOTA_CLEAR_RATIO = 0.9;

export interface StoreOptions {
  limits?: Partial<StoreLimits>;
  /**
   * Where errors thrown by watch/blocking callbacks go. They run after state is consistent and
   * must not fail the apply; by default they are rethrown on a microtask (uncaught).
   */
  onCallbackError?: (error: unknown) => void;
}

export interface StoreStatus {
  revision: number;
  compactRevision: number;
  appliedIndex: number;
  /** Latest command time seen (leader wall-clock ms). */
  timeMs: number;
  liveKeys: number;
  /** Bytes of retained KV history the quota counts ("live bytes"; no file bytes here). */
  storedBytes: number;
  quotaBytes: number;
  /** etcd NOSPACE: puts fail until deletes and compaction bring storedBytes under quota. */
  quotaAlarm: boolean;
  leases: number;
  watchers: number;
  blockingWaiters: number;
}

/** The internal state a snapshot captures (shared with snapshot.ts). */
export interface StoreInternals {
  mvcc: Mvcc;
  leases: LeaseTable;
  lockDelays: LockDelays;
  catalog: Catalog;
  clock: RevisionClock;
  topicIndexes: Map<string, number>;
  counters: {
    revision: number;
    compactRevision: number;
    appliedIndex: number;
    timeMs: number;
    quotaAlarm: boolean;
  };
}

/** Undo steps and deferred effects of the Consul txn being applied. */
interface TxnJournal {
  /** Run in reverse order if the txn fails. */
  readonly undo: (() => void)[];
  /** Nodes whose catalog records were saved (once per txn). */
  readonly savedNodes: Set<string>;
  /** Lock-delays the txn started, applied only when it commits. */
  readonly lockDelays: Map<ByteString, number>;
}

function newTxnJournal(): TxnJournal {
  return { undo: [], savedNodes: new Set(), lockDelays: new Map() };
}

export class Store {
  readonly limits: StoreLimits;
  private readonly mvcc = new Mvcc();
  private readonly leaseTable = new LeaseTable();
  private readonly lockDelays = new LockDelays();
  private readonly catalogTables = new Catalog();
  private readonly clock = new RevisionClock();
  private readonly topicIndexes = new Map<string, number>();
  private readonly hub: WatchHub;
  private readonly waiters: BlockingWaiters;
  private readonly onCallbackError: (error: unknown) => void;
  /** etcd starts at revision 1 with an empty keyspace; the first write is revision 2. */
  private revisionValue = 1;
  private compactRevisionValue = 0;
  private appliedIndexValue = 0;
  private timeMsValue = 0;
  private quotaAlarm = false;
  /** Topics touched by the command being applied. */
  private readonly pendingTopics = new Set<string>();
  /** Set while a Consul txn applies: its catalog and session changes can be undone. */
  private txnJournal: TxnJournal | null = null;
  private readonly leaseExists = (id: number) => this.leaseTable.get(id) !== undefined;
  private readonly scannerAt = (revision: number): Scanner => this.scanner(revision);

  constructor(options: StoreOptions = {}) {
    this.limits = resolveLimits(options.limits);
    this.hub = new WatchHub(
      {
        mvcc: this.mvcc,
        revision: () => this.revisionValue,
        compactRevision: () => this.compactRevisionValue,
      },
      this.limits,
    );
    this.waiters = new BlockingWaiters(this.limits.maxBlockingWaiters);
    this.onCallbackError =
      options.onCallbackError ??
      ((error) =>
        queueMicrotask(() => {
          throw error;
        }));
  }

  // ===================================================================== apply

  /**
   * Apply the command of log entry `index` (strictly increasing; entries without a command may
   * be skipped). Client errors come back as `{type: 'error'}` results and change nothing;
   * invariant violations throw StoreInvariantError.
   */
  apply(index: number, command: Command): Result {
    invariant(
      Number.isSafeInteger(index) && index > this.appliedIndexValue,
      () => `apply index ${index} must exceed applied index ${this.appliedIndexValue}`,
    );
    this.appliedIndexValue = index;
    // Leader clocks may step back across elections; store time never does.
    if (Number.isFinite(command.timeMs) && command.timeMs > this.timeMsValue)
      this.timeMsValue = command.timeMs;
    const revisionBefore = this.revisionValue;
    let result: Result;
    try {
      result = this.dispatch(command);
    } catch (error) {
      if (!(error instanceof StoreError)) throw error;
      this.pendingTopics.clear();
      if (error.code === StoreErrorCode.QuotaExceeded) this.quotaAlarm = true;
      result = { type: 'error', revision: this.revisionValue, error };
    }
    invariant(this.revisionValue >= revisionBefore, 'revision went backwards');
    invariant(this.pendingTopics.size === 0, 'topics left pending after apply');
    // The alarm clears once usage is back under the low-water mark (90% of quota), so one
    // freed key does not flap it; a delete plus a compaction is all recovery takes.
    if (this.quotaAlarm && this.mvcc.storedBytes <= this.limits.quotaBytes * QUOTA_CLEAR_RATIO) {
      this.quotaAlarm = false;
    }
    this.runCallbacks();
    return result;
  }

  private runCallbacks(): void {
    try {
      this.hub.flush();
    } catch (error) {
      this.onCallbackError(error);
    }
    try {
      this.waiters.flush();
    } catch (error) {
      this.onCallbackError(error);
    }
  }

  private dispatch(command: Command): Result {
    switch (command.type) {
      case 'put': {
        checkKey(command.key, this.limits);
        checkValue(command.value, this.limits);
        const txn = this.beginWrite();
        const response = applyPut(this.etcdContext(txn), command);
        this.commit(txn, false);
        return { type: 'put', revision: this.revisionValue, prevKv: response.prevKv };
      }
      case 'deleteRange': {
        checkKey(command.key, this.limits);
        const txn = this.beginWrite();
        const response = applyDeleteRange(this.etcdContext(txn), command);
        this.commit(txn, false);
        return { ...response, revision: this.revisionValue };
      }
      case 'txn': {
        validateTxn(command, this.limits);
        const txn = this.beginWrite();
        const response = applyTxn(this.etcdContext(txn), command);
        this.commit(txn, false);
        return { ...response, revision: this.revisionValue };
      }
      case 'compact':
        return this.compact(command.revision);
      case 'leaseGrant':
        return this.grantLease(command);
      case 'leaseRevoke': {
        const lease = this.leaseTable.get(command.id);
        if (lease === undefined)
          throw new StoreError(StoreErrorCode.LeaseNotFound, `lease not found: ${command.id}`);
        const txn = this.beginWrite();
        this.revoke(txn, lease);
        this.commit(txn, true);
        return { type: 'leaseRevoke', id: command.id, revision: this.revisionValue };
      }
      case 'leaseKeepAlive': {
        const leases = command.ids.map((id) => {
          const lease = this.leaseTable.get(id);
          if (lease === undefined) return { id, ttlMs: -1, found: false };
          lease.checkpointRemainingMs = 0;
          this.leaseTable.setDeadline(lease, this.timeMsValue + lease.ttlMs);
          return { id, ttlMs: lease.ttlMs, found: true };
        });
        return { type: 'leaseKeepAlive', leases, revision: this.revisionValue };
      }
      case 'leaseCheckpoint': {
        let applied = 0;
        for (const { id, remainingMs } of command.checkpoints) {
          const lease = this.leaseTable.get(id);
          if (lease === undefined || lease.ttlMs === 0 || !(remainingMs > 0)) continue;
          lease.checkpointRemainingMs = Math.min(Math.floor(remainingMs), lease.ttlMs);
          this.leaseTable.setDeadline(lease, this.timeMsValue + lease.checkpointRemainingMs);
          applied++;
        }
        return { type: 'leaseCheckpoint', applied, revision: this.revisionValue };
      }
      case 'leaseExpire': {
        const txn = this.beginWrite();
        const expired: number[] = [];
        for (const id of command.ids) {
          const lease = this.leaseTable.get(id);
          // Re-check: a keep-alive committed after the leader looked may have saved it.
          if (lease === undefined || lease.ttlMs === 0 || lease.deadlineMs > this.timeMsValue) continue;
          this.revoke(txn, lease);
          expired.push(id);
        }
        this.commit(txn, expired.length > 0);
        return { type: 'leaseExpire', expired, revision: this.revisionValue };
      }
      case 'leaseRenewAll': {
        // etcd lessor.Promote: a new leader extends every lease before it may expire any.
        let renewed = 0;
        for (const lease of this.leaseTable.byId.values()) {
          if (lease.ttlMs === 0) continue;
          const ttl = lease.checkpointRemainingMs > 0 ? lease.checkpointRemainingMs : lease.ttlMs;
          this.leaseTable.setDeadline(lease, this.timeMsValue + ttl);
          renewed++;
        }
        return { type: 'leaseRenewAll', renewed, revision: this.revisionValue };
      }
      case 'consulTxn': {
        validateConsulOps(command.ops, this.limits);
        const txn = this.beginWrite();
        const journal = newTxnJournal();
        invariant(this.txnJournal === null, 'nested consul txn');
        this.txnJournal = journal;
        let results: ConsulOpResult[];
        try {
          results = applyConsulTxn(this.consulContext(txn, journal), command.ops);
        } catch (error) {
          // Consul's TxnRW aborts the whole state-store txn. KV writes vanish with the WriteTxn
          // and apply() drops the pending topics; put back what the ops changed directly.
          for (let i = journal.undo.length - 1; i >= 0; i--) journal.undo[i]!();
          throw error;
        } finally {
          this.txnJournal = null;
        }
        for (const [key, untilMs] of journal.lockDelays) this.lockDelays.set(key, untilMs);
        this.commit(txn, false);
        return { type: 'consulTxn', results, revision: this.revisionValue };
      }
      case 'catalogRegister': {
        const txn = this.beginWrite();
        this.catalogTables.register(
          this.catalogEffects(txn),
          command.node,
          command.service,
          command.checks ?? [],
        );
        const changed = this.pendingTopics.size > 0;
        this.commit(txn, changed);
        return { type: 'catalogRegister', changed, revision: this.revisionValue };
      }
      case 'catalogDeregister': {
        const txn = this.beginWrite();
        const changed = this.catalogTables.deregister(
          this.catalogEffects(txn),
          command.node,
          command.serviceId,
          command.checkId,
        );
        this.commit(txn, changed);
        return { type: 'catalogDeregister', changed, revision: this.revisionValue };
      }
      case 'checkUpdate': {
        const txn = this.beginWrite();
        const changed = this.catalogTables.updateCheck(
          this.catalogEffects(txn),
          command.node,
          command.checkId,
          command.status,
          command.output,
        );
        this.commit(txn, changed);
        return { type: 'checkUpdate', changed, revision: this.revisionValue };
      }
      default: {
        const unknown: { type?: unknown } = command;
        throw new StoreError(StoreErrorCode.CorruptCommand, `unknown command type ${String(unknown.type)}`);
      }
    }
  }

  private beginWrite(): WriteTxn {
    return new WriteTxn(this.mvcc, this.revisionValue + 1, this.limits.quotaBytes, this.quotaAlarm);
  }

  /** The context of a Consul txn: its catalog and session changes are journaled for rollback. */
  private consulContext(txn: WriteTxn, journal: TxnJournal): ConsulContext {
    const catalog = this.catalogTables;
    return {
      txn,
      leases: this.leaseTable,
      lockDelays: {
        activeUntil: (key, nowMs) => {
          const pending = journal.lockDelays.get(key) ?? 0;
          return Math.max(this.lockDelays.activeUntil(key, nowMs), pending > nowMs ? pending : 0);
        },
      },
      limits: this.limits,
      nowMs: this.timeMsValue,
      catalog: {
        catalog,
        effects: this.catalogEffects(txn),
        touchNode: (name) => {
          if (journal.savedNodes.has(name)) return;
          journal.savedNodes.add(name);
          const saved = catalog.saveNode(name);
          journal.undo.push(() => catalog.restoreNode(saved));
        },
        destroySession: (lease) => this.revoke(txn, lease),
      },
    };
  }

  private etcdContext(txn: WriteTxn): EtcdContext {
    return { txn, limits: this.limits, leaseExists: this.leaseExists, scannerAt: this.scannerAt };
  }

  /**
   * Commit a write txn: if it changed anything (KV writes, or `otherChanges` elsewhere), take
   * the next revision, record versions, keep lease/lock bookkeeping, and queue notifications.
   */
  private commit(txn: WriteTxn, otherChanges: boolean): void {
    const writes = txn.effectiveWrites();
    if (writes.length === 0 && !otherChanges && this.pendingTopics.size === 0) return;
    const revision = this.revisionValue + 1;
    invariant(txn.revision === revision, 'write txn opened at a stale revision');
    const versions: Version[] = new Array(writes.length);
    for (let i = 0; i < writes.length; i++) {
      const { version, base } = writes[i]!;
      const previous = base === undefined ? undefined : latestOf(base);
      this.trackAttachments(previous?.live ? previous : undefined, version, revision);
      this.mvcc.append(version, base);
      versions[i] = version;
    }
    this.revisionValue = revision;
    this.clock.record(revision, this.timeMsValue);
    if (versions.length > 0) {
      this.hub.publish(revision, versions);
      this.waiters.keysChanged(versions, revision);
    }
    for (const topic of this.pendingTopics) {
      this.topicIndexes.set(topic, revision);
      this.waiters.topicChanged(topic, revision);
    }
    this.pendingTopics.clear();
  }

  /** Keep each lease's attached-key set and each session's held-lock map in step with the KV. */
  private trackAttachments(previous: Version | undefined, next: Version, revision: number): void {
    const key = next.key;
    const oldLease = previous?.lease ?? 0;
    if (oldLease !== next.lease) {
      if (oldLease !== 0) this.leaseTable.get(oldLease)?.keys.delete(key);
      if (next.lease !== 0) this.leaseTable.get(next.lease)?.keys.add(key);
    }
    const oldSession = previous?.session ?? 0;
    if (oldSession !== next.session) {
      if (oldSession !== 0) this.leaseTable.get(oldSession)?.locks.delete(key);
      if (next.session !== 0) this.leaseTable.get(next.session)?.locks.set(key, revision);
    }
  }

  private grantLease(command: Extract<Command, { type: 'leaseGrant' }>): Result {
    const { ttlMs } = command;
    if (!Number.isSafeInteger(ttlMs) || ttlMs < 0 || ttlMs > this.limits.maxLeaseTtlMs) {
      throw new StoreError(
        StoreErrorCode.LeaseTtlInvalid,
        `lease TTL must be an integer in [0, ${this.limits.maxLeaseTtlMs}] ms: got ${ttlMs}`,
      );
    }
    if (!Number.isSafeInteger(command.id) || command.id < 0) {
      throw new StoreError(
        StoreErrorCode.InvalidArgument,
        `lease id must be a non-negative integer: got ${command.id}`,
      );
    }
    if (command.id !== 0 && this.leaseTable.get(command.id) !== undefined) {
      throw new StoreError(StoreErrorCode.LeaseExists, `lease already exists: ${command.id}`);
    }
    if (this.quotaAlarm) {
      throw new StoreError(StoreErrorCode.QuotaExceeded, 'database space exceeded: delete keys and compact');
    }
    const node = command.node ?? '';
    const checks = [...(command.checks ?? [])];
    if (node !== '') {
      // Consul session create: the node must exist and its checks must exist and not be critical.
      if (!this.catalogTables.nodes.has(node)) {
        throw new StoreError(StoreErrorCode.NodeNotFound, `missing node registration: ${node}`);
      }
      for (const checkId of checks) {
        const check = this.catalogTables.check(node, checkId);
        if (check === undefined)
          throw new StoreError(StoreErrorCode.CheckNotFound, `missing check '${checkId}' registration`);
        if (check.status === 'critical') {
          throw new StoreError(StoreErrorCode.CheckCritical, `check '${checkId}' is in critical state`);
        }
      }
    } else if (checks.length > 0) {
      throw new StoreError(StoreErrorCode.InvalidArgument, 'session checks need a node');
    }
    const lockDelayMs = Math.min(
      Math.max(0, Math.floor(command.lockDelayMs ?? 0)),
      this.limits.maxLockDelayMs,
    );
    const id = command.id === 0 ? this.leaseTable.allocateId() : command.id;
    const revision = this.revisionValue + 1;
    this.leaseTable.add(
      new Lease({
        id,
        ttlMs,
        deadlineMs: ttlMs === 0 ? 0 : this.timeMsValue + ttlMs,
        behavior: command.behavior ?? 'delete',
        lockDelayMs,
        node,
        checks,
        name: command.name ?? '',
        createRevision: revision,
      }),
    );
    this.pendingTopics.add(Topic.sessions);
    this.commit(this.beginWrite(), true);
    return { type: 'leaseGrant', id, ttlMs, revision: this.revisionValue };
  }

  /**
   * End a lease/session: delete its attached keys (etcd); release or delete the locks it holds
   * (Consul behavior) and start their lock-delay.
   */
  private revoke(txn: WriteTxn, lease: Lease): void {
    for (const key of [...lease.keys].sort()) txn.delete(key);
    const lockDelay = Math.min(lease.lockDelayMs, this.limits.maxLockDelayMs);
    const held = new Set(lease.locks.keys());
    const journal = this.txnJournal;
    if (journal !== null) {
      // Locks taken earlier in this Consul txn are still pending writes, not yet in lease.locks.
      for (const { version } of txn.effectiveWrites()) {
        if (version.live && version.session === lease.id) held.add(version.key);
      }
    }
    for (const key of [...held].sort()) {
      const current = txn.get(key);
      if (current !== undefined && current.session === lease.id) {
        if (lease.behavior === 'delete') txn.delete(key);
        else {
          txn.put(
            key,
            current.value,
            { lease: current.lease, flags: current.flags, lockIndex: current.lockIndex, session: 0 },
            true,
          );
        }
      }
      if (lockDelay > 0) {
        const untilMs = this.timeMsValue + lockDelay;
        // In a Consul txn the lock-delay waits for the commit (a rollback must not leave one).
        if (journal !== null)
          journal.lockDelays.set(key, Math.max(journal.lockDelays.get(key) ?? 0, untilMs));
        else this.lockDelays.set(key, untilMs);
      }
    }
    this.leaseTable.remove(lease.id);
    if (journal !== null) journal.undo.push(() => this.leaseTable.add(lease));
    this.pendingTopics.add(Topic.sessions);
    if (this.lockDelays.size > 1024) this.lockDelays.prune(this.timeMsValue);
  }

  private catalogEffects(txn: WriteTxn): CatalogEffects {
    const invalidate = (ids: Iterable<number>) => {
      for (const id of [...ids].sort((a, b) => a - b)) {
        const lease = this.leaseTable.get(id);
        if (lease !== undefined) this.revoke(txn, lease);
      }
    };
    return {
      revision: txn.revision,
      bump: (topic) => this.pendingTopics.add(topic),
      nodeRemoved: (node) => invalidate(this.leaseTable.byNode.get(node) ?? []),
      checkCritical: (node, checkId) => {
        const ids = [...(this.leaseTable.byNode.get(node) ?? [])].filter((id) =>
          this.leaseTable.get(id)?.checks.includes(checkId),
        );
        invalidate(ids);
      },
    };
  }

  private compact(revision: number): Result {
    if (!Number.isSafeInteger(revision) || revision < 0) {
      throw new StoreError(
        StoreErrorCode.InvalidArgument,
        `compact revision must be a non-negative integer: got ${revision}`,
      );
    }
    if (revision <= this.compactRevisionValue) {
      throw new StoreError(StoreErrorCode.Compacted, `required revision ${revision} has been compacted`, {
        compactRevision: this.compactRevisionValue,
      });
    }
    if (revision > this.revisionValue) {
      throw new StoreError(
        StoreErrorCode.FutureRevision,
        `required revision ${revision} is a future revision`,
      );
    }
    const floorBefore = this.mvcc.compactedTombstoneMax;
    this.mvcc.compact(this.compactRevisionValue, revision);
    this.compactRevisionValue = revision;
    this.clock.prune(revision);
    this.lockDelays.prune(this.timeMsValue);
    this.hub.compacted(revision);
    if (this.mvcc.compactedTombstoneMax > floorBefore)
      this.waiters.kvFloorRaised(this.mvcc.compactedTombstoneMax);
    return { type: 'compact', compactRevision: revision, revision: this.revisionValue };
  }

  // ===================================================================== reads

  get revision(): number {
    return this.revisionValue;
  }

  get compactRevision(): number {
    return this.compactRevisionValue;
  }

  get appliedIndex(): number {
    return this.appliedIndexValue;
  }

  status(): StoreStatus {
    return {
      revision: this.revisionValue,
      compactRevision: this.compactRevisionValue,
      appliedIndex: this.appliedIndexValue,
      timeMs: this.timeMsValue,
      liveKeys: this.mvcc.liveKeys,
      storedBytes: this.mvcc.storedBytes,
      quotaBytes: this.limits.quotaBytes,
      quotaAlarm: this.quotaAlarm,
      leases: this.leaseTable.size,
      watchers: this.hub.size,
      blockingWaiters: this.waiters.size,
    };
  }

  private checkReadable(revision: number): void {
    if (revision < this.compactRevisionValue) {
      throw new StoreError(StoreErrorCode.Compacted, `required revision ${revision} has been compacted`, {
        compactRevision: this.compactRevisionValue,
      });
    }
    if (revision > this.revisionValue) {
      throw new StoreError(
        StoreErrorCode.FutureRevision,
        `required revision ${revision} is a future revision`,
      );
    }
  }

  private scanner(revision: number): Scanner {
    this.checkReadable(revision);
    const at = revision === this.revisionValue ? null : revision;
    return (range, reverse, visit) => this.mvcc.scan(range.start, range.end, reverse, at, visit);
  }

  /** Point read; `revision` 0/absent reads the current revision. */
  get(key: Uint8Array, revision = 0): KeyValue | null {
    const keyString = toByteString(key);
    if (revision === 0 || revision === this.revisionValue) {
      const version = this.mvcc.latestLive(keyString);
      return version ? toKeyValue(version) : null;
    }
    this.checkReadable(revision);
    const version = this.mvcc.getAt(keyString, revision);
    return version ? toKeyValue(version) : null;
  }

  /**
   * etcd Range. For bounded memory on large ranges, pass a limit and continue from
   * `nextKey(lastKey)` at the same `revision` (pinned; COMPACTED if compaction overtakes it).
   */
  range(request: Omit<RangeOp, 'type'>): RangeResult {
    checkKey(request.key, this.limits);
    const revision = request.revision && request.revision > 0 ? request.revision : this.revisionValue;
    const scan = this.scanner(revision);
    const output = evaluateRange(
      scan,
      decodeRange(request.key, request.rangeEnd),
      request,
      this.limits.maxSortedRangeKeys,
    );
    return { ...output, revision };
  }

  /**
   * An etcd txn whose every op is a Range (nested txns included), evaluated on committed state
   * without a log entry: etcd serves such a txn after a read index, like a Range.
   */
  evaluateReadOnlyTxn(op: TxnOp): { succeeded: boolean; responses: ResponseOp[]; revision: number } {
    validateTxn(op, this.limits);
    const txn = this.beginWrite();
    const result = applyTxn(this.etcdContext(txn), op);
    invariant(txn.effectiveWrites().length === 0, 'a read-only txn wrote');
    return { succeeded: result.succeeded, responses: result.responses, revision: this.revisionValue };
  }

  /**
   * A Consul txn whose every op reads (`isReadOnlyConsulTxn`), evaluated on committed state
   * without a log entry, as Consul's Txn.Read serves it. A failing check throws its StoreError
   * (with the op's index), as the same op does through Raft.
   */
  evaluateReadOnlyConsulTxn(ops: ConsulTxnOp[]): { results: ConsulOpResult[]; revision: number } {
    invariant(isReadOnlyConsulTxn(ops), 'a read-only consul txn has a write op');
    validateConsulOps(ops, this.limits);
    const txn = this.beginWrite();
    const journal = newTxnJournal();
    const results = applyConsulTxn(this.consulContext(txn, journal), ops);
    invariant(
      txn.effectiveWrites().length === 0 && journal.undo.length === 0 && journal.lockDelays.size === 0,
      'a read-only consul txn wrote',
    );
    return { results, revision: this.revisionValue };
  }

  /** Consul: the live entries under a prefix, in key order (GET ?recurse). */
  list(prefix: Uint8Array): KeyValue[] {
    const start = toByteString(prefix);
    const result: KeyValue[] = [];
    this.mvcc.scan(start, prefixEnd(start), false, null, (version) => {
      result.push(toKeyValue(version));
      return true;
    });
    return result;
  }

  /** Consul: the keys under a prefix, optionally rolled up at `separator` (GET ?keys&separator=). */
  listKeys(prefix: Uint8Array, separator?: Uint8Array): Uint8Array[] {
    const start = toByteString(prefix);
    const sep = separator && separator.length > 0 ? toByteString(separator) : '';
    const keys: ByteString[] = [];
    this.mvcc.scan(start, prefixEnd(start), false, null, (version) => {
      let key = version.key;
      if (sep !== '') {
        const at = key.indexOf(sep, start.length);
        if (at >= 0) key = key.slice(0, at + sep.length);
      }
      if (keys[keys.length - 1] !== key) keys.push(key);
      return true;
    });
    return keys.map(fromByteString);
  }

  // ---- watches and blocking queries

  watch(options: WatchOptions): Watcher {
    checkKey(options.key.length === 0 && options.rangeEnd ? new Uint8Array(1) : options.key, this.limits);
    return this.hub.watch(options);
  }

  /** etcd progress notification revision for a watcher (null while it has events pending). */
  progressRevision(watcher: Watcher): number | null {
    return this.hub.progressRevision(watcher);
  }

  /**
   * The index a Consul blocking query on this target reports: the highest modify revision of
   * the key or anything under the prefix, including deletions still in history; deletions
   * compacted away are covered by the compaction floor, so the index never goes backwards.
   * For topics (catalog, sessions): the revision of the last change to that topic.
   */
  index(target: WaitTarget): number {
    if (target.kind === 'topic') return this.topicIndexes.get(target.topic) ?? 0;
    const floor = this.mvcc.compactedTombstoneMax;
    if (target.kind === 'key') {
      const latest = this.mvcc.latest(toByteString(target.key));
      return Math.max(latest?.modRevision ?? 0, floor);
    }
    const start = toByteString(target.prefix);
    let max = floor;
    this.mvcc.scanLatestAny(start, prefixEnd(start), (version) => {
      if (version.modRevision > max) max = version.modRevision;
      return true;
    });
    return max;
  }

  /**
   * Consul blocking query: ready now if the target's index is past `afterIndex`; otherwise
   * `callback(newIndex)` runs once, after the apply that moves it (the caller adds timeouts
   * and must call cancel when it gives up).
   */
  waitForChange(target: WaitTarget, afterIndex: number, callback: (index: number) => void): WaitResult {
    const index = this.index(target);
    if (index > afterIndex) return { ready: true, index };
    return { ready: false, cancel: this.waiters.add(target, afterIndex, callback) };
  }

  // ---- leases and locks

  private leaseInfo(lease: Lease): LeaseInfo {
    return {
      id: lease.id,
      ttlMs: lease.ttlMs,
      deadlineMs: lease.deadlineMs,
      behavior: lease.behavior,
      lockDelayMs: lease.lockDelayMs,
      node: lease.node,
      checks: [...lease.checks],
      name: lease.name,
      createRevision: lease.createRevision,
      keys: [...lease.keys].sort().map(fromByteString),
      locks: [...lease.locks]
        .sort((a, b) => (a[0] < b[0] ? -1 : 1))
        .map(([key, fencingToken]) => ({ key: fromByteString(key), fencingToken })),
    };
  }

  lease(id: number): LeaseInfo | null {
    const lease = this.leaseTable.get(id);
    return lease ? this.leaseInfo(lease) : null;
  }

  leases(): LeaseInfo[] {
    return this.leaseTable.sorted().map((lease) => this.leaseInfo(lease));
  }

  /** etcd LeaseTimeToLive: remaining ms at the caller's `nowMs` (-1 if not found). */
  leaseRemainingMs(id: number, nowMs: number): number {
    const lease = this.leaseTable.get(id);
    if (lease === undefined) return -1;
    if (lease.ttlMs === 0) return 0;
    return Math.max(0, lease.deadlineMs - nowMs);
  }

  /** Leases whose deadline is at or before `nowMs`, earliest first: the leader proposes their expiry. */
  leasesDue(nowMs: number, limit = 1000): number[] {
    return this.leaseTable.due(nowMs, limit);
  }

  nextLeaseDeadline(): number | null {
    return this.leaseTable.nextDeadline() ?? null;
  }

  /** Who holds the Consul lock on a key, with the fencing token of that grant. */
  lockHolder(key: Uint8Array): { session: number; lockIndex: number; fencingToken: number } | null {
    const version = this.mvcc.latestLive(toByteString(key));
    if (version === undefined || version.session === 0) return null;
    const token = this.leaseTable.get(version.session)?.locks.get(version.key);
    invariant(token !== undefined, 'held lock missing from its session');
    return { session: version.session, lockIndex: version.lockIndex, fencingToken: token };
  }

  /** Lock-delay deadline on a key at `nowMs` (0 when none). */
  lockDelayUntil(key: Uint8Array, nowMs: number): number {
    return this.lockDelays.activeUntil(toByteString(key), nowMs);
  }

  /** Sessions-topic and catalog reads (read-only use by the API layers). */
  get catalog(): Catalog {
    return this.catalogTables;
  }

  // ---- compaction policy

  /** The compact command the leader should propose under `policy` at `nowMs`, or null. */
  compactionTarget(policy: CompactionPolicy, nowMs: number): number | null {
    return compactionTarget(
      { revision: this.revisionValue, compactRevision: this.compactRevisionValue, clock: this.clock },
      policy,
      nowMs,
    );
  }

  // ---- snapshot support and checks

  /** @internal The state snapshot.ts serialises. */
  internals(): StoreInternals {
    return {
      mvcc: this.mvcc,
      leases: this.leaseTable,
      lockDelays: this.lockDelays,
      catalog: this.catalogTables,
      clock: this.clock,
      topicIndexes: this.topicIndexes,
      counters: {
        revision: this.revisionValue,
        compactRevision: this.compactRevisionValue,
        appliedIndex: this.appliedIndexValue,
        timeMs: this.timeMsValue,
        quotaAlarm: this.quotaAlarm,
      },
    };
  }

  /** @internal Load counters after snapshot.ts has filled the tables of a fresh store. */
  loadCounters(counters: StoreInternals['counters']): void {
    invariant(this.appliedIndexValue === 0 && this.revisionValue === 1, 'restore into a used store');
    this.revisionValue = counters.revision;
    this.compactRevisionValue = counters.compactRevision;
    this.appliedIndexValue = counters.appliedIndex;
    this.timeMsValue = counters.timeMs;
    this.quotaAlarm = counters.quotaAlarm;
    for (const lease of this.leaseTable.byId.values())
      invariant(lease.keys.size === 0, 'restored lease keys pre-filled');
    // Attached keys are derived from the KV: rebuild them.
    this.mvcc.scan('', null, false, null, (version) => {
      if (version.lease !== 0) this.leaseTable.get(version.lease)?.keys.add(version.key);
      return true;
    });
  }

  /** O(n) consistency check of every index (tests, and the simulator after each step). */
  checkInvariants(): void {
    this.mvcc.checkInvariants();
    this.leaseTable.checkInvariants();
    invariant(this.compactRevisionValue <= this.revisionValue, 'compact revision above revision');
    const attached = new Map<number, number>();
    const held = new Map<number, number>();
    this.mvcc.scan('', null, false, null, (version) => {
      invariant(version.modRevision <= this.revisionValue, 'version from the future');
      invariant(version.createRevision <= version.modRevision, 'created after modified');
      if (version.lease !== 0) {
        invariant(
          this.leaseTable.get(version.lease)?.keys.has(version.key),
          'key attached to a missing lease',
        );
        attached.set(version.lease, (attached.get(version.lease) ?? 0) + 1);
      }
      if (version.session !== 0) {
        invariant(
          this.leaseTable.get(version.session)?.locks.has(version.key),
          'lock held by a missing session',
        );
        held.set(version.session, (held.get(version.session) ?? 0) + 1);
      }
      return true;
    });
    for (const lease of this.leaseTable.byId.values()) {
      invariant(
        (attached.get(lease.id) ?? 0) === lease.keys.size,
        () => `lease ${lease.id} key set is stale`,
      );
      invariant(
        (held.get(lease.id) ?? 0) === lease.locks.size,
        () => `session ${lease.id} lock map is stale`,
      );
    }
  }
}
