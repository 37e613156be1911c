/**
 * A small synchronous in-memory cluster for scenario tests of the Raft core (in the spirit of
 * etcd-io/raft's `network` and interaction tests). Everything happens when the script says so:
 *
 * - a node's Ready is handled at once: persisted to its in-memory disk (durable immediately),
 *   then its messages are queued, then committed entries are applied, then `advance` is called;
 * - queued messages move only when the script delivers them (`deliverAll`, `deliver`), and a
 *   partition, a crashed recipient or a `drop` filter discards them on the way;
 * - time moves only when the script ticks a node.
 *
 * The harness also watches for safety violations (two leaders in one term, two different
 * entries applied at one index, a vote or acknowledgement sent before it was durable) and lists
 * them in `violations`, so a test can assert that none happened — or that a deliberately
 * injected bug produced one.
 */
import { RaftNode, type RaftOptions, type RaftStatus } from '../../src/raft/node.js';
import type {
  Entry,
  HardState,
  Message,
  NodeId,
  ReadFailure,
  ReadState,
  Ready,
  Snapshot,
} from '../../src/raft/types.js';
import { EntryType, MessageType } from '../../src/raft/types.js';
import { SimDisk } from '../sim/disk.js';
import { Prng } from '../sim/prng.js';

export type { Message, NodeId };
export { EntryType, MessageType };

export const ELECTION_TICKS = 10;
export const HEARTBEAT_TICKS = 1;
/** A script that needs more deliveries than this has a livelock: fail loudly instead of hanging. */
const DELIVERIES_MAX = 20_000;
/** `elect` gives up after this many campaigns by the chosen node. */
const CAMPAIGNS_MAX = 5;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** One entry as the toy state machine saw it: the no-op's value is '', a ConfChange's is e.g. 'addLearner n4'. */
export interface Applied {
  index: number;
  term: number;
  value: string;
}

export interface ClusterOptions {
  /** Every server in the scenario, including ones that join later. Default n1..n3. */
  ids?: NodeId[];
  /** The bootstrap configuration's voters. Default: every id. Others start with an empty disk. */
  voters?: NodeId[];
  /**
   * Seed for the election timeout draws (each node has its own stream). Without a seed every
   * node uses the midpoint timeout (1.5 × electionTicks): who campaigns is decided by who the
   * script ticks.
   */
  seed?: number;
  /**
   * Fixed election timeout draws per node, overriding the above: 0 gives exactly
   * electionTicks, 0.9 gives 1.9 × electionTicks (the midpoint default is 0.5).
   */
  timeoutFractions?: Record<NodeId, number>;
  /** Options for every node (electionTicks, preVote, bugs, flow-control limits...). */
  options?: Partial<Omit<RaftOptions, 'id' | 'random'>>;
  /** Per-node overrides on top of `options`. */
  nodeOptions?: Record<NodeId, Partial<Omit<RaftOptions, 'id' | 'random'>>>;
}

export interface DeliverOptions {
  /** Discard matching messages instead of delivering them (they are lost on the wire). */
  drop?: (m: Message) => boolean;
  /** Leave matching messages on the wire, undelivered (delayed), in their order. */
  hold?: (m: Message) => boolean;
}

interface Server {
  id: NodeId;
  disk: SimDisk;
  raft: RaftNode | null;
  /** The toy state machine: every entry applied, in order. */
  applied: Applied[];
  readies: Ready[];
  readStates: ReadState[];
  readFailures: ReadFailure[];
  random: () => number;
  /**
   * Ticks since this node last heard from a leader (an upper bound of the core's
   * electionElapsed, which other events may reset too): how long its leader lease has left.
   */
  ticksSinceLeaderContact: number;
}

export class Cluster {
  readonly ids: NodeId[];
  readonly electionTicks: number;
  /** Messages on the wire, oldest first. */
  queue: Message[] = [];
  /** Every message any node has sent, in order. */
  readonly sent: Message[] = [];
  /** Every message stepped into a node, in order. */
  readonly delivered: Message[] = [];
  /** Every message discarded by a partition, a drop filter or a down recipient. */
  readonly dropped: Message[] = [];
  /** Safety violations seen so far (see the file comment). */
  readonly violations: string[] = [];

  private readonly servers = new Map<NodeId, Server>();
  private readonly blocked = new Set<string>();
  private readonly leaderOfTerm = new Map<number, NodeId>();
  private readonly appliedAt = new Map<number, { node: NodeId; entry: Applied }>();
  private readonly divergentIndexes = new Set<number>();
  private readonly opts: ClusterOptions;

  constructor(opts: ClusterOptions = {}) {
    this.opts = opts;
    this.ids = opts.ids ?? ['n1', 'n2', 'n3'];
    const voters = opts.voters ?? this.ids;
    this.electionTicks = opts.options?.electionTicks ?? ELECTION_TICKS;
    const boot = RaftNode.bootstrapEntry(voters);
    const rng = opts.seed === undefined ? null : new Prng(opts.seed);
    for (const id of this.ids) {
      const isVoter = voters.includes(id);
      const disk = new SimDisk({
        hardState: { term: isVoter ? 1 : 0, vote: '', commit: isVoter ? 1 : 0 },
        snapshot: null,
        entries: isVoter ? [boot] : [],
      });
      const stream = rng?.fork();
      const fixed = opts.timeoutFractions?.[id];
      const random = fixed !== undefined ? () => fixed : stream ? () => stream.float() : () => 0.5;
      this.servers.set(id, {
        id,
        disk,
        raft: null,
        applied: [],
        readies: [],
        readStates: [],
        readFailures: [],
        random,
        ticksSinceLeaderContact: 0,
      });
      this.start(id);
    }
  }

  // ------------------------------------------------------------------ nodes

  /** The live core of `id` (throws if it is down). */
  node(id: NodeId): RaftNode {
    const raft = this.server(id).raft;
    if (!raft) throw new Error(`${id} is down`);
    return raft;
  }

  isUp(id: NodeId): boolean {
    return this.server(id).raft !== null;
  }

  status(id: NodeId): RaftStatus {
    return this.node(id).status();
  }

  /** The current leader with the highest term among live nodes, or '' if none. */
  leader(): NodeId {
    let best = '';
    let bestTerm = -1;
    for (const id of this.ids) {
      if (!this.isUp(id)) continue;
      const st = this.status(id);
      if (st.role === 'leader' && st.term > bestTerm) {
        best = id;
        bestTerm = st.term;
      }
    }
    return best;
  }

  /** The durable state of `id`'s disk (what a restart recovers). */
  disk(id: NodeId): { hardState: HardState; snapshot: Snapshot | null; entries: Entry[] } {
    return this.server(id).disk.durable;
  }

  /** Terms of the entries in `id`'s log from its first index (a compact picture of the log). */
  logTerms(id: NodeId): number[] {
    const view = this.node(id).logView();
    const terms: number[] = [];
    for (let i = view.offsetIndex + 1; i <= view.lastIndex; i++) terms.push(view.term(i)!);
    return terms;
  }

  /** Values of the entries in `id`'s log from its first index ('' = no-op). */
  logValues(id: NodeId): string[] {
    const view = this.node(id).logView();
    const values: string[] = [];
    for (let i = view.offsetIndex + 1; i <= view.lastIndex; i++) values.push(describeEntry(view.entry(i)!));
    return values;
  }

  /** Every entry `id`'s state machine has applied (restored from a snapshot where it was). */
  appliedEntries(id: NodeId): Applied[] {
    return this.server(id).applied.slice();
  }

  /** The application commands `id` applied, in order (no-ops and configuration entries left out). */
  appliedData(id: NodeId): string[] {
    return this.server(id)
      .applied.filter((a) => a.value !== '' && !a.value.startsWith('conf:') && a.value !== 'bootstrap')
      .map((a) => a.value);
  }

  /** Every Ready `id` produced since it last started. */
  readies(id: NodeId): Ready[] {
    return this.server(id).readies;
  }

  readStates(id: NodeId): ReadState[] {
    return this.server(id).readStates;
  }

  readFailures(id: NodeId): ReadFailure[] {
    return this.server(id).readFailures;
  }

  /** Crash `id`: its process and everything in memory is gone, its disk stays. */
  crash(id: NodeId): void {
    const s = this.server(id);
    if (!s.raft) throw new Error(`${id} is already down`);
    s.raft = null;
  }

  /** Start `id` again from what its disk holds. */
  restart(id: NodeId): void {
    if (this.isUp(id)) throw new Error(`${id} is already up`);
    this.start(id);
  }

  // ------------------------------------------------------------------ inputs

  /** Propose commands at `id`; returns the core's answer. Nothing is sent until the next delivery or flush. */
  propose(id: NodeId, ...values: string[]): ReturnType<RaftNode['propose']> {
    return this.node(id).propose(values.map((v) => encoder.encode(v)));
  }

  /** Tick `id` `count` times, handling its Ready after each tick. */
  tick(id: NodeId, count = 1): void {
    const s = this.server(id);
    for (let i = 0; i < count; i++) {
      this.node(id).tick();
      s.ticksSinceLeaderContact++;
      this.flush(id);
    }
  }

  /** Tick every live node once, `rounds` times, delivering everything after each round. */
  tickAll(rounds = 1, deliver: DeliverOptions = {}): void {
    for (let r = 0; r < rounds; r++) {
      for (const id of this.ids) if (this.isUp(id)) this.tick(id);
      this.deliverAll(deliver);
    }
  }

  /**
   * Make `id` leader: time passes for the other followers until an election timeout has gone
   * by since they last heard from a leader (so their leader lease, thesis §4.2.3, lapses; with
   * midpoint timeouts this never makes them campaign themselves), then
   * `id` is ticked until it campaigns and messages are delivered until the cluster settles.
   * Retries a lost campaign (e.g. one that only taught it a newer term). Throws if `id` does
   * not win.
   */
  elect(id: NodeId, deliver: DeliverOptions = {}): void {
    this.flushAll();
    for (let attempt = 0; attempt < CAMPAIGNS_MAX; attempt++) {
      this.letLeasesLapse(id);
      this.tickUntilCampaign(id);
      this.deliverAll(deliver);
      if (this.isUp(id) && this.status(id).role === 'leader') return;
    }
    throw new Error(`elect(${id}): not leader after ${CAMPAIGNS_MAX} campaigns: ${this.describe()}`);
  }

  /** Tick every live follower but `except` until an election timeout has passed since it heard from a leader. */
  private letLeasesLapse(except: NodeId): void {
    for (const other of this.ids) {
      if (other === except || !this.isUp(other)) continue;
      const st = this.status(other);
      if (st.role !== 'follower' || st.leader === '') continue;
      const sentBefore = this.sent.length;
      this.tick(other, Math.max(0, this.electionTicks - this.server(other).ticksSinceLeaderContact));
      if (this.sent.slice(sentBefore).some((m) => m.from === other && isCampaign(m))) {
        throw new Error(
          `elect(${except}): letting time pass made ${other} campaign; tick explicitly instead`,
        );
      }
    }
  }

  /** Tick `id` until it sends a PreVote or Vote (or wins outright as the only voter). */
  tickUntilCampaign(id: NodeId): void {
    for (let i = 0; i <= 2 * this.electionTicks; i++) {
      const sentBefore = this.sent.length;
      this.tick(id);
      if (this.sent.slice(sentBefore).some((m) => m.from === id && isCampaign(m))) return;
      if (this.status(id).role === 'leader') return;
    }
    throw new Error(`${id} did not campaign within ${2 * this.electionTicks} ticks`);
  }

  /** Take an application snapshot of `id` at its applied index and compact its log up to it. */
  snapshot(id: NodeId): Snapshot {
    const s = this.server(id);
    const raft = this.node(id);
    const index = raft.status().applied;
    const snap = raft.installAppSnapshot(index, encoder.encode(JSON.stringify(s.applied)));
    if (!snap) throw new Error(`${id}: no snapshot taken at ${index}`);
    s.disk.saveAppSnapshot(snap);
    raft.compact(index);
    return snap;
  }

  // ------------------------------------------------------------------ network

  /** Cut every link between different groups (nodes in no group keep all their links). */
  partition(...groups: NodeId[][]): void {
    this.blocked.clear();
    for (const [i, a] of groups.entries()) {
      for (const [j, b] of groups.entries()) {
        if (i === j) continue;
        for (const x of a) for (const y of b) this.blocked.add(`${x}>${y}`);
      }
    }
  }

  /** Cut `id` off from everyone. */
  isolate(id: NodeId): void {
    this.partition(
      [id],
      this.ids.filter((other) => other !== id),
    );
  }

  heal(): void {
    this.blocked.clear();
  }

  /** Remove and return the queued messages matching `pred` (to hold them back or inspect them). */
  take(pred: (m: Message) => boolean): Message[] {
    const taken = this.queue.filter(pred);
    this.queue = this.queue.filter((m) => !pred(m));
    return taken;
  }

  /** Put messages (back) on the wire, e.g. a delayed duplicate. */
  inject(...messages: Message[]): void {
    this.queue.push(...messages);
  }

  /**
   * Deliver the currently queued messages matching `pred`, once (the answers they cause are
   * queued, not delivered). Returns what was delivered.
   */
  deliver(pred: (m: Message) => boolean, opts: DeliverOptions = {}): Message[] {
    this.flushAll();
    const now = this.take(pred);
    const delivered: Message[] = [];
    for (const m of now) if (this.deliverOne(m, opts)) delivered.push(m);
    return delivered;
  }

  /** Deliver the oldest queued message only (the answers it causes are queued). */
  deliverNext(opts: DeliverOptions = {}): Message | undefined {
    this.flushAll();
    const m = this.queue.shift();
    if (m && opts.hold?.(m)) {
      this.queue.push(m);
      return undefined;
    }
    if (m && this.deliverOne(m, opts)) return m;
    return undefined;
  }

  /** Deliver messages, and the messages they cause, until the wire is empty. Returns what was delivered. */
  deliverAll(opts: DeliverOptions = {}): Message[] {
    this.flushAll();
    const delivered: Message[] = [];
    const held: Message[] = [];
    for (let n = 0; this.queue.length > 0; n++) {
      if (n >= DELIVERIES_MAX) throw new Error(`no quiescence after ${DELIVERIES_MAX} deliveries`);
      const m = this.queue.shift()!;
      if (opts.hold?.(m)) held.push(m);
      else if (this.deliverOne(m, opts)) delivered.push(m);
    }
    this.queue = held;
    return delivered;
  }

  private deliverOne(m: Message, opts: DeliverOptions): boolean {
    const to = this.server(m.to);
    if (!to.raft || this.blocked.has(`${m.from}>${m.to}`) || opts.drop?.(m)) {
      this.dropped.push(m);
      return false;
    }
    this.delivered.push(m);
    trace(() => `deliver ${describeMessage(m)}`);
    if (m.type === MessageType.App || m.type === MessageType.Heartbeat || m.type === MessageType.Snap) {
      to.ticksSinceLeaderContact = 0;
    }
    to.raft.step(m);
    this.flush(m.to);
    return true;
  }

  // ------------------------------------------------------------------ the shell

  /** Handle every pending Ready of every live node. */
  flushAll(): void {
    for (const id of this.ids) if (this.isUp(id)) this.flush(id);
  }

  /**
   * Handle `id`'s Ready until it has none, following the order the `Ready` doc comment
   * prescribes: persist, then send, then apply, then advance.
   */
  flush(id: NodeId): void {
    const s = this.server(id);
    const raft = s.raft;
    if (!raft) return;
    for (let n = 0; raft.hasReady(); n++) {
      if (n >= DELIVERIES_MAX) throw new Error(`${id}: hasReady() never settles`);
      const rd = raft.ready();
      s.readies.push(rd);
      if (rd.softState) trace(() => `${id} is ${rd.softState!.role} (leader '${rd.softState!.leader}')`);
      // 1. Persist (our disk is durable at once).
      const write: Parameters<SimDisk['write']>[0] = { entries: rd.entries };
      if (rd.hardState) write.hardState = rd.hardState;
      if (rd.snapshot) write.snapshot = rd.snapshot;
      s.disk.write(write);
      s.disk.sync();
      // 2. Send (the leader's own traffic may leave before the write; here the disk is instant).
      for (const m of [...rd.messagesNow, ...rd.messages]) {
        this.checkDurable(s, m);
        this.sent.push(m);
        this.queue.push(m);
      }
      // 3. Apply.
      if (rd.snapshot) s.applied = JSON.parse(decoder.decode(rd.snapshot.data)) as Applied[];
      for (const e of rd.committedEntries) this.apply(s, e);
      s.readStates.push(...rd.readStates);
      s.readFailures.push(...rd.readFailures);
      raft.advance(rd);
      this.checkLeader(id);
    }
  }

  private apply(s: Server, e: Entry): void {
    const last = s.applied[s.applied.length - 1];
    const expected = last ? last.index + 1 : 1;
    if (e.index !== expected) this.violations.push(`${s.id} applied ${e.index}, expected ${expected}`);
    const entry: Applied = { index: e.index, term: e.term, value: describeEntry(e) };
    s.applied.push(entry);
    trace(() => `${s.id} applies ${e.index}@t${e.term} '${entry.value}'`);
    const seen = this.appliedAt.get(e.index);
    if (!seen) {
      this.appliedAt.set(e.index, { node: s.id, entry });
    } else if (
      (seen.entry.term !== entry.term || seen.entry.value !== entry.value) &&
      !this.divergentIndexes.has(e.index)
    ) {
      this.divergentIndexes.add(e.index); // report each index once
      this.violations.push(
        `index ${e.index}: ${seen.node} applied t${seen.entry.term} '${seen.entry.value}', ` +
          `${s.id} applied t${entry.term} '${entry.value}'`,
      );
    }
  }

  /** Election Safety (§5.2): at most one leader per term. */
  private checkLeader(id: NodeId): void {
    const st = this.status(id);
    if (st.role !== 'leader') return;
    const other = this.leaderOfTerm.get(st.term);
    if (other === undefined) {
      this.leaderOfTerm.set(st.term, id);
      trace(() => `${id} leads term ${st.term}`);
    } else if (other !== id) {
      this.violations.push(`two leaders in term ${st.term}: ${other} and ${id}`);
    }
  }

  /** Figure 2: a vote or an acknowledgement leaves only once what it promises is on disk. */
  private checkDurable(s: Server, m: Message): void {
    const disk = s.disk.durable;
    if (m.type === MessageType.VoteResp && !m.reject) {
      if (disk.hardState.term !== m.term || disk.hardState.vote !== m.to) {
        this.violations.push(`${s.id} granted a vote to ${m.to} in term ${m.term} before persisting it`);
      }
    }
    if (m.type === MessageType.AppResp && !m.reject && m.index !== undefined) {
      const offset = disk.snapshot?.meta.index ?? 0;
      if (m.index > offset + disk.entries.length) {
        this.violations.push(`${s.id} acknowledged index ${m.index} before persisting it`);
      }
    }
  }

  private start(id: NodeId): void {
    const s = this.server(id);
    const recovered = s.disk.load();
    const base = this.opts.options ?? {};
    const own = this.opts.nodeOptions?.[id] ?? {};
    const options: RaftOptions = {
      electionTicks: ELECTION_TICKS,
      heartbeatTicks: HEARTBEAT_TICKS,
      ...base,
      ...own,
      id,
      random: s.random,
    };
    s.raft = new RaftNode(options, recovered);
    s.applied = recovered.snapshot ? (JSON.parse(decoder.decode(recovered.snapshot.data)) as Applied[]) : [];
    s.readies = [];
    s.ticksSinceLeaderContact = 0;
    this.flush(id);
  }

  private server(id: NodeId): Server {
    const s = this.servers.get(id);
    if (!s) throw new Error(`no server ${id}`);
    return s;
  }

  /** One line per node, for failure messages. */
  describe(): string {
    return this.ids
      .map((id) => {
        if (!this.isUp(id)) return `${id}:down`;
        const st = this.status(id);
        return `${id}:${st.role}/t${st.term}/commit ${st.commit}/last ${st.lastIndex}/lead '${st.leader}'`;
      })
      .join(', ');
  }
}

// -------------------------------------------------------------------- helpers

function isCampaign(m: Message): boolean {
  return m.type === MessageType.PreVote || m.type === MessageType.Vote;
}

/** How an entry reads in assertions: the command text, '' for a no-op, 'conf:addLearner n4'. */
export function describeEntry(e: Entry): string {
  if (e.type === EntryType.ConfChange) {
    return e.change ? `conf:${e.change.type} ${e.change.node}` : 'bootstrap';
  }
  return decoder.decode(e.data);
}

const typeNames = Object.fromEntries(Object.entries(MessageType).map(([k, v]) => [v, k])) as Record<
  number,
  string
>;

/** "n1->n2 App t2 prev 3@t2 [4@t2] commit 3" — for traces and failure messages. */
export function describeMessage(m: Message): string {
  const parts = [`${m.from}->${m.to}`, typeNames[m.type] ?? String(m.type), `t${m.term}`];
  if (m.index !== undefined) parts.push(`i${m.index}${m.logTerm !== undefined ? `@t${m.logTerm}` : ''}`);
  if (m.entries) parts.push(`[${m.entries.map((e) => `${e.index}@t${e.term}`).join(' ')}]`);
  if (m.commit !== undefined) parts.push(`commit ${m.commit}`);
  if (m.reject) parts.push(`reject hint ${m.rejectHint ?? '-'}`);
  if (m.readSeq) parts.push(`readSeq ${m.readSeq}`);
  if (m.context) parts.push(`ctx ${m.context}`);
  if (m.snapshot) parts.push(`snap ${m.snapshot.meta.index}@t${m.snapshot.meta.term}`);
  if (m.transfer) parts.push('transfer');
  return parts.join(' ');
}

/** Message predicates, so filters in scripts read as sentences. */
export const is = {
  type:
    (...types: MessageType[]) =>
    (m: Message): boolean =>
      types.includes(m.type),
  from:
    (...ids: NodeId[]) =>
    (m: Message): boolean =>
      ids.includes(m.from),
  to:
    (...ids: NodeId[]) =>
    (m: Message): boolean =>
      ids.includes(m.to),
  /** An append carrying at least one entry of `term`. */
  carriesTerm:
    (term: number) =>
    (m: Message): boolean =>
      m.entries?.some((e) => e.term === term) ?? false,
};

/** All of the predicates hold. */
export function all(...preds: ((m: Message) => boolean)[]): (m: Message) => boolean {
  return (m) => preds.every((p) => p(m));
}

/** At least one of the predicates holds. */
export function any(...preds: ((m: Message) => boolean)[]): (m: Message) => boolean {
  return (m) => preds.some((p) => p(m));
}

export const T = MessageType;

const tracing = process.env.RAFT_TRACE === '1';
function trace(line: () => string): void {
  if (tracing) console.log(line());
}
