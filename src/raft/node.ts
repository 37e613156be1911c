import { invariant } from './assert.js';
import { RaftLog } from './log.js';
import { applyConfChange, Membership } from './membership.js';
import { Progress } from './progress.js';
import { committedValue, voteResult } from './quorum.js';
import type {
  ConfChange,
  ConfigState,
  Entry,
  HardState,
  Message,
  NodeId,
  ReadFailure,
  ReadState,
  Ready,
  Role,
  Snapshot,
  SoftState,
} from './types.js';
import { EntryType, MessageType, SNAPSHOT_DATA_ON_DISK } from './types.js';

/**
 * Deliberate bugs the simulator switches on to prove its checkers can fail. Never set outside
 * tests (FoundationDB's "buggify", inverted: these break the protocol on purpose).
 */
export interface InjectedBugs {
  /** Commit an entry of an older term by counting replicas (the Figure 8 mistake, §5.4.2). */
  commitOldTermByCount?: boolean;
  /** Grant votes without the §5.4.1 up-to-date check. */
  voteForStaleLog?: boolean;
  /** Allow a configuration change before the leader commits an entry of its term (2015 erratum). */
  skipConfChangeErratum?: boolean;
  /** Answer ReadIndex at once, without confirming leadership with a heartbeat round (§6.4). */
  readWithoutQuorumCheck?: boolean;
}

export interface RaftOptions {
  id: NodeId;
  /** Election timeout in ticks; the actual timeout is random in [electionTicks, 2*electionTicks). */
  electionTicks: number;
  heartbeatTicks: number;
  /** Uniform in [0, 1), from a seeded PRNG: the core has no randomness of its own. */
  random: () => number;
  preVote?: boolean;
  checkQuorum?: boolean;
  /**
   * 'safe' (default): ReadIndex confirms leadership with a heartbeat round (thesis §6.4).
   * 'lease': the leader answers from its commit index at once while its lease holds: until an
   * election timeout (less one tick) after sending the last heartbeat round a majority
   * acknowledged (thesis §6.4.1); otherwise it falls back to a heartbeat round. This assumes
   * ticks advance at nearly the same rate on all servers and that a leader is never paused (GC,
   * SIGSTOP, a frozen VM) between deciding a read and answering it; it needs checkQuorum.
   */
  readMode?: 'safe' | 'lease';
  maxAppendBytes?: number;
  maxInflightMessages?: number;
  maxInflightBytes?: number;
  /** Proposals are refused once this many bytes of entries await commit (bounded memory). */
  maxUncommittedBytes?: number;
  /** Upper bound on the bytes of committed entries handed out in one Ready. */
  maxApplyBytesPerReady?: number;
  bugs?: InjectedBugs;
}

/** What storage recovered (all empty for a brand-new server). */
export interface RaftRecoveredState {
  hardState: HardState;
  snapshot: Snapshot | null;
  entries: Entry[];
}

export type ProposeResult =
  | { ok: true; index: number; term: number }
  | { ok: false; reason: 'not-leader' | 'transferring' | 'overloaded' | 'busy' | 'invalid'; message: string };

export interface RaftStatus {
  id: NodeId;
  role: Role;
  term: number;
  vote: NodeId;
  leader: NodeId;
  commit: number;
  applied: number;
  lastIndex: number;
  stableIndex: number;
  snapshotIndex: number;
  config: ConfigState;
  leadTransferee: NodeId;
  progress: Record<NodeId, { match: number; next: number; state: string; recentActive: boolean }>;
}

interface PendingRead {
  context: string;
  index: number;
  seq: number;
  /** '' = this server's own reader; otherwise the follower that forwarded it. */
  from: NodeId;
}

const EMPTY = new Uint8Array(0);

/**
 * Messages that carry no promise about the sender's disk: a leader's appends, heartbeats,
 * snapshots and TimeoutNow (its term and vote were persisted before it could win), and
 * ReadIndex traffic. Votes and acknowledgements are not among them.
 */
function sendsBeforePersist(m: Message): boolean {
  switch (m.type) {
    case MessageType.App:
    case MessageType.Heartbeat:
    case MessageType.Snap:
    case MessageType.TimeoutNow:
    case MessageType.ReadIndex:
      return true;
    default:
      return false;
  }
}

/**
 * One server's Raft state machine, shaped like etcd-io/raft's RawNode: inputs are `tick`,
 * `step`, `propose`, `proposeConfChange`, `readIndex`, `transferLeadership` and snapshot
 * calls; outputs come out of `ready()` and are acknowledged with `advance()`. See `Ready` for
 * the durability rule the shell must follow.
 */
export class RaftNode {
  readonly id: NodeId;
  private readonly opts: Required<Omit<RaftOptions, 'bugs'>> & { bugs: InjectedBugs };
  private readonly log: RaftLog;
  private readonly membership: Membership;

  private term = 0;
  private vote: NodeId = '';
  private lead: NodeId = '';
  private role: Role = 'follower';
  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  private votes = new Map<NodeId, boolean>();
  private progress = new Map<NodeId, Progress>();
  private leadTransferee: NodeId = '';
  /**
   * This leader sent TimeoutNow in its term. The target campaigns at once and voters let it past
   * their lease (§3.10), so a new leader may exist before our lease runs out: no lease reads for
   * the rest of this term.
   */
  private leaseForfeited = false;

  private msgs: Message[] = [];
  /** Followers that need an append (new entries or a commit update), sent in the next Ready. */
  private appendDue = new Set<NodeId>();
  /** Reused for the per-voter values quorum arithmetic reads (no array per call on the write path). */
  private readonly quorumScratch: number[] = [];
  private heartbeatDue = false;

  /** Ticks since this node started: the leader lease is measured in them. */
  private tickCount = 0;
  /** Heartbeat rounds: the last one sent, and the tick each recent one was sent at (lease reads). */
  private readSeq = 0;
  private roundSentTick = new Map<number, number>();
  private readQueue: PendingRead[] = [];
  /** Reads that arrived before this leader committed an entry of its term (§6.4 step 1). */
  private readsAwaitingCommit: PendingRead[] = [];
  private readStates: ReadState[] = [];
  private readFailures: ReadFailure[] = [];

  private lastSoft: SoftState;
  private lastHard: HardState;
  private readyInFlight = false;

  constructor(options: RaftOptions, recovered: RaftRecoveredState, initialConfig?: ConfigState) {
    invariant(options.id !== '', 'node id must not be empty');
    invariant(options.electionTicks > options.heartbeatTicks, 'electionTicks must exceed heartbeatTicks');
    invariant(options.heartbeatTicks > 0, 'heartbeatTicks must be positive');
    this.id = options.id;
    this.opts = {
      preVote: true,
      checkQuorum: true,
      readMode: 'safe',
      maxAppendBytes: 1 << 20,
      maxInflightMessages: 256,
      maxInflightBytes: 32 << 20,
      maxUncommittedBytes: 256 << 20,
      maxApplyBytesPerReady: 64 << 20,
      ...options,
      bugs: options.bugs ?? {},
    };
    invariant(this.opts.readMode === 'safe' || this.opts.checkQuorum, "readMode 'lease' needs checkQuorum");
    const { hardState, snapshot, entries } = recovered;
    this.log = RaftLog.recover(snapshot, entries, hardState.commit);
    const base = snapshot?.meta.config ?? initialConfig ?? { voters: [], learners: [] };
    this.membership = new Membership(base, this.log.offsetIndex);
    this.membership.onAppend(entries);
    this.term = hardState.term;
    this.vote = hardState.vote;
    this.lastHard = { ...hardState, commit: this.log.committed };
    this.lastSoft = { leader: '', role: 'follower' };
    this.becomeFollower(this.term, '');
  }

  /** The one entry a new cluster's servers all start from (etcd writes the same at bootstrap). */
  /** The first entry of a new cluster; `data` is opaque to Raft (the server puts its directory there). */
  static bootstrapEntry(voters: NodeId[], data: Uint8Array = EMPTY): Entry {
    invariant(voters.length > 0, 'bootstrap needs at least one voter');
    return {
      term: 1,
      index: 1,
      type: EntryType.ConfChange,
      data,
      config: { voters: [...new Set(voters)].sort(), learners: [] },
    };
  }

  // ---------------------------------------------------------------- inputs

  tick(): void {
    this.tickCount++;
    this.electionElapsed++;
    if (this.role === 'leader') {
      this.heartbeatElapsed++;
      if (this.electionElapsed >= this.opts.electionTicks) {
        this.electionElapsed = 0;
        if (this.opts.checkQuorum && !this.quorumActive()) {
          // §6.2 / thesis §3.6: a leader that cannot reach a majority steps down.
          this.becomeFollower(this.term, '');
          return;
        }
        if (this.leadTransferee !== '') this.leadTransferee = ''; // transfer timed out (thesis §3.10)
      }
      if (this.heartbeatElapsed >= this.opts.heartbeatTicks) {
        this.heartbeatElapsed = 0;
        this.heartbeatDue = true;
      }
      return;
    }
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.campaign(this.opts.preVote ? 'pre' : 'real', false);
    }
  }

  step(m: Message): void {
    invariant(m.to === this.id, () => `message for ${m.to} delivered to ${this.id}`);
    if (m.term > this.term) {
      if (m.type === MessageType.PreVote || m.type === MessageType.Vote) {
        // Thesis §4.2.3: a server that heard from a leader within the election timeout
        // ignores vote requests, so a removed or partitioned server cannot depose it.
        const inLease =
          this.opts.checkQuorum && this.lead !== '' && this.electionElapsed < this.opts.electionTicks;
        if (inLease && !m.transfer) return;
      }
      if (m.type === MessageType.PreVote) {
        // A pre-vote never changes our term.
      } else if (m.type === MessageType.PreVoteResp && !m.reject) {
        // The granted pre-vote carries the term we would campaign in; ours is unchanged.
      } else if (
        m.type === MessageType.App ||
        m.type === MessageType.Heartbeat ||
        m.type === MessageType.Snap
      ) {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, '');
      }
    } else if (m.term < this.term) {
      if (
        (this.opts.checkQuorum || this.opts.preVote) &&
        (m.type === MessageType.App || m.type === MessageType.Heartbeat)
      ) {
        // A stale leader: answer so it learns the newer term and steps down (etcd does the
        // same; without it, pre-vote can leave a partitioned old leader stuck forever).
        this.send({ type: MessageType.AppResp, to: m.from, term: this.term });
      } else if (m.type === MessageType.PreVote) {
        this.send({ type: MessageType.PreVoteResp, to: m.from, term: this.term, reject: true });
      }
      return;
    }

    switch (m.type) {
      case MessageType.PreVote:
      case MessageType.Vote:
        this.handleVoteRequest(m);
        return;
    }

    switch (this.role) {
      case 'leader':
        this.stepLeader(m);
        return;
      case 'candidate':
      case 'pre-candidate':
        this.stepCandidate(m);
        return;
      case 'follower':
        this.stepFollower(m);
        return;
    }
  }

  /** Append one or more commands; only the leader accepts them. */
  propose(datas: Uint8Array[]): ProposeResult {
    const refusal = this.refuseProposal();
    if (refusal) return refusal;
    let bytes = 0;
    for (const d of datas) bytes += d.byteLength;
    if (this.log.uncommittedBytes > 0 && this.log.uncommittedBytes + bytes > this.opts.maxUncommittedBytes) {
      return { ok: false, reason: 'overloaded', message: 'too many uncommitted entries' };
    }
    const first = this.log.lastIndex() + 1;
    const entries: Entry[] = datas.map((data, i) => ({
      term: this.term,
      index: first + i,
      type: EntryType.Normal,
      data,
    }));
    this.appendAsLeader(entries);
    return { ok: true, index: this.log.lastIndex(), term: this.term };
  }

  /**
   * One single-server membership change (thesis §4.1–4.3). Refused while another change is
   * uncommitted, and — Ongaro's 2015 erratum — until this leader has committed an entry of its
   * own term, so a change from a previous term cannot be silently overridden.
   */
  proposeConfChange(change: ConfChange): ProposeResult {
    const refusal = this.refuseProposal();
    if (refusal) return refusal;
    if (this.membership.currentIndex() > this.log.committed) {
      return { ok: false, reason: 'busy', message: 'another configuration change is in progress' };
    }
    if (!this.opts.bugs.skipConfChangeErratum && !this.committedInCurrentTerm()) {
      return { ok: false, reason: 'busy', message: 'leader has not yet committed an entry of its term' };
    }
    const next = applyConfChange(this.membership.current(), change);
    if (typeof next === 'string') return { ok: false, reason: 'invalid', message: next };
    const entry: Entry = {
      term: this.term,
      index: this.log.lastIndex() + 1,
      type: EntryType.ConfChange,
      data: EMPTY,
      change,
      config: next,
    };
    this.appendAsLeader([entry]);
    return { ok: true, index: entry.index, term: this.term };
  }

  /**
   * Ask for a linearizable read point (thesis §6.4). The answer arrives in a later Ready as a
   * ReadState (serve once applied >= index) or a ReadFailure.
   */
  readIndex(context: string): void {
    if (this.role === 'leader') {
      this.leaderReadIndex({ context, index: 0, seq: 0, from: '' });
    } else if (this.lead !== '' && this.role === 'follower') {
      this.send({ type: MessageType.ReadIndex, to: this.lead, term: this.term, context });
    } else {
      this.readFailures.push({ context, reason: 'no-leader' });
    }
  }

  /** Leader transfer (thesis §3.10): catch the target up, then tell it to start an election now. */
  transferLeadership(target: NodeId): { ok: boolean; message: string } {
    if (this.role !== 'leader') return { ok: false, message: 'not the leader' };
    if (target === this.id) return { ok: true, message: 'already the leader' };
    if (!this.membership.isVoter(target)) return { ok: false, message: `${target} is not a voter` };
    this.leadTransferee = target;
    this.electionElapsed = 0;
    const pr = this.progress.get(target)!;
    if (pr.match === this.log.lastIndex()) this.sendTimeoutNow(target);
    else this.appendDue.add(target);
    return { ok: true, message: 'transfer started' };
  }

  /**
   * The application's snapshot of its state machine at `index` (<= applied). Returns null when
   * the log has meanwhile moved past `index` (a snapshot from the leader arrived): nothing to do.
   */
  installAppSnapshot(index: number, data: Uint8Array): Snapshot | null {
    invariant(index <= this.log.applied, () => `snapshot at ${index} beyond applied ${this.log.applied}`);
    if (index <= this.log.offsetIndex || this.log.pendingSnapshot) return null;
    const term = this.log.term(index)!;
    const snapshot: Snapshot = { meta: { index, term, config: this.membership.configAt(index) }, data };
    this.log.snapshot = snapshot;
    return snapshot;
  }

  /**
   * Drop the in-memory copy of the latest snapshot's data, which storage holds durably at
   * `index` (tens of MB for a large state, kept only to send to a follower that fell behind).
   * Its messages then carry `SNAPSHOT_DATA_ON_DISK`. A snapshot being installed is kept.
   */
  releaseSnapshotData(index: number): void {
    const snap = this.log.snapshot;
    if (!snap || snap.meta.index !== index || snap === this.log.pendingSnapshot) return;
    this.log.snapshot = { meta: snap.meta, data: SNAPSHOT_DATA_ON_DISK };
  }

  /** Drop in-memory entries up to `index` (covered by the latest snapshot and durable). */
  compact(index: number): void {
    this.log.compact(index);
    this.membership.compact(this.log.offsetIndex);
  }

  /** The shell could not reach a follower; go back to probing it. */
  reportUnreachable(peer: NodeId): void {
    const pr = this.progress.get(peer);
    if (this.role === 'leader' && pr && pr.state === 'replicate') pr.becomeProbe();
  }

  /** The shell finished (or failed) sending a snapshot to a follower. */
  reportSnapshot(peer: NodeId, ok: boolean): void {
    const pr = this.progress.get(peer);
    if (this.role !== 'leader' || !pr || pr.state !== 'snapshot') return;
    if (!ok) pr.pendingSnapshot = 0;
    pr.becomeProbe();
    pr.probeSent = true; // wait for the follower's answer or a heartbeat reply before probing again
  }

  // ---------------------------------------------------------------- outputs

  hasReady(): boolean {
    if (this.readyInFlight) return false;
    return (
      this.msgs.length > 0 ||
      this.appendDue.size > 0 ||
      this.heartbeatDue ||
      this.readStates.length > 0 ||
      this.readFailures.length > 0 ||
      this.log.pendingSnapshot !== null ||
      this.log.unstableFrom <= this.log.lastIndex() ||
      this.hardStateChanged() ||
      this.lastSoft.leader !== this.lead ||
      this.lastSoft.role !== this.role ||
      Math.min(this.log.committed, this.log.stableIndex) > this.log.applied
    );
  }

  ready(): Ready {
    invariant(!this.readyInFlight, 'ready() called again before advance()');
    this.flushSends();
    const messagesNow: Message[] = [];
    const messages: Message[] = [];
    for (const m of this.msgs) (sendsBeforePersist(m) ? messagesNow : messages).push(m);
    const rd: Ready = {
      entries: this.log.unstableEntries(),
      committedEntries: this.log.nextCommitted(this.opts.maxApplyBytesPerReady),
      messagesNow,
      messages,
      readStates: this.readStates,
      readFailures: this.readFailures,
    };
    if (this.log.pendingSnapshot) rd.snapshot = this.log.pendingSnapshot;
    if (this.hardStateChanged()) rd.hardState = this.currentHardState();
    if (this.lastSoft.leader !== this.lead || this.lastSoft.role !== this.role) {
      rd.softState = { leader: this.lead, role: this.role };
      this.lastSoft = rd.softState;
    }
    this.msgs = [];
    this.readStates = [];
    this.readFailures = [];
    this.log.markHandedOut();
    this.readyInFlight = true;
    return rd;
  }

  advance(rd: Ready): void {
    invariant(this.readyInFlight, 'advance() without ready()');
    this.readyInFlight = false;
    if (rd.hardState) this.lastHard = rd.hardState;
    if (rd.snapshot) this.log.snapshotApplied(rd.snapshot.meta.index);
    const last = rd.entries[rd.entries.length - 1];
    if (last) this.log.stableTo(last.index, last.term);
    const applied = rd.committedEntries[rd.committedEntries.length - 1];
    if (applied) this.log.appliedTo(applied.index);
    if (this.role === 'leader' && this.maybeCommit()) this.markAllAppendDue();
  }

  /** The current term and role, without building the whole status (read on every request). */
  currentTerm(): number {
    return this.term;
  }

  currentRole(): Role {
    return this.role;
  }

  /** The voters of the latest configuration in the log (committed or not). */
  currentVoters(): readonly NodeId[] {
    return this.membership.voters();
  }

  status(): RaftStatus {
    const progress: RaftStatus['progress'] = {};
    if (this.role === 'leader') {
      for (const [id, pr] of this.progress) {
        progress[id] = { match: pr.match, next: pr.next, state: pr.state, recentActive: pr.recentActive };
      }
    }
    return {
      id: this.id,
      role: this.role,
      term: this.term,
      vote: this.vote,
      leader: this.lead,
      commit: this.log.committed,
      applied: this.log.applied,
      lastIndex: this.log.lastIndex(),
      stableIndex: this.log.stableIndex,
      snapshotIndex: this.log.snapshot?.meta.index ?? 0,
      config: this.membership.current(),
      leadTransferee: this.leadTransferee,
      progress,
    };
  }

  /** Read-only view of the log for tests and the simulator's checkers. */
  logView(): {
    offsetIndex: number;
    lastIndex: number;
    committed: number;
    term: (i: number) => number | undefined;
    entry: (i: number) => Entry | undefined;
  } {
    const log = this.log;
    return {
      offsetIndex: log.offsetIndex,
      lastIndex: log.lastIndex(),
      committed: log.committed,
      term: (i) => log.term(i),
      entry: (i) => log.entry(i),
    };
  }

  // ---------------------------------------------------------------- roles

  private becomeFollower(term: number, lead: NodeId): void {
    if (this.role === 'leader') this.failLeaderReads('not-leader');
    if (term !== this.term) {
      this.term = term;
      this.vote = '';
    }
    this.role = 'follower';
    this.lead = lead;
    this.resetTimers();
  }

  private campaign(kind: 'pre' | 'real', transfer: boolean): void {
    if (!this.promotable()) return;
    this.votes = new Map();
    let voteTerm: number;
    if (kind === 'pre') {
      // Thesis §9.6: ask first whether we could win, without disturbing anyone's term.
      this.role = 'pre-candidate';
      this.lead = '';
      voteTerm = this.term + 1;
      this.resetTimers();
    } else {
      this.becomeFollower(this.term + 1, '');
      this.role = 'candidate';
      this.vote = this.id;
      voteTerm = this.term;
    }
    this.votes.set(this.id, true);
    if (voteResult(this.membership.voters(), this.votes) === 'won') {
      this.onElectionWon(kind);
      return;
    }
    const type = kind === 'pre' ? MessageType.PreVote : MessageType.Vote;
    for (const voter of this.membership.voters()) {
      if (voter === this.id) continue;
      const m: Message = {
        type,
        to: voter,
        from: this.id,
        term: voteTerm,
        index: this.log.lastIndex(),
        logTerm: this.log.lastTerm(),
      };
      if (transfer) m.transfer = true;
      this.msgs.push(m);
    }
  }

  private onElectionWon(kind: 'pre' | 'real'): void {
    if (kind === 'pre') this.campaign('real', false);
    else this.becomeLeader();
  }

  private becomeLeader(): void {
    invariant(this.role === 'candidate', 'only a candidate becomes leader');
    this.role = 'leader';
    this.lead = this.id;
    this.leadTransferee = '';
    this.leaseForfeited = false;
    this.resetTimers();
    this.readQueue = [];
    this.readsAwaitingCommit = [];
    this.roundSentTick.clear();
    this.progress = new Map();
    for (const id of [...this.membership.voters(), ...this.membership.learners()]) this.addProgress(id);
    // §8: a new leader appends a no-op so it can commit (and learn the commit index) in its term.
    this.appendAsLeader([
      { term: this.term, index: this.log.lastIndex() + 1, type: EntryType.Normal, data: EMPTY },
    ]);
  }

  private resetTimers(): void {
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    const e = this.opts.electionTicks;
    this.randomizedElectionTimeout = e + Math.floor(this.opts.random() * e);
  }

  private promotable(): boolean {
    return this.membership.isVoter(this.id);
  }

  // ---------------------------------------------------------------- votes

  private handleVoteRequest(m: Message): void {
    const isPre = m.type === MessageType.PreVote;
    const canVote =
      this.vote === m.from || (this.vote === '' && this.lead === '') || (isPre && m.term > this.term);
    const upToDate = this.opts.bugs.voteForStaleLog || this.log.isUpToDate(m.index ?? 0, m.logTerm ?? 0);
    const respType = isPre ? MessageType.PreVoteResp : MessageType.VoteResp;
    if (canVote && upToDate) {
      // A granted pre-vote answers in the candidate's prospective term (etcd-io/raft does the same).
      this.send({ type: respType, to: m.from, term: m.term });
      if (!isPre) {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.send({ type: respType, to: m.from, term: this.term, reject: true });
    }
  }

  private stepCandidate(m: Message): void {
    switch (m.type) {
      case MessageType.App:
      case MessageType.Heartbeat:
      case MessageType.Snap:
        // A leader exists in our term (§5.2): return to follower.
        this.becomeFollower(m.term, m.from);
        this.stepFollower(m);
        return;
      case MessageType.PreVoteResp:
      case MessageType.VoteResp: {
        const expected = this.role === 'pre-candidate' ? MessageType.PreVoteResp : MessageType.VoteResp;
        if (m.type !== expected || !this.membership.isVoter(m.from)) return;
        this.votes.set(m.from, !m.reject);
        const result = voteResult(this.membership.voters(), this.votes);
        if (result === 'won') this.onElectionWon(this.role === 'pre-candidate' ? 'pre' : 'real');
        else if (result === 'lost') this.becomeFollower(this.term, '');
        return;
      }
      case MessageType.ReadIndexResp:
      case MessageType.ReadIndex:
        this.stepReadTraffic(m);
        return;
    }
  }

  // ---------------------------------------------------------------- follower

  private stepFollower(m: Message): void {
    switch (m.type) {
      case MessageType.App:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppend(m);
        return;
      case MessageType.Heartbeat:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleHeartbeat(m);
        return;
      case MessageType.Snap:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        return;
      case MessageType.TimeoutNow:
        // Thesis §3.10: start an election at once, skipping pre-vote; voters let it past their lease.
        this.campaign('real', true);
        return;
      case MessageType.ReadIndexResp:
      case MessageType.ReadIndex:
        this.stepReadTraffic(m);
        return;
    }
  }

  private handleAppend(m: Message): void {
    const prevIndex = m.index!;
    if (prevIndex < this.log.committed) {
      this.send({ type: MessageType.AppResp, to: m.from, term: this.term, index: this.log.committed });
      return;
    }
    const entries = m.entries ?? [];
    const lastNew = this.log.maybeAppend(prevIndex, m.logTerm!, m.commit ?? 0, entries, (from) =>
      this.membership.onTruncate(from),
    );
    if (lastNew !== null) {
      this.membership.onAppend(entries);
      if (!m.commitOnly || entries.length > 0)
        this.send({ type: MessageType.AppResp, to: m.from, term: this.term, index: lastNew });
      return;
    }
    // Fast backtracking (thesis §5.3, etcd-io/raft): point the leader at the last index whose
    // term is not newer than the rejected probe's term.
    const hintIndex = this.log.findConflictByTerm(Math.min(prevIndex, this.log.lastIndex()), m.logTerm!);
    this.send({
      type: MessageType.AppResp,
      to: m.from,
      term: this.term,
      index: prevIndex,
      reject: true,
      rejectHint: hintIndex,
      logTerm: this.log.term(hintIndex) ?? 0,
    });
  }

  private handleHeartbeat(m: Message): void {
    const commit = Math.min(m.commit ?? 0, this.log.lastIndex());
    this.log.commitTo(commit);
    const resp: Omit<Message, 'from'> = { type: MessageType.HeartbeatResp, to: m.from, term: this.term };
    if (m.readSeq) resp.readSeq = m.readSeq;
    this.send(resp);
  }

  private handleSnapshot(m: Message): void {
    const snap = m.snapshot!;
    const { index, term } = snap.meta;
    if (index <= this.log.committed) {
      this.send({ type: MessageType.AppResp, to: m.from, term: this.term, index: this.log.committed });
      return;
    }
    if (this.log.matchTerm(index, term)) {
      // We already have the entry the snapshot ends at: just fast-forward commit (etcd-io/raft).
      // Answer with the commit index, not our last index: entries after it may not match the leader.
      this.log.commitTo(index);
      this.send({ type: MessageType.AppResp, to: m.from, term: this.term, index: this.log.committed });
      return;
    }
    this.log.restore(snap);
    this.membership.restore(snap.meta.config, index);
    this.send({ type: MessageType.AppResp, to: m.from, term: this.term, index });
  }

  // ---------------------------------------------------------------- leader

  private stepLeader(m: Message): void {
    const pr = this.progress.get(m.from);
    switch (m.type) {
      case MessageType.AppResp: {
        if (!pr) return;
        pr.recentActive = true;
        if (m.reject) {
          let hint = m.rejectHint ?? 0;
          if ((m.logTerm ?? 0) > 0) hint = this.log.findConflictByTerm(hint, m.logTerm!);
          if (pr.maybeDecrTo(m.index!, hint)) {
            if (pr.state === 'replicate') pr.becomeProbe();
            this.appendDue.add(m.from);
          }
          return;
        }
        if (m.index === undefined) return; // a stale follower's "newer term exists" notice, already handled
        const wasPaused = pr.isPaused();
        if (pr.maybeUpdate(m.index)) {
          if (pr.state === 'probe') pr.becomeReplicate();
          else if (pr.state === 'snapshot' && pr.match >= pr.pendingSnapshot) pr.becomeReplicate();
          else if (pr.state === 'replicate') pr.inflights.freeTo(m.index);
          if (this.maybeCommit()) this.markAllAppendDue();
          else if (wasPaused || pr.match < this.log.lastIndex()) this.appendDue.add(m.from);
          if (m.from === this.leadTransferee && pr.match === this.log.lastIndex())
            this.sendTimeoutNow(m.from);
        } else if (pr.state === 'replicate') {
          pr.inflights.freeTo(m.index);
        }
        return;
      }
      case MessageType.HeartbeatResp: {
        if (!pr) return;
        pr.recentActive = true;
        pr.probeSent = false;
        // A full window whose appends were lost would stall forever: free one slot so the next
        // append reveals the gap (etcd-io/raft frees the first inflight here too).
        if (pr.state === 'replicate' && pr.inflights.full()) pr.inflights.freeFirstOne();
        // A snapshot that never arrived: after an election timeout of heartbeats, probe again.
        if (pr.state === 'snapshot' && ++pr.snapshotStalledHeartbeats > this.opts.electionTicks)
          pr.becomeProbe();
        if (pr.match < this.log.lastIndex()) this.appendDue.add(m.from);
        if (m.readSeq && m.readSeq > pr.readSeqAcked) {
          pr.readSeqAcked = m.readSeq;
          this.advanceReads();
        }
        return;
      }
      case MessageType.ReadIndex:
        this.leaderReadIndex({ context: m.context!, index: 0, seq: 0, from: m.from });
        return;
      case MessageType.PreVoteResp:
      case MessageType.VoteResp:
      case MessageType.TimeoutNow:
      case MessageType.ReadIndexResp:
        return;
      case MessageType.App:
      case MessageType.Heartbeat:
      case MessageType.Snap:
        invariant(false, () => `two leaders in term ${this.term}: ${this.id} and ${m.from}`);
    }
  }

  private refuseProposal(): ProposeResult | null {
    if (this.role !== 'leader') return { ok: false, reason: 'not-leader', message: 'not the leader' };
    if (this.leadTransferee !== '') {
      return { ok: false, reason: 'transferring', message: 'leadership transfer in progress' };
    }
    return null;
  }

  private appendAsLeader(entries: Entry[]): void {
    this.log.append(entries);
    if (this.membership.onAppend(entries)) this.syncProgressWithConfig();
    this.markAllAppendDue();
    if (this.maybeCommit()) this.markAllAppendDue();
  }

  private addProgress(id: NodeId): void {
    const pr = new Progress(
      this.log.lastIndex() + 1,
      this.opts.maxInflightMessages,
      this.opts.maxInflightBytes,
    );
    if (id === this.id) {
      pr.match = this.log.stableIndex;
      pr.becomeReplicate();
    }
    pr.recentActive = true;
    this.progress.set(id, pr);
  }

  private syncProgressWithConfig(): void {
    const members = new Set([...this.membership.voters(), ...this.membership.learners()]);
    for (const id of members) if (!this.progress.has(id)) this.addProgress(id);
    for (const id of [...this.progress.keys()]) {
      if (!members.has(id) && id !== this.id) this.progress.delete(id);
    }
    if (this.leadTransferee !== '' && !this.membership.isVoter(this.leadTransferee)) this.leadTransferee = '';
  }

  private markAllAppendDue(): void {
    for (const id of this.progress.keys()) if (id !== this.id) this.appendDue.add(id);
  }

  private committedInCurrentTerm(): boolean {
    return this.log.term(this.log.committed) === this.term;
  }

  /**
   * Advance the commit index to the highest index stored on a majority of voters — but only if
   * that entry is from the current term (§5.4.2, Figure 8). Earlier entries commit with it.
   */
  private maybeCommit(): boolean {
    const self = this.progress.get(this.id);
    if (self) self.match = this.log.stableIndex;
    const matches = this.quorumScratch;
    matches.length = 0;
    for (const v of this.membership.voters()) matches.push(this.progress.get(v)?.match ?? 0);
    const candidate = committedValue(matches);
    if (candidate <= this.log.committed) return false;
    if (this.log.term(candidate) !== this.term && !this.opts.bugs.commitOldTermByCount) return false;
    const hadCommittedInTerm = this.committedInCurrentTerm();
    this.log.commitTo(candidate);
    if (!hadCommittedInTerm && this.committedInCurrentTerm()) this.releaseReadsAwaitingCommit();
    // Thesis §4.2.2: a leader removed from the configuration steps down once the change commits.
    if (!this.membership.isVoter(this.id) && this.membership.currentIndex() <= this.log.committed) {
      this.becomeFollower(this.term, '');
    }
    return true;
  }

  private quorumActive(): boolean {
    const active = new Map<NodeId, boolean>();
    for (const v of this.membership.voters()) {
      const pr = this.progress.get(v);
      active.set(v, v === this.id || (pr?.recentActive ?? false));
    }
    for (const [id, pr] of this.progress) if (id !== this.id) pr.recentActive = false;
    return voteResult(this.membership.voters(), active) === 'won';
  }

  private sendTimeoutNow(to: NodeId): void {
    this.leaseForfeited = true;
    // Thesis §3.10: the transfer is aborted an election timeout from now, not from its start.
    // A target caught up late would otherwise campaign just as we resume taking writes, with a
    // log the voters no longer find up to date: it deposes us and loses.
    this.electionElapsed = 0;
    this.send({ type: MessageType.TimeoutNow, to, term: this.term });
  }

  // ---------------------------------------------------------------- ReadIndex (thesis §6.4)

  private leaderReadIndex(read: PendingRead): void {
    if (!this.committedInCurrentTerm()) {
      // Step 1: until the leader commits an entry of its term it does not know the commit index.
      this.readsAwaitingCommit.push(read);
      return;
    }
    read.index = this.log.committed;
    const singleVoter = this.membership.voters().length === 1 && this.membership.isVoter(this.id);
    if (
      singleVoter ||
      this.opts.bugs.readWithoutQuorumCheck ||
      (this.opts.readMode === 'lease' && this.leaseValid())
    ) {
      this.resolveRead(read);
      return;
    }
    // Served once a majority acknowledges the next heartbeat round (sent with the next Ready).
    read.seq = this.readSeq + 1;
    this.readQueue.push(read);
    this.heartbeatDue = true;
  }

  /**
   * Thesis §6.4.1: no other leader can exist until an election timeout after the start of the
   * last heartbeat round a majority acknowledged (followers ignore candidates that long after
   * hearing from us). One tick of margin covers ticks that are not aligned across servers.
   */
  private leaseValid(): boolean {
    if (this.leaseForfeited) return false;
    const confirmed = this.confirmedRound();
    const sentTick = this.roundSentTick.get(confirmed);
    if (sentTick === undefined) return false;
    for (const seq of this.roundSentTick.keys()) {
      if (seq >= confirmed) break;
      this.roundSentTick.delete(seq);
    }
    return this.tickCount < sentTick + this.opts.electionTicks - 1;
  }

  /** The latest heartbeat round acknowledged by a majority of voters (this leader included). */
  private confirmedRound(): number {
    const acked = this.quorumScratch;
    acked.length = 0;
    for (const v of this.membership.voters()) {
      acked.push(v === this.id ? this.readSeq : (this.progress.get(v)?.readSeqAcked ?? 0));
    }
    return committedValue(acked);
  }

  private releaseReadsAwaitingCommit(): void {
    const reads = this.readsAwaitingCommit;
    this.readsAwaitingCommit = [];
    for (const r of reads) this.leaderReadIndex(r);
  }

  /** Serve every queued read whose heartbeat round a majority of voters acknowledged. */
  private advanceReads(): void {
    if (this.readQueue.length === 0) return;
    const confirmed = this.confirmedRound();
    let served = 0;
    while (served < this.readQueue.length && this.readQueue[served]!.seq <= confirmed) {
      this.resolveRead(this.readQueue[served]!);
      served++;
    }
    if (served > 0) this.readQueue = this.readQueue.slice(served);
  }

  private resolveRead(read: PendingRead): void {
    if (read.from === '' || read.from === this.id) {
      this.readStates.push({ context: read.context, index: read.index });
    } else {
      this.send({
        type: MessageType.ReadIndexResp,
        to: read.from,
        term: this.term,
        context: read.context,
        index: read.index,
      });
    }
  }

  private failLeaderReads(reason: ReadFailure['reason']): void {
    for (const r of [...this.readQueue, ...this.readsAwaitingCommit]) {
      if (r.from === '' || r.from === this.id) this.readFailures.push({ context: r.context, reason });
      else this.rejectForwardedRead(r.from, r.context);
    }
    this.readQueue = [];
    this.readsAwaitingCommit = [];
  }

  /** A follower forwarded a read to us but we cannot serve it: tell it, so its reader retries now. */
  private rejectForwardedRead(to: NodeId, context: string): void {
    this.send({ type: MessageType.ReadIndexResp, to, term: this.term, context, reject: true });
  }

  /** ReadIndex traffic at a server that is not the leader. */
  private stepReadTraffic(m: Message): void {
    if (m.type === MessageType.ReadIndex) {
      // Forwarded to a server that is no longer leader: tell the reader to retry.
      this.rejectForwardedRead(m.from, m.context!);
    } else if (m.reject) {
      this.readFailures.push({ context: m.context!, reason: 'dropped' });
    } else {
      this.readStates.push({ context: m.context!, index: m.index! });
    }
  }

  // ---------------------------------------------------------------- sending

  private send(m: Omit<Message, 'from'>): void {
    // Every message is built fresh by its caller, so it is completed in place (a copy per
    // message was a noticeable share of a leader's allocation per write).
    (m as Message).from = this.id;
    this.msgs.push(m as Message);
  }

  private flushSends(): void {
    if (this.role !== 'leader') {
      this.appendDue.clear();
      this.heartbeatDue = false;
      return;
    }
    if (this.heartbeatDue) {
      this.heartbeatDue = false;
      // Every heartbeat round is numbered: ReadIndex and the leader lease count its acks.
      this.readSeq++;
      this.roundSentTick.set(this.readSeq, this.tickCount);
      if (this.roundSentTick.size > 1024) this.roundSentTick.delete(this.roundSentTick.keys().next().value!);
      for (const [id, pr] of this.progress) {
        if (id === this.id) continue;
        const m: Omit<Message, 'from'> = {
          type: MessageType.Heartbeat,
          to: id,
          term: this.term,
          commit: Math.min(pr.match, this.log.committed),
        };
        m.readSeq = this.readSeq;
        this.send(m);
      }
    }
    for (const id of this.appendDue) {
      const pr = this.progress.get(id);
      if (!pr) continue;
      // Pipelining (thesis §10.2.2): in replicate state keep sending until the window is full.
      let first = true;
      while (this.sendAppend(id, pr, first)) first = false;
    }
    this.appendDue.clear();
  }

  /** Send one append (or snapshot) to a follower. Returns whether another may follow at once. */
  private sendAppend(to: NodeId, pr: Progress, sendIfEmpty: boolean): boolean {
    if (pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    const entries =
      prevTerm === undefined ? null : this.log.slice(pr.next, this.log.lastIndex(), this.opts.maxAppendBytes);
    if (prevTerm === undefined || entries === null) {
      // The entries this follower needs were compacted away: send the snapshot (§7).
      const snap = this.log.snapshot;
      if (!pr.recentActive || !snap) return false;
      pr.becomeSnapshot(snap.meta.index);
      this.send({ type: MessageType.Snap, to, term: this.term, snapshot: snap });
      return false;
    }
    if (entries.length === 0 && !sendIfEmpty) return false;
    const m: Omit<Message, 'from'> = {
      type: MessageType.App,
      to,
      term: this.term,
      index: prevIndex,
      logTerm: prevTerm,
      entries,
      commit: this.log.committed,
    };
    // In replicate state an empty append only moves the follower's commit index: its answer
    // would change no progress (nothing in flight, nothing paused), so none is asked for.
    if (entries.length === 0 && pr.state === 'replicate') m.commitOnly = true;
    this.send(m);
    const last = entries[entries.length - 1];
    if (!last) return false;
    if (pr.state === 'replicate') {
      let bytes = 0;
      for (const e of entries) bytes += e.data.byteLength;
      pr.next = last.index + 1;
      pr.inflights.add(last.index, bytes);
      return pr.next <= this.log.lastIndex();
    }
    pr.probeSent = true;
    return false;
  }

  private currentHardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  private hardStateChanged(): boolean {
    const h = this.lastHard;
    return h.term !== this.term || h.vote !== this.vote || h.commit !== this.log.committed;
  }
}
