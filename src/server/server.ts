import { createHash, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { RaftStatus } from '../raft/node.js';
import { EntryType, type NodeId } from '../raft/types.js';
import { MemoryStorage, type RaftLogStorage, WalStorage } from '../storage/index.js';
import { encodeCommand, type Result, type Store, type StoreOptions } from '../store/index.js';
import { PeerTransport, TransportError } from '../transport/peer-transport.js';
import { encodeBootstrap, encodeServerInfo, type ServerInfo } from './directory.js';
import { loadClusterId, saveClusterId } from './identity.js';
import { LeaderDuties } from './leader-duties.js';
import type { Logger } from './logger.js';
import {
  type CommandBody,
  type DiscoverAnswer,
  fromWireError,
  type PeerAnswer,
  type PeerRequest,
  resultFromWire,
  resultToWire,
  toWireError,
} from './peer-rpc.js';
import { RaftHost, RetryableError } from './raft-host.js';
import { ReplicatedState } from './replicated-state.js';

/**
 * One Conclave server: the Raft host, its log storage, the peer transport and the replicated
 * state, plus what Consul and etcd operators expect of a server process: bootstrap with
 * `-bootstrap-expect`, join through `-retry-join`, writes forwarded to the leader, linearizable
 * reads from any server, graceful leave.
 */

export interface ServerOptions {
  nodeId: NodeId;
  nodeName: string;
  /** null keeps the log in memory (`-dev`). */
  dataDir: string | null;
  bindHost: string;
  /** 0 picks an ephemeral port. */
  serverPort: number;
  /** Host other servers dial (defaults to bindHost). */
  advertiseHost?: string;
  /** This server's etcd v3 client address (host:port), published in the directory for clientURLs. */
  etcdAddress?: string;
  /** 'self': a one-server cluster right away (-dev, -bootstrap); a number: -bootstrap-expect. */
  bootstrap: 'self' | number | null;
  retryJoin: string[];
  log: Logger;
  tickMs?: number;
  electionTicks?: number;
  /** How long a request waits for a leader before failing with "no leader". */
  holdTimeoutMs?: number;
  /** Pause between discovery/join rounds. */
  joinIntervalMs?: number;
  snapshotEveryEntries?: number;
  /** Entries kept behind a snapshot, so a follower that lags a little catches up by log. */
  trailingLogs?: number;
  storeOptions?: StoreOptions;
  onFatal?: (err: unknown) => void;
}

export type ReadConsistency = 'default' | 'consistent' | 'stale';

/** A gossip member as the server needs it. */
export interface MemberView {
  name: string;
  /** host:port of its gossip endpoint. */
  address: string;
  status: 'alive' | 'suspect' | 'dead' | 'left';
  role: 'server' | 'client';
  /** Its node id (from its gossip tags), '' if it did not say. */
  id: string;
}

export interface RaftServerView {
  id: NodeId;
  name: string;
  address: string;
  /** etcd client address ('' when unknown). */
  etcd: string;
  voter: boolean;
  leader: boolean;
  lastIndex: number;
}

type AnswerOk<T> = Extract<PeerAnswer<T>, { ok: true }>;
/** How long a follower waits to apply a write it forwarded before answering anyway (catchUpTo). */
const CATCH_UP_MS = 2000;

/** Requests a peer outside the cluster may make (see `answer`). */
const OPEN_REQUESTS = new Set<PeerRequest['kind']>(['discover', 'join', 'servers', 'clientHeartbeat']);

export class ConclaveServer {
  readonly id: NodeId;
  readonly state: ReplicatedState;
  private readonly opts: ServerOptions & Required<Pick<ServerOptions, 'holdTimeoutMs' | 'joinIntervalMs'>>;
  private storage!: RaftLogStorage;
  private transport!: PeerTransport;
  private host!: RaftHost;
  private duties!: LeaderDuties;
  private address = '';
  private clusterId = '';
  private joinTimer: NodeJS.Timeout | null = null;
  /** When this server last heard from the leader (Consul's X-Consul-LastContact). */
  private leaderContactAt = 0;
  /** When a leader was last known here (see orphanSuspected). */
  private lastLeaderAt = 0;
  private joining = false;
  private stopped = false;
  private leaderWaiters: (() => void)[] = [];

  constructor(options: ServerOptions) {
    this.opts = { holdTimeoutMs: 7000, joinIntervalMs: 1000, ...options };
    this.id = options.nodeId;
    this.state = new ReplicatedState(options.storeOptions);
  }

  get log(): Logger {
    return this.opts.log;
  }

  get store(): Store {
    return this.state.store;
  }

  /** This server's RPC address, host:port, once started. */
  get serverAddress(): string {
    return this.address;
  }

  /** Before start(): the etcd client address this server announces in the directory. */
  publishEtcdAddress(address: string): void {
    this.opts.etcdAddress = address;
  }

  /** The Consul HTTP and DNS addresses client agents forward to (told in discovery answers). */
  publishClientAddresses(http: string, dns: string): void {
    this.clientAddresses = { http, dns };
  }

  private clientAddresses: { http: string; dns: string } | null = null;
  private serfAddress = '';

  /** Before start(): the gossip address this server announces (it goes into the directory). */
  publishSerfAddress(address: string): void {
    this.serfAddress = address;
  }

  /**
   * Gossip's view of a member, by node name, when the agent runs gossip: the leader then takes
   * serfHealth from it instead of its own Raft contact and client heartbeats.
   */
  memberStatus: ((name: string) => MemberView | undefined) | null = null;
  /** Every gossip member (for client agents' health on the leader). */
  gossipMembers: (() => MemberView[]) | null = null;

  /** The cluster's identity ('' before this server has bootstrapped or joined). */
  clusterIdentity(): string {
    return this.clusterId;
  }

  self(): ServerInfo {
    const info: ServerInfo = { id: this.id, name: this.opts.nodeName, address: this.address };
    if (this.opts.etcdAddress) info.etcd = this.opts.etcdAddress;
    if (this.serfAddress) info.serf = this.serfAddress;
    if (this.clientAddresses) {
      info.http = this.clientAddresses.http;
      info.dns = this.clientAddresses.dns;
    }
    return info;
  }

  async start(): Promise<void> {
    const { dataDir, log } = this.opts;
    this.storage = dataDir
      ? new WalStorage({ dir: join(dataDir, 'raft'), warn: (m) => log.warn(m) })
      : new MemoryStorage();
    this.clusterId = dataDir ? loadClusterId(dataDir) : '';
    this.transport = new PeerTransport({
      nodeId: this.id,
      clusterId: this.clusterId,
      host: this.opts.bindHost,
      port: this.opts.serverPort,
      onRaftMessage: (m) => {
        if (m.from === this.host?.leaderId()) this.leaderContactAt = Date.now();
        this.host?.step(m);
      },
      onRequest: (from, body, trusted) => this.answer(from, body as PeerRequest, trusted),
      log: (level, message, fields) => log[level](message, fields),
    });
    const port = await this.transport.listen();
    this.address = `${this.opts.advertiseHost ?? this.opts.bindHost}:${port}`;
    this.host = new RaftHost({
      id: this.id,
      storage: this.storage,
      stateMachine: this.state,
      send: (m) => this.transport.send(m),
      flush: () => this.transport.flush(),
      tickMs: this.opts.tickMs ?? 100,
      electionTicks: this.opts.electionTicks ?? 10,
      snapshotEveryEntries: this.opts.snapshotEveryEntries ?? 16_384,
      keepEntriesAfterSnapshot: this.opts.trailingLogs ?? 10_240,
      requestTimeoutMs: this.opts.holdTimeoutMs,
      raft: { preVote: true, checkQuorum: true },
      // Only configuration entries and snapshots change who the peers are: the write path
      // (ordinary entries) skips the directory entirely.
      onAppend: (entries) => {
        let changed = false;
        for (const e of entries) {
          if (e.type !== EntryType.ConfChange) continue;
          this.state.directory.observe(e);
          changed = true;
        }
        if (changed) this.syncPeers();
      },
      onSnapshotSaved: (info) => log.info('saved a snapshot', info),
      onSnapshotInstalled: (index) => {
        log.info('installed a snapshot from the leader', { index });
        this.syncPeers();
      },
      onLeaderChange: (leader, term) => this.leaderChanged(leader, term),
      onFatal: (err) => {
        log.error('raft stopped after a storage failure', { error: String(err) });
        this.opts.onFatal?.(err);
      },
    });
    try {
      const recovered = await this.host.start();
      for (const e of recovered.entries) this.state.directory.observe(e);
    } catch (err) {
      await this.transport.close();
      throw err;
    }
    // The directory learned from the log wins over a cluster-id file (they agree unless edited).
    if (this.state.directory.clusterId) this.adoptCluster(this.state.directory.clusterId);
    this.syncPeers();
    this.duties = new LeaderDuties(this, this.host, log);

    if (this.opts.bootstrap === 'self' && this.host.isPristine()) {
      const clusterId = randomUUID();
      this.adoptCluster(clusterId);
      await this.host.bootstrap([this.id], encodeBootstrap(clusterId, [this.self()]));
      log.info('bootstrapped a new single-server cluster', { cluster: clusterId });
    }
    this.lastLeaderAt = Date.now();
    this.scheduleMembershipCheck(0);
    log.info('server started', { id: this.id, node: this.opts.nodeName, address: this.address });
  }

  /** Stop without leaving: the cluster sees a failed server (kill -9 minus the lost fsyncs). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.joinTimer) clearTimeout(this.joinTimer);
    this.duties?.stop();
    for (const w of this.leaderWaiters.splice(0)) w();
    await this.host?.stop();
    await this.transport?.close();
  }

  // ------------------------------------------------------------ status

  raftStatus(): RaftStatus {
    return this.host.status();
  }

  /** The current Raft term (what every etcd response header carries). */
  raftTerm(): number {
    return this.host.term();
  }

  /**
   * The leader this server has heard from lately. A follower stuck in pre-vote keeps the last
   * leader's id in Raft (as etcd's does), but after two election timeouts without a word from
   * it, this server no longer claims to know a leader: requests fail with "no leader" instead
   * of being sent to a dead one, and Consul's KnownLeader turns false.
   */
  leaderId(): NodeId {
    const leader = this.host.leaderId();
    if (leader === '' || leader === this.id) return leader;
    return Date.now() - this.leaderContactAt > 2 * this.electionMs() ? '' : leader;
  }

  private electionMs(): number {
    return (this.opts.tickMs ?? 100) * (this.opts.electionTicks ?? 10);
  }

  isLeader(): boolean {
    return this.host.leaderId() === this.id && this.host.isLeaderNow();
  }

  leaderAddress(): string {
    const leader = this.leaderId();
    return leader ? (this.state.directory.get(leader)?.address ?? '') : '';
  }

  /** Consul's /v1/operator/raft/configuration, from this server's latest configuration. */
  raftConfiguration(): { servers: RaftServerView[]; index: number } {
    const s = this.host.status();
    const leader = this.leaderId();
    const view = (id: NodeId, voter: boolean): RaftServerView => {
      const info = this.state.directory.get(id);
      const p = s.progress[id];
      return {
        id,
        name: info?.name ?? '',
        address: info?.address ?? '',
        etcd: id === this.id ? (this.opts.etcdAddress ?? '') : (info?.etcd ?? ''),
        voter,
        leader: id === leader,
        lastIndex: id === this.id ? s.lastIndex : (p?.match ?? 0),
      };
    };
    return {
      servers: [
        ...s.config.voters.map((id) => view(id, true)),
        ...s.config.learners.map((id) => view(id, false)),
      ],
      index: s.commit,
    };
  }

  /** Ms since the leader was last heard from: 0 on the leader, -1 if none ever was. */
  lastContactMs(): number {
    if (this.isLeader()) return 0;
    // Without a leader, still the time since one was last heard from (Consul's LastContact
    // grows during an outage, so stale reads do not look fresh); -1 if never.
    if (this.leaderContactAt === 0) return -1;
    return Date.now() - this.leaderContactAt;
  }

  /** Last fsync of the log, ms (slow disks show here first). */
  lastPersistMs(): number {
    return this.host.lastPersistMs;
  }

  // ------------------------------------------------------------ writes and reads

  /**
   * Apply a command through Raft and return the store's result. On a follower the command goes
   * to the leader. Refusals that prove the command never entered the log (not leader, no leader,
   * transfer in progress) are retried until the hold timeout; an outcome that is unknown (a lost
   * answer, an overwritten entry) is reported, never retried, since the write may have happened.
   */
  async write(command: CommandBody): Promise<Result> {
    return this.holdForLeader(
      () => this.writeOnce(command),
      (err) => this.isRefusal(err),
      (err) => this.noLeaderIfRefusal(err),
    );
  }

  /** Wait until reads here reflect every write acknowledged before the call (ReadIndex, thesis §6.4). */
  async readBarrier(consistency: ReadConsistency = 'default'): Promise<void> {
    if (consistency === 'stale') return;
    await this.holdForLeader(
      // Short attempts: a read index lost with a dead leader is retried (reads are idempotent).
      (remainingMs) => this.host.readBarrier(Math.max(50, Math.min(2000, remainingMs))),
      (err) => err instanceof RetryableError && ['no-leader', 'not-leader', 'timeout'].includes(err.code),
      (err) => (this.leaderId() === '' ? new RetryableError('no-leader', 'No cluster leader') : err),
    );
  }

  /**
   * Run `attempt` until it succeeds or fails for good. A failure `retryable` accepts waits for a
   * leader change (at most 250 ms) and tries again until the hold time runs out; then, or when
   * the server stops, `giveUp` decides what the caller sees.
   */
  private async holdForLeader<T>(
    attempt: (remainingMs: number) => Promise<T>,
    retryable: (err: unknown) => boolean,
    giveUp: (err: unknown) => unknown,
  ): Promise<T> {
    const deadline = Date.now() + this.opts.holdTimeoutMs;
    for (;;) {
      try {
        return await attempt(deadline - Date.now());
      } catch (err) {
        if (!retryable(err)) throw err;
        if (Date.now() >= deadline || this.stopped) throw giveUp(err);
        await this.waitForLeader(Math.min(250, Math.max(1, deadline - Date.now())));
      }
    }
  }

  private async writeOnce(command: CommandBody): Promise<Result> {
    if (this.isLeader()) return this.proposeHere(command);
    const leader = this.leaderId();
    if (!leader) throw new RetryableError('no-leader', 'no cluster leader');
    let answer: AnswerOk<unknown>;
    try {
      answer = await this.askPeerAnswer<unknown>(leader, { kind: 'write', command });
    } catch (err) {
      if (err instanceof TransportError && !err.notSent) {
        throw new RetryableError(
          'timeout',
          `no answer from the leader (${err.message}); the write may or may not have been applied`,
          leader,
        );
      }
      throw err;
    }
    const result = resultFromWire(answer.value);
    if (answer.applied !== undefined) await this.catchUpTo(answer.applied);
    return result;
  }

  /**
   * Read-your-writes on a follower: the leader answers a forwarded write once it applied it,
   * and this server's reads (serializable etcd reads, stale Consul reads, a handler reading the
   * store right after its write) must see it too, as they do on an etcd member. So wait until
   * this server has applied as far. The write is committed whatever happens here: if this server
   * cannot catch up in time (cut off from the leader just now), answer anyway.
   */
  private async catchUpTo(index: number): Promise<void> {
    try {
      await this.host.waitApplied(index, CATCH_UP_MS);
    } catch (err) {
      this.log.debug('answering a forwarded write before applying it here', { index, error: String(err) });
    }
  }

  /** Propose on this server (the leader), stamping the leader's clock into the command. */
  async proposeHere(command: CommandBody): Promise<Result> {
    const bytes = encodeCommand({ ...command, timeMs: Date.now() } as Parameters<typeof encodeCommand>[0]);
    return (await this.host.propose(bytes)) as Result;
  }

  private isRefusal(err: unknown): boolean {
    if (err instanceof RetryableError)
      return ['not-leader', 'no-leader', 'transferring', 'busy'].includes(err.code);
    // The request never left this process: the leader cannot have applied it.
    return err instanceof TransportError && err.notSent;
  }

  private noLeaderIfRefusal(err: unknown): unknown {
    if (
      this.isRefusal(err) &&
      !(err instanceof RetryableError && (err.code === 'transferring' || err.code === 'busy'))
    )
      return new RetryableError('no-leader', 'No cluster leader');
    return err;
  }

  private waitForLeader(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.leaderWaiters = this.leaderWaiters.filter((w) => w !== done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.leaderWaiters.push(done);
    });
  }

  private async askPeer<T>(to: NodeId, request: PeerRequest): Promise<T> {
    return (await this.askPeerAnswer<T>(to, request)).value;
  }

  private async askPeerAnswer<T>(to: NodeId, request: PeerRequest): Promise<AnswerOk<T>> {
    const raw = (await this.transport.request(to, request, this.opts.holdTimeoutMs)) as PeerAnswer<T>;
    if (!raw.ok) throw fromWireError(raw.error);
    return raw;
  }

  // ------------------------------------------------------------ membership

  /** Remove a server from the configuration (operator raft remove-peer). */
  async removePeer(id: NodeId): Promise<void> {
    const s = this.host.status();
    if (!s.config.voters.includes(id) && !s.config.learners.includes(id))
      throw new Error(`${id} is not a member of the Raft configuration`);
    await this.onLeader({ kind: 'remove', id });
  }

  /** Hand leadership to `id`, or to the most up-to-date voter when empty. */
  async transferLeadership(id: NodeId = ''): Promise<NodeId> {
    return this.onLeader<NodeId>({ kind: 'transfer', id });
  }

  /**
   * Leave gracefully (Consul's `leave`): hand off leadership, remove this server from the
   * configuration, then stop. The last voter of a cluster stays in it (removing it would leave
   * a cluster nobody can ever write to).
   */
  async leave(): Promise<void> {
    const s = this.host.status();
    const member = s.config.voters.includes(this.id) || s.config.learners.includes(this.id);
    const othersVote = s.config.voters.some((v) => v !== this.id);
    if (member && othersVote) {
      try {
        if (this.isLeader()) {
          const to = await this.transferLeadership();
          this.log.info('leaving: handed leadership over', { to });
          await this.waitUntil(() => this.host.leaderId() !== '' && this.host.leaderId() !== this.id, 5000);
        }
        await this.onLeader({ kind: 'remove', id: this.id });
        this.log.info('leaving: removed from the raft configuration');
      } catch (err) {
        this.log.warn('leaving without removal from the configuration', { error: String(err) });
      }
    }
    await this.stop();
  }

  /** Run a membership request on the leader, here or forwarded, retrying refusals. */
  private async onLeader<T>(request: PeerRequest): Promise<T> {
    return this.holdForLeader(
      async () => {
        if (this.isLeader()) return (await this.handleOnLeader(request)) as T;
        const leader = this.leaderId();
        if (!leader) throw new RetryableError('no-leader', 'no cluster leader');
        return this.askPeer<T>(leader, request);
      },
      (err) => this.isRefusal(err),
      (err) => this.noLeaderIfRefusal(err),
    );
  }

  private async waitUntil(cond: () => boolean, ms: number): Promise<boolean> {
    const end = Date.now() + ms;
    while (!cond()) {
      if (Date.now() >= end || this.stopped) return false;
      await new Promise((r) => setTimeout(r, 20));
    }
    return true;
  }

  /** Point the transport at every member of the latest configuration. */
  private syncPeers(): void {
    if (this.stopped || !this.host) return;
    // Every server we know of, not only members: a joining learner must answer the leader
    // before its own log names anyone. A link costs nothing until a message goes out on it.
    for (const info of this.state.directory.all()) {
      if (info.id !== this.id) this.transport.setPeer(info.id, info.address);
    }
    if (this.state.directory.clusterId && this.state.directory.clusterId !== this.clusterId)
      this.adoptCluster(this.state.directory.clusterId);
  }

  private leaderChanged(leader: NodeId, term: number): void {
    this.lastLeaderAt = Date.now();
    if (leader !== '') this.leaderContactAt = Date.now();
    this.log.info(leader ? 'leader elected' : 'no leader', { leader, term });
    for (const w of this.leaderWaiters.splice(0)) w();
    this.duties.leaderChanged(leader === this.id, term);
  }

  private adoptCluster(clusterId: string): void {
    if (this.clusterId === clusterId) return;
    if (this.clusterId !== '')
      this.log.warn('cluster identity changed', { from: this.clusterId, to: clusterId });
    this.clusterId = clusterId;
    if (this.opts.dataDir) saveClusterId(this.opts.dataDir, clusterId);
    this.transport.setClusterId(clusterId);
  }

  // ------------------------------------------------------------ discovery, bootstrap, join

  /** True until this server is in some configuration (or holds a log that says it was removed). */
  private needsCluster(): boolean {
    const s = this.host.status();
    const inConfig = s.config.voters.includes(this.id) || s.config.learners.includes(this.id);
    return (
      !inConfig &&
      (this.opts.retryJoin.length > 0 ||
        typeof this.opts.bootstrap === 'number' ||
        this.state.directory.all().length > 0)
    );
  }

  /**
   * A server whose own log still lists it may have been removed: the leader stops replicating
   * to a server as soon as it appends its removal (the latest configuration rules, thesis
   * §4.1), so a server that left and restarted never hears of it. One that has heard from no
   * leader for several election timeouts asks its peers whether it is still a member.
   */
  private orphanSuspected(): boolean {
    return (
      this.leaderId() === '' &&
      Date.now() - Math.max(this.lastLeaderAt, this.leaderContactAt) > 3 * this.electionMs() &&
      this.state.directory.all().some((s) => s.id !== this.id)
    );
  }

  /** Discovery and join run on one timer for the server's whole life; most rounds do nothing. */
  private scheduleMembershipCheck(delayMs: number): void {
    if (this.stopped || this.joinTimer) return;
    this.joinTimer = setTimeout(() => {
      this.joinTimer = null;
      void this.joinRound().finally(() => this.scheduleMembershipCheck(this.opts.joinIntervalMs));
    }, delayMs);
  }

  /** Addresses to try: -retry-join, and every server we have heard of. */
  private joinTargets(extra: string[] = []): string[] {
    const known = this.state.directory
      .all()
      .filter((s) => s.id !== this.id)
      .map((s) => s.address);
    const gossiped = this.gossipServerAddresses?.() ?? [];
    return [...new Set([...this.opts.retryJoin, ...known, ...gossiped, ...extra])].filter(
      (a) => a !== this.address,
    );
  }

  /**
   * RPC addresses of the servers gossip knows (from their tags): with Consul-style -retry-join
   * (gossip addresses), servers find each other for bootstrap and join through the pool.
   */
  gossipServerAddresses: (() => string[]) | null = null;

  /** Ask an address to let this server in (Consul's `join`); used by /v1/agent/join too. */
  async joinAddress(address: string): Promise<void> {
    this.opts.retryJoin = [...new Set([...this.opts.retryJoin, address])];
    await this.joinRound([address]);
  }

  private async joinRound(extra: string[] = []): Promise<void> {
    if (this.joining || this.stopped || !(this.needsCluster() || this.orphanSuspected())) return;
    this.joining = true;
    try {
      const targets = this.joinTargets(extra);
      const answers: DiscoverAnswer[] = [];
      await Promise.all(
        targets.map(async (address) => {
          try {
            const { body } = await this.transport.requestAt(
              address,
              { kind: 'discover', from: this.self() } satisfies PeerRequest,
              2000,
            );
            const answer = body as PeerAnswer<DiscoverAnswer>;
            if (answer.ok) answers.push(answer.value);
          } catch (err) {
            this.log.debug('discovery probe failed', { address, error: String(err) });
          }
        }),
      );
      for (const a of answers) {
        if (a.self.id !== this.id) this.state.directory.remember(a.self);
        for (const s of a.servers)
          if (s.id !== this.id && !this.state.directory.get(s.id)) this.state.directory.remember(s);
      }
      this.syncPeers();
      // Prefer a server that knows the leader: its membership answer is current.
      answers.sort((a, b) => Number(b.leader !== '') - Number(a.leader !== ''));
      const existing = answers.find(
        (a) => a.clusterId !== '' && (this.clusterId === '' || a.clusterId === this.clusterId),
      );
      if (existing) return await this.joinExisting(existing);
      const foreign = answers.find((a) => a.clusterId !== '' && a.clusterId !== this.clusterId);
      if (foreign) {
        this.log.warn('a discovered server belongs to another cluster', { server: foreign.self.address });
        return;
      }
      if (typeof this.opts.bootstrap === 'number') await this.maybeBootstrap(answers);
    } finally {
      this.joining = false;
    }
  }

  private async joinExisting(answer: DiscoverAnswer): Promise<void> {
    this.adoptCluster(answer.clusterId);
    if (answer.members.includes(this.id)) {
      // Already in its configuration (bootstrapped by a peer, or re-started): the leader will replicate.
      this.log.debug('found our cluster', { via: answer.self.address });
      return;
    }
    const via = answer.self.address;
    try {
      const { body } = await this.transport.requestAt(
        via,
        { kind: 'join', server: this.self() } satisfies PeerRequest,
        this.opts.holdTimeoutMs + 1000,
      );
      const r = body as PeerAnswer<{ clusterId: string }>;
      if (!r.ok) throw fromWireError(r.error);
      this.log.info('joined the cluster as a non-voter', { via });
    } catch (err) {
      this.log.warn('join failed, will retry', { via, error: String(err) });
    }
  }

  /**
   * -bootstrap-expect N: once N servers in bootstrap mode know of each other and none belongs to
   * a cluster, each bootstraps the same configuration (every server in the set, sorted), so they
   * agree without a coordinator. A server that restarts with a log never gets here.
   */
  private async maybeBootstrap(answers: DiscoverAnswer[]): Promise<void> {
    const expect = this.opts.bootstrap as number;
    if (!this.host.isPristine()) return;
    const peers = answers.filter((a) => a.pristine);
    const mismatch = peers.find((a) => a.bootstrapExpect !== expect);
    if (mismatch) {
      this.log.warn('bootstrap-expect differs between servers; not bootstrapping', {
        ours: expect,
        theirs: mismatch.bootstrapExpect,
        server: mismatch.self.address,
      });
      return;
    }
    const set = new Map<NodeId, ServerInfo>([[this.id, this.self()]]);
    for (const a of peers) {
      set.set(a.self.id, a.self);
      for (const s of a.servers) if (!set.has(s.id)) set.set(s.id, s);
    }
    if (set.size < expect) {
      this.log.info('waiting for servers to bootstrap', { known: set.size, expect });
      return;
    }
    const servers = [...set.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const ids = servers.map((s) => s.id);
    const clusterId = createHash('sha256').update(ids.join('\n')).digest('hex').slice(0, 32);
    this.adoptCluster(clusterId);
    if (await this.host.bootstrap(ids, encodeBootstrap(clusterId, servers))) {
      this.log.info('bootstrapped the cluster', { servers: servers.map((s) => s.name), cluster: clusterId });
    }
  }

  // ------------------------------------------------------------ answering peers

  private async answer(from: NodeId, request: PeerRequest, trusted: boolean): Promise<PeerAnswer<unknown>> {
    try {
      // A peer that did not name our cluster in its hello (a server still joining, a client
      // agent, or a stray process) may only find servers, ask to join and report liveness.
      if (!trusted && !OPEN_REQUESTS.has(request.kind)) {
        throw new Error(
          `refused: '${request.kind}' needs a peer of cluster ${this.clusterId || '(none yet)'}`,
        );
      }
      if (request.kind === 'discover') {
        if (this.needsCluster() && request.from.id !== this.id) {
          this.state.directory.remember(request.from);
          this.syncPeers();
        }
        return { ok: true, value: this.discoverAnswer() };
      }
      if (request.kind === 'servers') return { ok: true, value: this.discoverAnswer() };
      if (request.kind === 'clientHeartbeat') return { ok: true, value: await this.onLeader(request) };
      if (request.kind === 'write') {
        if (!this.isLeader()) throw new RetryableError('not-leader', 'not the leader', this.host.leaderId());
        const value = resultToWire(await this.proposeHere(request.command));
        // The follower waits to apply the write before it answers (catchUpTo): tell it of the
        // commit now, not after the commit notice's hold.
        this.host.flushCommitNotice(from);
        return { ok: true, value, applied: this.host.appliedIndex() };
      }
      if (request.kind === 'join') {
        if (this.clusterId === '') throw new RetryableError('no-leader', 'this server has no cluster yet');
        // A joiner talks to whichever server it found; that server asks the leader.
        return { ok: true, value: await this.onLeader({ kind: 'join', server: request.server }) };
      }
      if (!this.isLeader()) throw new RetryableError('not-leader', 'not the leader', this.host.leaderId());
      return { ok: true, value: await this.handleOnLeader(request) };
    } catch (err) {
      return { ok: false, error: toWireError(err) };
    }
  }

  private discoverAnswer(): DiscoverAnswer {
    const s = this.host.status();
    return {
      self: this.self(),
      clusterId: this.clusterId,
      bootstrapExpect: typeof this.opts.bootstrap === 'number' ? this.opts.bootstrap : 0,
      pristine: this.host.isPristine() && this.clusterId === '',
      members: [...s.config.voters, ...s.config.learners],
      servers: this.state.directory.all(),
      leader: this.host.leaderId(),
    };
  }

  private async handleOnLeader(request: PeerRequest): Promise<unknown> {
    switch (request.kind) {
      case 'join': {
        const { server } = request;
        const s = this.host.status();
        if (s.config.voters.includes(server.id) || s.config.learners.includes(server.id)) {
          return { clusterId: this.clusterId };
        }
        this.state.directory.remember(server);
        // A new server starts as a learner: it gets the log but no vote until caught up (LeaderDuties promotes it).
        await this.host.proposeConfChange({
          type: 'addLearner',
          node: server.id,
          context: encodeServerInfo(server),
        });
        this.log.info('added a non-voting server', {
          id: server.id,
          node: server.name,
          address: server.address,
        });
        return { clusterId: this.clusterId };
      }
      case 'clientHeartbeat':
        this.duties.clientHeartbeat(request.node, request.leaving ?? false);
        return null;
      case 'remove':
        await this.host.proposeConfChange({ type: 'removeNode', node: request.id });
        this.log.info('removed a server from the configuration', { id: request.id });
        return null;
      case 'transfer': {
        const target = request.id || this.bestTransferTarget();
        if (!target) throw new Error('no other voter to transfer leadership to');
        const r = this.host.transferLeadership(target);
        if (!r.ok) throw new Error(r.message);
        const moved = await this.waitUntil(() => this.host.leaderId() === target, 5000);
        if (!moved) throw new RetryableError('timeout', `leadership did not move to ${target}`);
        return target;
      }
      default:
        throw new Error(`unexpected request ${request.kind}`);
    }
  }

  /** The voter whose log is longest (it can take over soonest). */
  private bestTransferTarget(): NodeId {
    const s = this.host.status();
    let best = '';
    let bestMatch = -1;
    for (const id of s.config.voters) {
      if (id === this.id) continue;
      const match = s.progress[id]?.match ?? 0;
      if (match > bestMatch) {
        best = id;
        bestMatch = match;
      }
    }
    return best;
  }
}
