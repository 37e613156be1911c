/**
 * One member's SWIM failure detector and membership (Das, Gupta, Motivala 2002) with
 * Lifeguard (Dadgar, Phillips, Currey 2018), following memberlist's behaviour. Pure: time comes
 * from the injected clock, randomness from the injected generator, messages in through
 * `receive` and out through `takeOutput`, timers through `tick` at `nextDeadlineMs`.
 *
 * The shell's loop: after any call (`receive`, `tick`, `join`, `leave`, `updateMeta`), drain
 * `takeOutput()`, send its messages (UDP ones fit `udpBudgetBytes`; TCP push-pull ones are
 * request/response: the reply arrives as a `receive` from the peer's address), hand its events
 * on, and arrange to call `tick()` again at `nextDeadlineMs()`.
 */
import { invariant } from './assert.js';
import { Awareness } from './awareness.js';
import { BroadcastQueue } from './broadcast-queue.js';
import {
  type GossipConfig,
  pushPullIntervalMs,
  resolveConfig,
  retransmitLimit,
  suspicionTimeoutMinMs,
} from './config.js';
import { isActive, type MemberRecord, MemberTable, snapshotOf } from './member-table.js';
import { ProbeOrder } from './probe-order.js';
import { arrayHeaderGrowth, encodedSize, metaSize, updateSize } from './size.js';
import { Suspicion } from './suspicion.js';
import { Timers } from './timers.js';
import type {
  Address,
  GossipMessage,
  GossipOutput,
  MemberEvent,
  MemberEventType,
  MemberMeta,
  MemberState,
  Outgoing,
  Update,
} from './types.js';
import { parseMessage, parseMeta } from './validate.js';

export interface GossipNodeOptions {
  /** Unique in the pool (Consul's node name). */
  name: string;
  /** Where others reach this member. */
  address: Address;
  meta: MemberMeta;
  /** Monotonic milliseconds. */
  clock: () => number;
  /** Uniform in [0, 1), from a seeded generator in tests. */
  random: () => number;
  config?: Partial<GossipConfig>;
  /** Starting incarnation; a restarted member refutes any older view of itself anyway. */
  incarnation?: number;
  /** Members restored from a snapshot (Serf's): installed without gossip and without events. */
  members?: MemberState[];
}

/**
 * What `forceLeave` did: 'left' (now recorded and broadcast as left), or why it refused:
 * 'unknown' name, 'alive' member (it would refute), or 'self'.
 */
export type ForceLeaveResult = 'left' | 'unknown' | 'alive' | 'self';

/** Counters the shell exports as metrics. */
export interface GossipStats {
  probes: number;
  probesFailed: number;
  indirectProbes: number;
  nacksSent: number;
  nacksReceived: number;
  suspicionsStarted: number;
  refutations: number;
  invalidMessages: number;
  misdirectedPings: number;
  addressConflicts: number;
  membersDropped: number;
  relaysDropped: number;
}

/** The probe under way in this protocol period (SWIM §3.1). */
interface Probe {
  seq: number;
  target: string;
  /** Ping-reqs sent that asked for a nack, and nacks received (Lifeguard, LHA-Probe). */
  expectedNacks: number;
  nacks: number;
}

/** A ping-req we are serving: the ack or nack goes back to `origin` under `originSeq`. */
interface Relay {
  origin: Address;
  originSeq: number;
  wantNack: boolean;
}

const PROBE = 'probe';
const PROBE_TIMEOUT = 'probe-timeout';
const GOSSIP = 'gossip';
const PUSH_PULL = 'push-pull';
const REAP = 'reap';
const RECONNECT = 'reconnect';
const SUSPECT_PREFIX = 's:';
const RELAY_PREFIX = 'r:';
type UdpMessage = Exclude<GossipMessage, { type: 'push-pull' }>;

const REAP_INTERVAL_MS = 60_000;
const RELAY_NACK_FRACTION = 0.8;
/** Bound on ping-reqs served at once. */
const MAX_RELAYS = 1024;
/** Array header growth when updates pass 15 items (fixarray → array16). */
const UPDATES_HEADER_RESERVE = 2;

export class GossipNode {
  readonly name: string;
  readonly config: GossipConfig;
  private readonly clock: () => number;
  private readonly random: () => number;
  private readonly members = new MemberTable();
  private readonly self: MemberRecord;
  private readonly probeOrder: ProbeOrder;
  private readonly queue = new BroadcastQueue();
  private readonly awareness: Awareness;
  private readonly timers = new Timers();
  private readonly suspicions = new Map<string, Suspicion>();
  private readonly relays = new Map<number, Relay>();
  private probe: Probe | null = null;
  private seq = 0;
  private leaving = false;
  private messages: Outgoing[] = [];
  private events: MemberEvent[] = [];
  readonly stats: GossipStats = {
    probes: 0,
    probesFailed: 0,
    indirectProbes: 0,
    nacksSent: 0,
    nacksReceived: 0,
    suspicionsStarted: 0,
    refutations: 0,
    invalidMessages: 0,
    misdirectedPings: 0,
    addressConflicts: 0,
    membersDropped: 0,
    relaysDropped: 0,
  };

  constructor(options: GossipNodeOptions) {
    this.config = resolveConfig(options.config);
    this.clock = options.clock;
    this.random = options.random;
    this.name = options.name;
    if (options.name.length === 0) throw new RangeError('gossip member name must not be empty');
    const meta = this.checkedMeta(options.meta);
    const incarnation = options.incarnation ?? 1;
    if (!Number.isInteger(incarnation) || incarnation < 0)
      throw new RangeError(
        `gossip 'incarnation' must be a non-negative integer: current value is ${incarnation}`,
      );
    this.awareness = new Awareness(this.config.awarenessMaxMultiplier, this.config.lifeguard);
    this.probeOrder = new ProbeOrder(this.random);
    const now = this.clock();
    this.self = {
      name: this.name,
      address: options.address,
      incarnation,
      status: 'alive',
      meta,
      changedMs: now,
    };
    this.members.add(this.self);
    const metas = new Map<MemberMeta, MemberMeta>();
    for (const state of options.members ?? []) this.restore(state, metas, now);
    this.queue.enqueue(this.aliveUpdateOfSelf());
    // Stagger the periodic work so members started together do not act in lockstep.
    this.timers.set(PROBE, now + Math.floor(this.random() * this.config.probeIntervalMs));
    this.timers.set(GOSSIP, now + Math.floor(this.random() * this.config.gossipIntervalMs));
    const pushPullMs = pushPullIntervalMs(this.config, this.members.activeCount);
    this.timers.set(PUSH_PULL, now + Math.floor(this.random() * pushPullMs));
    this.timers.set(REAP, now + REAP_INTERVAL_MS);
    this.timers.set(RECONNECT, now + Math.floor(this.random() * this.config.reconnectIntervalMs));
  }

  // ---- the shell's inputs ------------------------------------------------------------------

  /** Run every timer that is due. */
  tick(): void {
    const now = this.clock();
    for (let key = this.timers.popDue(now); key !== undefined; key = this.timers.popDue(now))
      this.fire(key, now);
  }

  /** When `tick` next has work to do (clock milliseconds). */
  nextDeadlineMs(): number {
    return this.timers.next();
  }

  /** A decoded packet or stream message from `from`. Malformed input is counted and dropped. */
  receive(from: Address, raw: unknown): void {
    const parsed = parseMessage(raw, this.config.maxMembers);
    if (!parsed.ok) {
      this.stats.invalidMessages++;
      return;
    }
    const message = parsed.value;
    const now = this.clock();
    if (message.type !== 'push-pull') this.applyUpdates(message.updates, now);
    switch (message.type) {
      case 'ping':
        this.onPing(from, message);
        return;
      case 'ping-req':
        this.onPingReq(from, message, now);
        return;
      case 'ack':
        this.onAck(message.seq);
        return;
      case 'nack':
        this.onNack(message.seq);
        return;
      case 'gossip':
        return;
      case 'push-pull':
        this.onPushPull(from, message, now);
        return;
    }
  }

  /** Join a pool through one or more seed addresses: a push-pull to each (memberlist Join). */
  join(seeds: Address[]): void {
    for (const seed of seeds) this.sendPushPull(seed, true, false);
  }

  /**
   * Leave gracefully: broadcast a 'dead' about ourselves from ourselves, which everyone
   * records as 'left', not 'failed'. Probing stops; gossip goes on so the news spreads.
   * The shell keeps ticking until `leaveBroadcastDone()` (or its own timeout), then stops.
   */
  leave(): void {
    if (this.leaving) return;
    this.leaving = true;
    this.timers.cancel(PROBE);
    this.timers.cancel(PROBE_TIMEOUT);
    this.probe = null;
    this.onDead(
      { kind: 'dead', name: this.name, incarnation: this.self.incarnation, from: this.name },
      this.clock(),
    );
    invariant(this.self.status === 'left', 'leaving member must record itself as left');
  }

  /**
   * Consul's force-leave: record a failed (or suspect) member as having left, and broadcast it
   * as that member's own graceful leave at its current incarnation, so every member records
   * 'left' and the leader deregisters it. An alive member is refused (it would refute at once);
   * so are unknown names and this member itself. Already left: broadcast again, harmlessly.
   */
  forceLeave(name: string): ForceLeaveResult {
    const record = this.members.get(name);
    if (record === undefined) return 'unknown';
    if (record === this.self) return 'self';
    if (record.status === 'alive') return 'alive';
    const update: Update = { kind: 'dead', name, incarnation: record.incarnation, from: name };
    if (record.status === 'left') {
      this.queue.enqueue(update);
      return 'left';
    }
    this.onDead(update, this.clock());
    const after = this.members.get(name)?.status;
    invariant(after === 'left', () => `force-left ${name} is ${after}`);
    return 'left';
  }

  /** Whether the leave message has been piggybacked as many times as the retransmit limit asks. */
  leaveBroadcastDone(): boolean {
    return this.leaving && this.queue.pending(this.name) === undefined;
  }

  /** Publish new metadata: a higher incarnation, gossiped as an alive update. */
  updateMeta(meta: MemberMeta): void {
    const checked = this.checkedMeta(meta);
    if (this.leaving) return;
    this.self.meta = checked;
    this.setOwnIncarnation(this.self.incarnation + 1);
    this.queue.enqueue(this.aliveUpdateOfSelf());
  }

  /** Messages to send and events to report since the last call. */
  takeOutput(): GossipOutput {
    const output = { messages: this.messages, events: this.events };
    this.messages = [];
    this.events = [];
    return output;
  }

  // ---- queries -------------------------------------------------------------------------------

  /** Every known member, this one included (dead and left ones until reaped), as snapshots. */
  memberList(): MemberState[] {
    return [...this.members.values()].map(snapshotOf);
  }

  member(name: string): MemberState | undefined {
    const record = this.members.get(name);
    return record === undefined ? undefined : snapshotOf(record);
  }

  get incarnation(): number {
    return this.self.incarnation;
  }

  /** Lifeguard's local health multiplier score (0 = healthy). */
  get healthScore(): number {
    return this.awareness.healthScore;
  }

  /** Alive and suspect members, this one included. */
  get activeCount(): number {
    return this.members.activeCount;
  }

  /**
   * Cross-checks the core's bookkeeping; throws GossipInvariantError on a bug. O(members):
   * the simulator calls it between steps, production code need not.
   */
  assertConsistent(): void {
    let active = 0;
    for (const record of this.members.values()) {
      if (isActive(record.status)) active++;
      const suspected = this.suspicions.has(record.name);
      invariant(
        suspected === (record.status === 'suspect'),
        () => `${record.name} is ${record.status} with${suspected ? '' : 'out'} a suspicion timer`,
      );
      if (suspected)
        invariant(
          this.timers.has(SUSPECT_PREFIX + record.name),
          () => `suspicion of ${record.name} has no timer`,
        );
    }
    invariant(
      active === this.members.activeCount,
      () => `active count ${this.members.activeCount}, counted ${active}`,
    );
    invariant(this.members.get(this.name) === this.self, 'own record missing');
    invariant(
      this.self.status === (this.leaving ? 'left' : 'alive'),
      () => `own status ${this.self.status} while ${this.leaving ? '' : 'not '}leaving`,
    );
    invariant(this.leaving || this.timers.has(PROBE), 'probe timer missing');
    invariant(this.relays.size <= MAX_RELAYS, 'relay table over its bound');
  }

  // ---- timers --------------------------------------------------------------------------------

  private fire(key: string, now: number): void {
    if (key === PROBE) this.probeRound(now);
    else if (key === PROBE_TIMEOUT) this.indirectProbe();
    else if (key === GOSSIP) this.gossipRound(now);
    else if (key === PUSH_PULL) this.pushPullRound(now);
    else if (key === REAP) this.reap(now);
    else if (key === RECONNECT) this.reconnectRound(now);
    else if (key.startsWith(SUSPECT_PREFIX)) this.suspicionExpired(key.slice(SUSPECT_PREFIX.length), now);
    else if (key.startsWith(RELAY_PREFIX)) this.relayExpired(Number(key.slice(RELAY_PREFIX.length)));
    else invariant(false, () => `unknown timer ${key}`);
  }

  /** One protocol period (SWIM §3.1, §4.3): settle the last probe, then ping the next member. */
  private probeRound(now: number): void {
    if (this.probe !== null) this.probeFailed(this.probe, now);
    if (this.leaving) return;
    this.timers.set(PROBE, now + this.awareness.scale(this.config.probeIntervalMs));
    const target = this.probeOrder.next(
      (name) => {
        const record = this.members.get(name);
        return record !== undefined && isActive(record.status);
      },
      (name) => this.members.has(name),
    );
    if (target === undefined) return;
    const record = this.members.get(target)!;
    invariant(
      isActive(record.status) && target !== this.name,
      () => `probing ${target} in state ${record.status}`,
    );
    const seq = this.nextSeq();
    this.probe = { seq, target, expectedNacks: 0, nacks: 0 };
    this.stats.probes++;
    // Buddy system (Lifeguard): a member we suspect hears it first, on our ping, and can refute.
    const buddy: Update | undefined =
      this.config.lifeguard && record.status === 'suspect'
        ? { kind: 'suspect', name: target, incarnation: record.incarnation, from: this.name }
        : undefined;
    this.sendUdp(record.address, { type: 'ping', seq, from: this.name, target, updates: [] }, buddy);
    // LHA-Probe (Lifeguard): a member in poor health waits longer before blaming others.
    this.timers.set(PROBE_TIMEOUT, now + this.awareness.scale(this.config.probeTimeoutMs));
  }

  /** No direct ack in time: ask k random alive members to probe for us (SWIM §3.1). */
  private indirectProbe(): void {
    const probe = this.probe;
    if (probe === null) return;
    const target = this.members.get(probe.target);
    if (target === undefined || !isActive(target.status)) return;
    const helpers = this.members.randomMembers(
      this.config.indirectChecks,
      this.random,
      (r) => r.status === 'alive' && r.name !== this.name && r.name !== probe.target,
    );
    const nack = this.config.lifeguard;
    for (const helper of helpers) {
      this.stats.indirectProbes++;
      this.sendUdp(helper.address, {
        type: 'ping-req',
        seq: probe.seq,
        from: this.name,
        target: target.name,
        targetAddress: target.address,
        nack,
        updates: [],
      });
    }
    if (nack) probe.expectedNacks = helpers.length;
  }

  /** The period ended without an ack: adjust local health and suspect the target (SWIM §4.2). */
  private probeFailed(probe: Probe, now: number): void {
    this.probe = null;
    this.timers.cancel(PROBE_TIMEOUT);
    this.stats.probesFailed++;
    // Lifeguard LHA-Probe: with helpers that nack, only their missing nacks count against us
    // (they show our own messages are not getting through); without any, the failure does.
    if (probe.expectedNacks > 0) this.awareness.applyDelta(probe.expectedNacks - probe.nacks);
    else this.awareness.applyDelta(1);
    // A member already suspect is suspected again: our failed probe confirms (LHA-Suspicion).
    const target = this.members.get(probe.target);
    if (target === undefined || !isActive(target.status)) return;
    this.onSuspect(
      { kind: 'suspect', name: target.name, incarnation: target.incarnation, from: this.name },
      now,
    );
  }

  /** Pending updates to a few random members (SWIM §4.1), including the recently dead. */
  private gossipRound(now: number): void {
    this.timers.set(GOSSIP, now + this.config.gossipIntervalMs);
    if (this.queue.length === 0) return;
    const targets = this.members.randomMembers(this.config.gossipNodes, this.random, (r) => {
      if (r.name === this.name) return false;
      if (isActive(r.status)) return true;
      return r.status === 'dead' && now - r.changedMs <= this.config.gossipToTheDeadMs;
    });
    for (const target of targets) {
      if (this.queue.length === 0) return;
      this.sendUdp(target.address, { type: 'gossip', from: this.name, updates: [] });
    }
  }

  /** Periodic full state exchange with one random alive member, over TCP (memberlist pushPull). */
  private pushPullRound(now: number): void {
    this.timers.set(PUSH_PULL, now + pushPullIntervalMs(this.config, this.members.activeCount));
    if (this.leaving) return;
    const [peer] = this.members.randomMembers(
      1,
      this.random,
      (r) => r.status === 'alive' && r.name !== this.name,
    );
    if (peer !== undefined) this.sendPushPull(peer.address, false, false);
  }

  /** Serf's reconnect: try one random failed member, so healed partitions merge again. */
  private reconnectRound(now: number): void {
    this.timers.set(RECONNECT, now + this.config.reconnectIntervalMs);
    if (this.leaving) return;
    const [peer] = this.members.randomMembers(1, this.random, (r) => r.status === 'dead');
    if (peer !== undefined) this.sendPushPull(peer.address, false, false);
  }

  /** Forget members dead or left for longer than reapAfterMs (Serf's reaper). */
  private reap(now: number): void {
    this.timers.set(REAP, now + REAP_INTERVAL_MS);
    const expired: string[] = [];
    for (const record of this.members.values())
      if (!isActive(record.status) && now - record.changedMs >= this.config.reapAfterMs)
        expired.push(record.name);
    for (const name of expired) {
      invariant(name !== this.name, 'a member never reaps itself');
      this.members.remove(name);
    }
  }

  /** LHA-Suspicion: the suspicion ran out before a refutation: declare the member dead. */
  private suspicionExpired(name: string, now: number): void {
    const suspicion = this.suspicions.get(name);
    const record = this.members.get(name);
    if (suspicion === undefined || record === undefined || record.status !== 'suspect') return;
    this.onDead({ kind: 'dead', name, incarnation: record.incarnation, from: this.name }, now);
    const after = this.members.get(name)?.status;
    invariant(after === 'dead', () => `suspicion of ${name} expired but it is ${after}`);
  }

  /** The relayed probe got no ack in time: tell the origin we tried (Lifeguard nack). */
  private relayExpired(seq: number): void {
    const relay = this.relays.get(seq);
    if (relay === undefined) return;
    this.relays.delete(seq);
    if (!relay.wantNack) return;
    this.stats.nacksSent++;
    this.sendUdp(relay.origin, { type: 'nack', seq: relay.originSeq, from: this.name, updates: [] });
  }

  // ---- messages ------------------------------------------------------------------------------

  private onPing(from: Address, ping: Extract<GossipMessage, { type: 'ping' }>): void {
    if (ping.target !== this.name) {
      this.stats.misdirectedPings++;
      return;
    }
    this.sendUdp(from, { type: 'ack', seq: ping.seq, from: this.name, updates: [] });
  }

  private onPingReq(from: Address, request: Extract<GossipMessage, { type: 'ping-req' }>, now: number): void {
    if (this.relays.size >= MAX_RELAYS) {
      this.stats.relaysDropped++;
      return;
    }
    const seq = this.nextSeq();
    this.relays.set(seq, { origin: from, originSeq: request.seq, wantNack: request.nack });
    // The nack must reach the prober before its period ends: memberlist waits the whole probe
    // timeout here, which races the prober's deadline; 80% of it leaves room for the trip back.
    this.timers.set(RELAY_PREFIX + seq, now + Math.floor(this.config.probeTimeoutMs * RELAY_NACK_FRACTION));
    this.sendUdp(request.targetAddress, {
      type: 'ping',
      seq,
      from: this.name,
      target: request.target,
      updates: [],
    });
  }

  private onAck(seq: number): void {
    if (this.probe !== null && this.probe.seq === seq) {
      this.probe = null;
      this.timers.cancel(PROBE_TIMEOUT);
      this.awareness.applyDelta(-1);
      return;
    }
    const relay = this.relays.get(seq);
    if (relay === undefined) return;
    this.relays.delete(seq);
    this.timers.cancel(RELAY_PREFIX + seq);
    this.sendUdp(relay.origin, { type: 'ack', seq: relay.originSeq, from: this.name, updates: [] });
  }

  private onNack(seq: number): void {
    if (this.probe === null || this.probe.seq !== seq) return;
    this.stats.nacksReceived++;
    this.probe.nacks++;
  }

  private onPushPull(
    from: Address,
    message: Extract<GossipMessage, { type: 'push-pull' }>,
    now: number,
  ): void {
    // Answer with our state as it was before merging, as memberlist does.
    if (!message.reply) this.sendPushPull(from, false, true);
    for (const state of message.members) this.merge(state, now);
  }

  /** memberlist mergeState: a remote 'dead' only makes us suspect; 'left' is taken as is. */
  private merge(state: MemberState, now: number): void {
    const local = this.members.get(state.name);
    if (local !== undefined && local.status === state.status && state.name !== this.name) {
      if (state.incarnation <= local.incarnation) return;
    }
    switch (state.status) {
      case 'alive':
        this.onAlive(
          {
            kind: 'alive',
            name: state.name,
            address: state.address,
            incarnation: state.incarnation,
            meta: state.meta,
          },
          now,
        );
        return;
      case 'left':
        this.onDead(
          { kind: 'dead', name: state.name, incarnation: state.incarnation, from: state.name },
          now,
        );
        return;
      case 'dead':
      case 'suspect':
        this.onSuspect(
          { kind: 'suspect', name: state.name, incarnation: state.incarnation, from: this.name },
          now,
        );
        return;
    }
  }

  private applyUpdates(updates: Update[], now: number): void {
    for (const update of updates) {
      if (update.kind === 'alive') this.onAlive(update, now);
      else if (update.kind === 'suspect') this.onSuspect(update, now);
      else this.onDead(update, now);
    }
  }

  // ---- state changes (memberlist aliveNode / suspectNode / deadNode) -------------------------

  private onAlive(update: Extract<Update, { kind: 'alive' }>, now: number): void {
    if (update.name === this.name) {
      this.aliveAboutSelf(update);
      return;
    }
    const record = this.members.get(update.name);
    if (record === undefined) {
      if (this.members.size >= this.config.maxMembers) {
        this.stats.membersDropped++;
        return;
      }
      const added: MemberRecord = {
        name: update.name,
        address: update.address,
        incarnation: update.incarnation,
        status: 'alive',
        meta: update.meta,
        changedMs: now,
      };
      this.members.add(added);
      this.probeOrder.insert(added.name);
      this.queue.enqueue(update);
      this.event('join', added, now);
      return;
    }
    // SWIM §4.2: only a higher incarnation overrides what we know.
    if (update.incarnation <= record.incarnation) return;
    // A different process claiming a live member's name: keep the one we know (memberlist).
    if (isActive(record.status) && update.address !== record.address) {
      this.stats.addressConflicts++;
      return;
    }
    const before = record.status;
    const changed = update.address !== record.address || !sameMeta(update.meta, record.meta);
    this.clearSuspicion(record.name);
    record.incarnation = update.incarnation;
    record.address = update.address;
    record.meta = update.meta;
    this.members.setStatus(record, 'alive', now);
    this.probeOrder.insert(record.name);
    this.queue.enqueue(update);
    if (before === 'dead' || before === 'left') this.event('join', record, now);
    else {
      if (before === 'suspect') this.event('alive', record, now);
      if (changed) this.event('update', record, now);
    }
  }

  /** Someone holds a view of us we must correct: a higher or conflicting incarnation. */
  private aliveAboutSelf(update: Extract<Update, { kind: 'alive' }>): void {
    if (this.leaving || update.incarnation < this.self.incarnation) return;
    const same =
      update.incarnation === this.self.incarnation &&
      update.address === this.self.address &&
      sameMeta(update.meta, this.self.meta);
    if (!same) this.refute(update.incarnation);
  }

  private onSuspect(update: Extract<Update, { kind: 'suspect' }>, now: number): void {
    const record = this.members.get(update.name);
    if (record === undefined || update.incarnation < record.incarnation) return;
    const suspicion = this.suspicions.get(update.name);
    if (suspicion !== undefined) {
      // LHA-Suspicion: an independent confirmation shortens the timeout; pass it on.
      if (suspicion.confirm(update.from)) {
        this.timers.set(SUSPECT_PREFIX + update.name, suspicion.deadlineMs());
        this.queue.enqueue(update);
      }
      return;
    }
    if (record.status !== 'alive') return;
    if (record === this.self) {
      // SWIM §4.2: refute with a higher incarnation. Lifeguard: having to do so is a sign
      // that we are slow ourselves.
      this.refute(update.incarnation);
      return;
    }
    this.queue.enqueue(update);
    record.incarnation = update.incarnation;
    this.members.setStatus(record, 'suspect', now);
    this.startSuspicion(record, update.from, now);
    this.event('suspect', record, now);
  }

  private startSuspicion(record: MemberRecord, from: string, now: number): void {
    const n = this.members.activeCount;
    const minMs = suspicionTimeoutMinMs(this.config, n);
    // Lifeguard: start at the maximum and expect k = suspicionMult - 2 confirmations, unless
    // the pool is too small to supply them (memberlist). Plain SWIM: one fixed timeout.
    let expected = this.config.lifeguard ? this.config.suspicionMult - 2 : 0;
    if (n - 2 < expected) expected = 0;
    const maxMs = this.config.lifeguard ? minMs * this.config.suspicionMaxTimeoutMult : minMs;
    const suspicion = new Suspicion(record.incarnation, now, expected, minMs, maxMs, from);
    this.suspicions.set(record.name, suspicion);
    this.timers.set(SUSPECT_PREFIX + record.name, suspicion.deadlineMs());
    this.stats.suspicionsStarted++;
  }

  private onDead(update: Extract<Update, { kind: 'dead' }>, now: number): void {
    const record = this.members.get(update.name);
    if (record === undefined) return;
    const graceful = update.from === update.name;
    // A leave of a member that already failed here is taken at any incarnation: a force-leave
    // carries the incarnation its sender knew, which can be behind ours (a refutation it never
    // heard), and a failed member does not come back at an old incarnation anyway. Dropping it
    // would leave the member failed here and left everywhere else. It is passed on at its own
    // incarnation, though: where the member is alive at a newer one, it must not count.
    // (Serf's force-leave has its own Lamport clock for this; ours rides on incarnations.)
    const lateLeave = graceful && record.status === 'dead' && update.incarnation < record.incarnation;
    if (update.incarnation < record.incarnation && !lateLeave) return;
    this.clearSuspicion(update.name);
    // A failed member's own leave (or a force-leave on its behalf) still turns it into 'left'.
    if (record.status === 'left' || (record.status === 'dead' && !graceful)) return;
    if (record === this.self && !this.leaving) {
      this.refute(update.incarnation);
      return;
    }
    this.queue.enqueue(update);
    if (!lateLeave) record.incarnation = update.incarnation;
    this.members.setStatus(record, graceful ? 'left' : 'dead', now);
    if (record !== this.self) this.event(graceful ? 'left' : 'failed', record, now);
  }

  private clearSuspicion(name: string): void {
    if (this.suspicions.delete(name)) this.timers.cancel(SUSPECT_PREFIX + name);
  }

  /** Announce ourselves alive with an incarnation above `accused` (SWIM §4.2). */
  private refute(accused: number): void {
    this.stats.refutations++;
    this.awareness.applyDelta(1);
    this.setOwnIncarnation(Math.max(this.self.incarnation, accused) + 1);
    this.queue.enqueue(this.aliveUpdateOfSelf());
  }

  private setOwnIncarnation(incarnation: number): void {
    invariant(
      incarnation > this.self.incarnation,
      () => `own incarnation must only grow: ${this.self.incarnation} -> ${incarnation}`,
    );
    this.self.incarnation = incarnation;
  }

  // ---- output --------------------------------------------------------------------------------

  /** Send over UDP with as many pending updates piggybacked as the budget allows (SWIM §4.1). */
  private sendUdp(to: Address, message: UdpMessage, first?: Update): void {
    invariant(message.updates.length === 0, 'updates are filled in here');
    const baseBytes = encodedSize(message);
    let updatesBytes = 0;
    if (first !== undefined) {
      message.updates.push(first);
      updatesBytes += updateSize(first);
    }
    const budget = this.config.udpBudgetBytes - baseBytes - UPDATES_HEADER_RESERVE - updatesBytes;
    if (this.queue.length > 0)
      updatesBytes += this.queue.take(message.updates, budget, this.retransmitLimit(), first?.name);
    if (message.type === 'gossip' && message.updates.length === 0) return;
    // The empty array's one-byte header grows past 15 items (the reserve covers it).
    const bytes = baseBytes + updatesBytes + arrayHeaderGrowth(message.updates.length);
    invariant(
      bytes <= this.config.udpBudgetBytes,
      () => `udp ${message.type} of ${bytes} bytes over the budget`,
    );
    this.messages.push({ to, transport: 'udp', message, bytes });
  }

  private sendPushPull(to: Address, join: boolean, reply: boolean): void {
    const message: GossipMessage = {
      type: 'push-pull',
      from: this.name,
      join,
      reply,
      members: this.memberList(),
    };
    this.messages.push({ to, transport: 'tcp', message, bytes: encodedSize(message) });
  }

  private event(type: MemberEventType, record: MemberRecord, now: number): void {
    this.events.push({ type, member: snapshotOf(record), atMs: now });
  }

  // ---- helpers -------------------------------------------------------------------------------

  private retransmitLimit(): number {
    return retransmitLimit(this.config.retransmitMult, this.members.activeCount);
  }

  private nextSeq(): number {
    this.seq = this.seq >= 0xffffffff ? 1 : this.seq + 1;
    return this.seq;
  }

  private aliveUpdateOfSelf(): Update {
    return {
      kind: 'alive',
      name: this.name,
      address: this.self.address,
      incarnation: this.self.incarnation,
      meta: this.self.meta,
    };
  }

  private checkedMeta(meta: MemberMeta): MemberMeta {
    let checked: MemberMeta;
    try {
      checked = parseMeta(meta);
    } catch (error) {
      throw new RangeError(`gossip 'meta' is invalid: ${(error as Error).message}`);
    }
    const size = metaSize(checked);
    if (size > this.config.metaMaxBytes)
      throw new RangeError(
        `gossip 'meta' must encode to at most ${this.config.metaMaxBytes} bytes: it takes ${size}`,
      );
    return checked;
  }

  /** Install a member from a snapshot without gossiping it. */
  private restore(state: MemberState, checkedMetas: Map<MemberMeta, MemberMeta>, now: number): void {
    if (state.name === this.name || this.members.has(state.name)) return;
    let meta = checkedMetas.get(state.meta);
    if (meta === undefined) {
      meta = this.checkedMeta(state.meta);
      checkedMetas.set(state.meta, meta);
    }
    const record: MemberRecord = {
      name: state.name,
      address: state.address,
      incarnation: state.incarnation,
      // A restored suspicion has no timer behind it: the member is probed afresh.
      status: state.status === 'suspect' ? 'alive' : state.status,
      meta,
      changedMs: now,
    };
    this.members.add(record);
    this.probeOrder.insert(record.name);
  }
}

function sameMeta(a: MemberMeta, b: MemberMeta): boolean {
  if (a === b) return true;
  return (
    a.role === b.role &&
    a.datacenter === b.datacenter &&
    a.version === b.version &&
    sameRecord(a.ports, b.ports) &&
    sameRecord(a.tags, b.tags)
  );
}

function sameRecord(a: Record<string, unknown>, b: Record<string, unknown>): boolean {
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every((key) => a[key] === b[key]);
}
