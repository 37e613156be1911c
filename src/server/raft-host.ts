import { randomBytes } from 'node:crypto';
import { invariant } from '../raft/assert.js';
import { RaftNode, type RaftOptions, type RaftStatus } from '../raft/node.js';
import {
  type ConfChange,
  type Entry,
  type HardState,
  type Message,
  MessageType,
  type NodeId,
  type Ready,
  SNAPSHOT_DATA_ON_DISK,
  type Snapshot,
} from '../raft/types.js';
import type { RaftLogStorage } from '../storage/types.js';
import { CommitNotices } from './commit-notices.js';

/**
 * The imperative shell around the pure Raft core (DESIGN.md principle 1): it owns the clock
 * (ticks), the disk (storage) and the network (a send function), and runs the Ready/advance
 * cycle: persist, then send, then apply, then advance. Proposals made while a Ready is being
 * persisted pile up in the core and go out together in the next one (group commit).
 */

/** The replicated state machine as the shell sees it. */
export interface StateMachine {
  /** Apply one committed entry; the return value resolves the proposer's promise. */
  apply(entry: Entry): unknown;
  snapshot(): Uint8Array;
  /**
   * The snapshot as a lazy stream of chunks, of the state when the first chunk is pulled. The
   * host pulls it a few milliseconds at a time between event-loop turns and goes on applying
   * meanwhile, so a large state blocks neither the loop nor writes: the machine must keep the
   * stream's view as it was (copy-on-write), and the host returns the stream early on stop.
   */
  snapshotChunks?(): Iterable<Uint8Array>;
  restore(data: Uint8Array): void;
}

/** A failure the client may retry (another server, or later). */
export class RetryableError extends Error {
  override name = 'RetryableError';
  constructor(
    readonly code:
      | 'not-leader'
      | 'no-leader'
      | 'overwritten'
      | 'timeout'
      | 'transferring'
      | 'overloaded'
      /** A membership change is already under way (one at a time, thesis §4.1). */
      | 'busy'
      | 'stopped',
    message: string,
    readonly leader: NodeId = '',
  ) {
    super(message);
  }
}

/**
 * How long one slice of a snapshot capture may hold the event loop. A request that arrives
 * during a slice waits for its end, at each of the loop turns it takes (about three for a
 * write), so this is close to what a capture adds to a request's latency.
 */
const CAPTURE_SLICE_MS = 1;
/**
 * A slice gives way to a Ready turn queued behind it, at most this many times in a row, so a
 * server that has Raft work in every loop turn still finishes its capture.
 */
const CAPTURE_MAX_YIELDS = 2;
const EMPTY = new Uint8Array(0);
/**
 * From this snapshot size on, voters take turns to capture (`snapshotTurn`): a capture of this
 * much costs tens of milliseconds of CPU and more, and two at once slow a quorum down.
 */
const STAGGER_FROM_BYTES = 8 * 1024 * 1024;

export interface RaftHostOptions {
  id: NodeId;
  storage: RaftLogStorage;
  stateMachine: StateMachine;
  /** Hand a message to the transport; the shell never blocks on it. */
  send: (m: Message) => void;
  /**
   * Put the messages handed over so far on the wire now (a transport that batches a turn's
   * writes). Called right after each batch, so the appends go out before the leader's own WAL
   * write is prepared, and a follower's answer before it applies what committed.
   */
  flush?: () => void;
  /** The configuration a brand-new server starts with (bootstrap); ignored once the log has one. */
  bootstrap?: { voters: NodeId[]; data?: Uint8Array };
  /** Every entry this server appends to its log, before it is persisted (the directory reads addresses there). */
  onAppend?: (entries: readonly Entry[]) => void;
  tickMs?: number;
  electionTicks?: number;
  heartbeatTicks?: number;
  /**
   * Take an application snapshot after this many applied entries, and once the entries applied
   * since the last snapshot add up to at least its size (see `maybeSnapshot`).
   */
  snapshotEveryEntries?: number;
  /** Entries kept in memory behind a snapshot, so slightly slow followers avoid a snapshot transfer. */
  keepEntriesAfterSnapshot?: number;
  requestTimeoutMs?: number;
  /**
   * How long the leader holds a commit-only append in case the next append to that follower
   * makes it unnecessary (see commit-notices.ts); 0 sends them at once.
   */
  commitNoticeHoldMs?: number;
  raft?: Partial<Omit<RaftOptions, 'id' | 'random'>>;
  onLeaderChange?: (leader: NodeId, term: number) => void;
  onApplied?: (index: number) => void;
  /** A snapshot from the leader replaced the local state (this server was too far behind). */
  onSnapshotInstalled?: (index: number) => void;
  /** A snapshot of our own was captured and made durable (for the log: when, how big, how long). */
  onSnapshotSaved?: (info: { index: number; bytes: number; captureMs: number; saveMs: number }) => void;
  onFatal?: (err: unknown) => void;
}

interface PendingProposal {
  term: number;
  resolve: (result: unknown) => void;
  reject: (err: Error) => void;
  /** performance.now() after which the caller is told it timed out. */
  deadline: number;
}

interface PendingRead {
  resolve: () => void;
  reject: (err: Error) => void;
  /** performance.now() after which the caller is told it timed out. */
  deadline: number;
  index: number;
}

/** Options without a default: absent means not wanted. */
type OptionalHostOption =
  | 'bootstrap'
  | 'raft'
  | 'onLeaderChange'
  | 'onApplied'
  | 'onFatal'
  | 'onAppend'
  | 'onSnapshotInstalled'
  | 'onSnapshotSaved'
  | 'flush';

export class RaftHost {
  private raft: RaftNode | null = null;
  private random: () => number = Math.random;
  private readonly opts: Required<Omit<RaftHostOptions, OptionalHostOption>> &
    Pick<RaftHostOptions, OptionalHostOption>;
  private ticker: NodeJS.Timeout | null = null;
  private processing = false;
  private scheduled = false;
  private stopped = false;
  /**
   * Proposals waiting for their entry to apply. Deadlines grow in insertion order (each is its
   * proposal time plus the same timeout), so one timer for the oldest serves them all: no
   * timer per write.
   */
  private proposals = new Map<number, PendingProposal>();
  private proposalTimer: NodeJS.Timeout | null = null;
  /** ReadIndex requests in flight, by context: each serves the batch of reads that share it. */
  private reads = new Map<string, PendingRead[]>();
  /** Reads that arrived since the last ReadIndex was issued; they will share the next one. */
  private openReads: PendingRead[] = [];
  private readTimer: NodeJS.Timeout | null = null;
  private readTimerAt = Number.POSITIVE_INFINITY;
  private readsWaitingApply: PendingRead[] = [];
  private readSeq = 0;
  private readonly readPrefix = randomBytes(4).toString('hex');
  private applied = 0;
  private lastSnapshotIndex = 0;
  /** Size of the last snapshot taken or installed, and entry bytes applied since it. */
  private lastSnapshotBytes = 0;
  private bytesSinceSnapshot = 0;
  /**
   * 1-1.5, drawn anew after each snapshot and applied to both thresholds: replicas reach them at
   * the same index, and captures on every server at once would share the same cores.
   */
  private snapshotSpread = 1;
  private leader: NodeId = '';
  private snapshotting = false;
  /** A snapshot is being captured chunk by chunk (applies go on meanwhile). */
  private capturing = false;
  /** The hard state last saved, and a newer one held back because only its commit moved. */
  private savedHardState: HardState = { term: 0, vote: '', commit: 0 };
  private heldHardState: HardState | null = null;
  /** Fsync latency of the last persisted Ready, for status and metrics. */
  lastPersistMs = 0;
  private readonly notices: CommitNotices;

  constructor(options: RaftHostOptions) {
    this.opts = {
      tickMs: 100,
      electionTicks: 10,
      heartbeatTicks: 1,
      snapshotEveryEntries: 10_000,
      keepEntriesAfterSnapshot: 5_000,
      requestTimeoutMs: 10_000,
      commitNoticeHoldMs: 2,
      ...options,
    };
    this.notices = new CommitNotices((m) => this.deliver(m), this.opts.commitNoticeHoldMs);
  }

  /** Load the log and start ticking. Resolves with what was recovered, for the caller's own indexes. */
  async start(): Promise<{ entries: readonly Entry[]; snapshot: Snapshot | null }> {
    const recovered = await this.opts.storage.load();
    let { hardState, entries } = recovered;
    const { snapshot } = recovered;
    const boot = this.opts.bootstrap;
    if (!snapshot && entries.length === 0 && boot && boot.voters.length > 0) {
      // First start of a bootstrapping server: write the initial configuration durably.
      const first = RaftNode.bootstrapEntry(boot.voters, boot.data);
      hardState = { term: 1, vote: '', commit: 1 };
      await this.opts.storage.save({ entries: [first], hardState });
      entries = [first];
    }
    if (snapshot) {
      this.opts.stateMachine.restore(snapshot.data);
      this.applied = snapshot.meta.index;
      this.lastSnapshotIndex = snapshot.meta.index;
      this.lastSnapshotBytes = snapshot.data.byteLength;
    }
    const seed = randomBytes(4).readUInt32LE(0);
    let state = seed || 1;
    const random = () => {
      // xorshift32: the core only needs a uniform draw for its election timeout.
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      return (state >>> 0) / 4294967296;
    };
    this.random = random;
    this.savedHardState = hardState;
    this.raft = this.makeNode({ hardState, snapshot, entries });
    // Storage holds it; the copy in memory would only serve a follower that fell behind.
    if (snapshot) this.raft.releaseSnapshotData(snapshot.meta.index);
    this.campaignIfSoleVoter();
    this.ticker = setInterval(() => {
      this.raft?.tick();
      this.schedule();
    }, this.opts.tickMs);
    this.schedule();
    return { entries, snapshot };
  }

  /**
   * A sole voter has no one to hear from: let its election timeout pass now rather than sit out
   * 10-20 ticks, so -dev and single-server clusters are ready sooner. It is only time passing
   * faster; no other voter exists whose leader it could disrupt.
   */
  private campaignIfSoleVoter(): void {
    const raft = this.raft!;
    const { config } = raft.status();
    if (config.voters.length !== 1 || config.voters[0] !== this.opts.id) return;
    for (let i = 0; i < 2 * this.opts.electionTicks && raft.status().role !== 'leader'; i++) raft.tick();
  }

  private makeNode(recovered: ConstructorParameters<typeof RaftNode>[1]): RaftNode {
    return new RaftNode(
      {
        id: this.opts.id,
        electionTicks: this.opts.electionTicks,
        heartbeatTicks: this.opts.heartbeatTicks,
        random: this.random,
        ...this.opts.raft,
      },
      recovered,
    );
  }

  /** True while this server has no log, no snapshot and no term: it may still bootstrap. */
  isPristine(): boolean {
    const s = this.raft?.status();
    return !!s && s.term === 0 && s.lastIndex === 0 && s.snapshotIndex === 0;
  }

  /**
   * Bootstrap a started but pristine server with the first configuration (bootstrap-expect).
   * Returns false, changing nothing, if the server has meanwhile heard from a cluster.
   */
  async bootstrap(voters: NodeId[], data?: Uint8Array): Promise<boolean> {
    invariant(this.raft, 'raft host not started');
    while (this.processing) await new Promise((r) => setTimeout(r, 2));
    if (!this.isPristine() || this.stopped) return false;
    const first = RaftNode.bootstrapEntry(voters, data);
    const hardState = { term: 1, vote: '', commit: 1 };
    this.processing = true;
    try {
      await this.opts.storage.save({ entries: [first], hardState });
      this.savedHardState = hardState;
      this.opts.onAppend?.([first]);
      this.raft = this.makeNode({ hardState, snapshot: null, entries: [first] });
      this.campaignIfSoleVoter();
    } finally {
      this.processing = false;
    }
    this.schedule();
    return true;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.ticker) clearInterval(this.ticker);
    this.ticker = null;
    // Followers should hear of the last commits before this leader goes quiet.
    this.notices.flush();
    const err = new RetryableError('stopped', 'server is shutting down');
    for (const p of this.proposals.values()) p.reject(err);
    this.proposals.clear();
    if (this.proposalTimer) clearTimeout(this.proposalTimer);
    this.proposalTimer = null;
    this.failReads(err, true);
    if (this.readTimer) clearTimeout(this.readTimer);
    this.readTimer = null;
    while (this.processing || this.snapshotting || this.capturing) await new Promise((r) => setTimeout(r, 5));
    // A held-back commit index is worth keeping on a clean stop: the restart applies that far
    // from its own log at once. (Not needed for safety; a failed storage just skips it.)
    const held = this.heldHardState;
    this.heldHardState = null;
    if (held) await this.opts.storage.save({ entries: [], hardState: held }).catch(() => {});
    // The host owns its storage: closing it flushes and releases the data-directory lock.
    await this.opts.storage.close();
  }

  /** Deliver a message from a peer. */
  step(m: Message): void {
    if (!this.raft || this.stopped) return;
    this.raft.step(m);
    this.schedule();
  }

  status(): RaftStatus {
    invariant(this.raft, 'raft host not started');
    return this.raft.status();
  }

  leaderId(): NodeId {
    return this.leader;
  }

  /** Term and role for per-request use (status() builds the leader's whole progress map). */
  term(): number {
    return this.raft?.currentTerm() ?? 0;
  }

  isLeaderNow(): boolean {
    return this.raft?.currentRole() === 'leader';
  }

  appliedIndex(): number {
    return this.applied;
  }

  /**
   * Resolves once this server has applied `index`: a follower that forwarded a write waits for
   * it before answering its client, so that its own reads then see the write (etcd's members
   * do the same). Fails with a 'timeout' RetryableError after `timeoutMs`.
   */
  waitApplied(index: number, timeoutMs: number): Promise<void> {
    if (this.applied >= index) return Promise.resolve();
    if (!this.raft || this.stopped)
      return Promise.reject(new RetryableError('stopped', 'server is not running'));
    return new Promise((resolve, reject) => {
      const wait: PendingRead = { resolve, reject, deadline: performance.now() + timeoutMs, index };
      this.readsWaitingApply.push(wait);
      this.armReadTimer(wait.deadline);
    });
  }

  /** Send a held commit notice to `to` now (see `CommitNotices.flushTo`). */
  flushCommitNotice(to: NodeId): void {
    this.notices.flushTo(to);
  }

  /** Propose a command; resolves with the state machine's result once applied here. */
  propose(data: Uint8Array): Promise<unknown> {
    const raft = this.raft;
    if (!raft || this.stopped) return Promise.reject(new RetryableError('stopped', 'server is not running'));
    const r = raft.propose([data]);
    if (!r.ok) return Promise.reject(this.refusal(r.reason, r.message));
    this.schedule();
    return this.track(r.index, r.term);
  }

  proposeConfChange(change: ConfChange): Promise<unknown> {
    const raft = this.raft;
    if (!raft || this.stopped) return Promise.reject(new RetryableError('stopped', 'server is not running'));
    const r = raft.proposeConfChange(change);
    if (!r.ok) {
      if (r.reason === 'invalid') return Promise.reject(new Error(r.message));
      return Promise.reject(this.refusal(r.reason, r.message));
    }
    this.schedule();
    return this.track(r.index, r.term);
  }

  transferLeadership(target: NodeId): { ok: boolean; message: string } {
    invariant(this.raft, 'raft host not started');
    const r = this.raft.transferLeadership(target);
    this.schedule();
    return r;
  }

  /** Linearizable read barrier (thesis §6.4): resolves once this server has applied the read index. */
  readBarrier(timeoutMs = this.opts.requestTimeoutMs): Promise<void> {
    const raft = this.raft;
    if (!raft || this.stopped) return Promise.reject(new RetryableError('stopped', 'server is not running'));
    return new Promise((resolve, reject) => {
      const read: PendingRead = { resolve, reject, deadline: performance.now() + timeoutMs, index: 0 };
      this.openReads.push(read);
      this.armReadTimer(read.deadline);
      this.schedule();
    });
  }

  /**
   * One timer for every waiting read, due at the earliest deadline (proposals do the same).
   * Reads that complete leave it armed; when it fires it fails what is past due and re-arms
   * for the earliest deadline left, if any.
   */
  private armReadTimer(deadline: number): void {
    if (this.readTimer !== null && this.readTimerAt <= deadline) return;
    if (this.readTimer !== null) clearTimeout(this.readTimer);
    this.readTimerAt = deadline;
    this.readTimer = setTimeout(this.expireReads, Math.max(0, deadline - performance.now()));
  }

  private readonly expireReads = (): void => {
    this.readTimer = null;
    this.readTimerAt = Number.POSITIVE_INFINITY;
    const now = performance.now();
    const expired: PendingRead[] = [];
    let next = Number.POSITIVE_INFINITY;
    const pending = (r: PendingRead) => {
      if (r.deadline <= now) {
        expired.push(r);
        return false;
      }
      if (r.deadline < next) next = r.deadline;
      return true;
    };
    this.openReads = this.openReads.filter(pending);
    for (const [context, batch] of this.reads) {
      const rest = batch.filter(pending);
      if (rest.length === 0) this.reads.delete(context);
      else if (rest.length !== batch.length) this.reads.set(context, rest);
    }
    this.readsWaitingApply = this.readsWaitingApply.filter(pending);
    for (const r of expired) r.reject(new RetryableError('timeout', 'read index timed out', this.leader));
    if (next !== Number.POSITIVE_INFINITY) this.armReadTimer(next);
  };

  /**
   * One ReadIndex for every read that arrived since the last was issued (etcd's read loop does
   * the same): each of them arrived before the index is taken, so it is a valid barrier for all
   * of them, and a follower sends the leader one request instead of one per read.
   */
  private issueReads(): void {
    if (this.openReads.length === 0 || !this.raft || this.stopped) return;
    const context = `${this.readPrefix}-${++this.readSeq}`;
    this.reads.set(context, this.openReads);
    this.openReads = [];
    this.raft.readIndex(context);
  }

  // ------------------------------------------------------------ the Ready loop

  private schedule(): void {
    if (this.scheduled || this.stopped) return;
    this.scheduled = true;
    // setImmediate lets every message and proposal that arrived in this turn join one Ready.
    setImmediate(() => {
      this.scheduled = false;
      this.issueReads();
      void this.process();
    });
  }

  private async process(): Promise<void> {
    const raft = this.raft;
    if (!raft || this.processing || this.stopped || !raft.hasReady()) return;
    this.processing = true;
    let persisted = false;
    try {
      const rd = raft.ready();
      if (rd.softState && rd.softState.leader !== this.leader) {
        this.leader = rd.softState.leader;
        this.opts.onLeaderChange?.(this.leader, raft.status().term);
        // Forwarded reads may be lost with the old leader: let their callers retry now.
        if (rd.softState.role !== 'leader') {
          this.notices.flush();
          this.failReads(new RetryableError('no-leader', 'leader changed', this.leader), false);
        }
      }
      for (const m of rd.messagesNow) this.notices.send(m);
      if (rd.messagesNow.length > 0) this.opts.flush?.();
      if (rd.entries.length > 0) {
        this.opts.onAppend?.(rd.entries);
        // A leader only appends to its own log; a follower's entries may replace its old ones.
        if (this.proposals.size > 0 && this.leader !== this.opts.id)
          this.failOverwrittenProposals(rd.entries);
      }
      const hardState = rd.hardState ?? this.heldHardState ?? undefined;
      if (
        hardState &&
        rd.entries.length === 0 &&
        !rd.snapshot &&
        hardState.term === this.savedHardState.term &&
        hardState.vote === this.savedHardState.vote
      ) {
        // Only the commit index moved. It is volatile state in Raft (§5, Figure 2): after a
        // crash the leader tells us again. So no fsync for it on the request path (etcd's
        // MustSync rule); it is written with the next save that must sync anyway.
        this.heldHardState = hardState;
      } else if (rd.entries.length > 0 || hardState || rd.snapshot) {
        const began = performance.now();
        const update: Parameters<RaftLogStorage['save']>[0] = { entries: rd.entries };
        if (hardState) update.hardState = hardState;
        if (rd.snapshot) update.snapshot = rd.snapshot;
        await this.opts.storage.save(update);
        persisted = true;
        if (hardState) this.savedHardState = hardState;
        this.heldHardState = null;
        this.lastPersistMs = performance.now() - began;
      }
      if (this.stopped) return;
      for (const m of rd.messages) this.notices.send(m);
      if (rd.messages.length > 0) this.opts.flush?.();
      this.applyReady(rd);
      raft.advance(rd);
      // A snapshot from the leader is durable and applied now.
      if (rd.snapshot) raft.releaseSnapshotData(rd.snapshot.meta.index);
      this.maybeSnapshot();
    } catch (err) {
      // A storage failure is fail-stop (the WAL's G4): never keep serving on unknown durability.
      this.stopped = true;
      if (this.ticker) clearInterval(this.ticker);
      this.opts.onFatal?.(err);
    } finally {
      this.processing = false;
    }
    if (persisted && raft.hasReady() && !this.stopped) {
      // What arrived during the save is already in the core, and what the save made possible
      // (typically the commit of the entries just made durable) is ready now: take it in this
      // turn instead of one event-loop turn later, which is on every write's path.
      this.issueReads();
      void this.process();
      return;
    }
    this.schedule();
  }

  /**
   * Entries from another leader were appended from `entries[0].index` on, replacing whatever
   * our log held there. A proposal of ours at such an index can never commit: the entry now at
   * its index has another term, or (past the new entries) every later entry will have at least
   * the new term, by the log's nondecreasing terms. Its caller learns it now, rather than at the
   * request timeout with an ambiguous error.
   */
  private failOverwrittenProposals(entries: readonly Entry[]): void {
    const first = entries[0]!;
    const last = entries[entries.length - 1]!;
    for (const [index, p] of this.proposals) {
      if (index < first.index) continue;
      const dead = index <= last.index ? p.term !== entries[index - first.index]!.term : p.term < last.term;
      if (!dead) continue;
      this.proposals.delete(index);
      p.reject(new RetryableError('overwritten', 'a new leader replaced the entry; retry', this.leader));
    }
  }

  private applyReady(rd: Ready): void {
    const sm = this.opts.stateMachine;
    if (rd.snapshot) {
      sm.restore(rd.snapshot.data);
      const index = rd.snapshot.meta.index;
      this.applied = index;
      this.lastSnapshotIndex = index;
      this.lastSnapshotBytes = rd.snapshot.data.byteLength;
      this.bytesSinceSnapshot = 0;
      this.opts.onSnapshotInstalled?.(index);
      // Proposals at or below the snapshot were decided elsewhere; their results are unknown here.
      for (const [i, p] of this.proposals) {
        if (i <= index) {
          p.reject(
            new RetryableError('overwritten', 'state replaced by a snapshot before the result was seen'),
          );
          this.proposals.delete(i);
        }
      }
    }
    for (const rs of rd.readStates) {
      const batch = this.reads.get(rs.context);
      if (!batch) continue;
      this.reads.delete(rs.context);
      for (const read of batch) {
        read.index = rs.index;
        this.readsWaitingApply.push(read);
      }
    }
    for (const f of rd.readFailures) {
      const batch = this.reads.get(f.context);
      if (!batch) continue;
      this.reads.delete(f.context);
      for (const read of batch) {
        read.reject(new RetryableError('no-leader', `read index failed: ${f.reason}`, this.leader));
      }
    }
    if (rd.snapshot && rd.committedEntries.length === 0) this.opts.onApplied?.(this.applied);
    this.applyCommitted(rd.committedEntries);
  }

  /** Apply what has committed. */
  private applyCommitted(entries: readonly Entry[]): void {
    const sm = this.opts.stateMachine;
    for (const e of entries) {
      const result = e.data.byteLength > 0 || e.change ? sm.apply(e) : undefined;
      this.bytesSinceSnapshot += e.data.byteLength;
      this.applied = e.index;
      const p = this.proposals.get(e.index);
      if (p) {
        this.proposals.delete(e.index);
        if (p.term === e.term) p.resolve(result);
        else
          p.reject(new RetryableError('overwritten', 'a new leader replaced the entry; retry', this.leader));
      }
    }
    if (entries.length > 0) this.opts.onApplied?.(this.applied);
    if (this.readsWaitingApply.length > 0) {
      const waiting: PendingRead[] = [];
      for (const r of this.readsWaitingApply) {
        if (r.index <= this.applied) {
          r.resolve();
        } else {
          waiting.push(r);
        }
      }
      this.readsWaitingApply = waiting;
    }
  }

  /**
   * A snapshot costs time in proportion to the whole state, so one is taken only once the log
   * since the last has grown to that state's size (as Redis rewrites its append-only file when
   * it has doubled): the cost per written byte stays constant however large the store, and the
   * log kept until then is at most about one and a half snapshots' size (`snapshotSpread`).
   * `snapshotEveryEntries` is the floor.
   */
  private maybeSnapshot(): void {
    const raft = this.raft!;
    if (
      this.snapshotting ||
      this.capturing ||
      this.applied - this.lastSnapshotIndex < this.opts.snapshotEveryEntries * this.snapshotSpread ||
      this.bytesSinceSnapshot < this.lastSnapshotBytes * this.snapshotSpread ||
      !this.snapshotTurn(raft)
    )
      return;
    const sm = this.opts.stateMachine;
    const index = this.applied;
    this.bytesSinceSnapshot = 0;
    this.snapshotSpread = 1 + this.random() / 2;
    const chunks: Uint8Array[] = [];
    let total = 0;
    // Made once the stream is pulled to its end; the chunks are then copied into it in order.
    let assembled: Buffer | null = null;
    let copied = 0;
    let offset = 0;
    const captureBegan = performance.now();
    const stream = (sm.snapshotChunks ? sm.snapshotChunks() : [sm.snapshot()])[Symbol.iterator]();
    this.capturing = true;
    // Pull the stream in slices of about a millisecond; between slices the Ready loop runs
    // (messages, persistence, applies) while the stream keeps its view as of `index`. Then copy
    // the chunks into one buffer, also in slices: tens of MB copied in one go (Buffer.concat)
    // held the loop for 20-50 ms, mostly page faults on the fresh allocation.
    let yields = 0;
    const slice = () => {
      try {
        if (this.stopped) {
          this.capturing = false;
          if (assembled === null) stream.return?.();
          return;
        }
        // A slice queued in the last loop turn runs before the Ready turn that requests read in
        // this one have queued (both are immediates); let that turn go first, since the
        // requests wait on it and the capture waits on nothing.
        if (this.scheduled && yields < CAPTURE_MAX_YIELDS) {
          yields++;
          setImmediate(slice);
          return;
        }
        yields = 0;
        const began = performance.now();
        const sliceOver = () => performance.now() - began > CAPTURE_SLICE_MS;
        while (assembled === null) {
          const next = stream.next();
          if (next.done) {
            assembled = Buffer.allocUnsafe(total);
            break;
          }
          chunks.push(next.value);
          total += next.value.byteLength;
          if (sliceOver()) {
            setImmediate(slice);
            return;
          }
        }
        while (copied < chunks.length) {
          const chunk = chunks[copied]!;
          assembled.set(chunk, offset);
          offset += chunk.byteLength;
          chunks[copied++] = EMPTY;
          if (sliceOver() && copied < chunks.length) {
            setImmediate(slice);
            return;
          }
        }
        invariant(offset === total, 'snapshot assembled to its size');
        this.capturing = false;
        this.persistSnapshot(raft, index, assembled, performance.now() - captureBegan);
        this.schedule();
      } catch (err) {
        this.capturing = false;
        this.stopped = true;
        if (this.ticker) clearInterval(this.ticker);
        this.opts.onFatal?.(err);
      }
    };
    slice();
  }

  /**
   * Whether this server may start a capture now. Every voter applies the same entries, so all
   * of them reach the threshold at about the same time, and a capture of a large state costs
   * each a share of the CPU for a good part of a second. A write commits on a quorum, so it
   * waits on one slow voter only if another is slow too; a request served by a capturing
   * server waits on it in any case. So voters take turns: the applied index, in windows of
   * `snapshotEveryEntries`, gives the turn to voter (window mod voters), in sorted-id order. A
   * server waits at most (voters - 1) windows past its threshold. Learners, single servers and
   * small states (cheap captures) do not wait.
   */
  private snapshotTurn(raft: RaftNode): boolean {
    if (this.lastSnapshotBytes < STAGGER_FROM_BYTES) return true;
    const voters = raft.currentVoters();
    if (voters.length < 2 || !voters.includes(this.opts.id)) return true;
    // Our place in sorted-id order, without sorting a copy on every Ready turn while we wait.
    let place = 0;
    for (const voter of voters) if (voter < this.opts.id) place++;
    return Math.floor(this.applied / this.opts.snapshotEveryEntries) % voters.length === place;
  }

  private persistSnapshot(raft: RaftNode, index: number, data: Uint8Array, captureMs: number): void {
    // null: a snapshot from the leader overtook this one while it was captured.
    const snap = raft.installAppSnapshot(index, data);
    if (!snap) return;
    this.snapshotting = true;
    this.lastSnapshotIndex = snap.meta.index;
    this.lastSnapshotBytes = data.byteLength;
    const saveBegan = performance.now();
    this.opts.storage.saveSnapshot(snap).then(
      () => {
        this.snapshotting = false;
        this.opts.onSnapshotSaved?.({
          index: snap.meta.index,
          bytes: data.byteLength,
          captureMs: Math.round(captureMs),
          saveMs: Math.round(performance.now() - saveBegan),
        });
        // Compact memory only once the snapshot is durable (the WAL's G5).
        raft.compact(Math.max(0, snap.meta.index - this.opts.keepEntriesAfterSnapshot));
        raft.releaseSnapshotData(snap.meta.index);
      },
      (err: unknown) => {
        this.snapshotting = false;
        this.opts.onFatal?.(err);
      },
    );
  }

  /** Hand a message to the transport; a snapshot only storage holds is read back first. */
  private deliver(m: Message): void {
    if (m.type === MessageType.Snap && m.snapshot?.data === SNAPSHOT_DATA_ON_DISK) {
      void this.sendSnapshotFromDisk(m, m.snapshot);
      return;
    }
    this.opts.send(m);
  }

  /**
   * Send a snapshot whose data the node released. If storage no longer keeps it (a newer one
   * replaced it meanwhile) or cannot read it, the follower goes back to probing, and the next
   * attempt takes the newest snapshot.
   */
  private async sendSnapshotFromDisk(m: Message, snapshot: Snapshot): Promise<void> {
    let data: Uint8Array | null = null;
    try {
      data = await this.opts.storage.readSnapshot(snapshot.meta);
    } catch {
      data = null;
    }
    if (this.stopped || !this.raft) return;
    if (data === null) {
      this.raft.reportSnapshot(m.to, false);
      this.schedule();
      return;
    }
    this.opts.send({ ...m, snapshot: { meta: snapshot.meta, data } });
    this.opts.flush?.();
  }

  private track(index: number, term: number): Promise<unknown> {
    return new Promise((resolve, reject) => {
      // A proposal still waiting at this index lost its entry to a newer one; it goes first, so
      // that the new proposal takes the end of the insertion (deadline) order.
      const stale = this.proposals.get(index);
      if (stale) {
        this.proposals.delete(index);
        stale.reject(
          new RetryableError('overwritten', 'a new leader replaced the entry; retry', this.leader),
        );
      }
      const deadline = performance.now() + this.opts.requestTimeoutMs;
      this.proposals.set(index, { term, resolve, reject, deadline });
      this.proposalTimer ??= setTimeout(this.expireProposals, this.opts.requestTimeoutMs);
    });
  }

  /** Fail the proposals past their deadline (the oldest first), and wait for the next one. */
  private readonly expireProposals = (): void => {
    this.proposalTimer = null;
    const now = performance.now();
    for (const [index, p] of this.proposals) {
      if (p.deadline > now) {
        this.proposalTimer = setTimeout(this.expireProposals, Math.ceil(p.deadline - now));
        return;
      }
      this.proposals.delete(index);
      p.reject(
        new RetryableError(
          'timeout',
          `timed out after ${this.opts.requestTimeoutMs}ms waiting for entry ${index} to commit; it may or may not be applied later`,
        ),
      );
    }
  };

  private refusal(reason: string, message: string): RetryableError {
    switch (reason) {
      case 'not-leader':
        return new RetryableError(this.leader ? 'not-leader' : 'no-leader', message, this.leader);
      case 'transferring':
        return new RetryableError('transferring', message, this.leader);
      case 'busy':
        return new RetryableError('busy', message, this.leader);
      default:
        return new RetryableError('overloaded', message, this.leader);
    }
  }

  /** Fail reads still waiting for a read index; with `all`, also those waiting to apply one. */
  private failReads(err: Error, all: boolean): void {
    for (const batch of this.reads.values()) {
      for (const r of batch) {
        r.reject(err);
      }
    }
    this.reads.clear();
    if (!all) return;
    for (const r of this.openReads) {
      r.reject(err);
    }
    this.openReads = [];
    for (const r of this.readsWaitingApply) {
      r.reject(err);
    }
    this.readsWaitingApply = [];
  }
}
