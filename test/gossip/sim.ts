/**
 * A deterministic simulator for the gossip core: N members on one simulated clock, a network
 * with latency, UDP loss and partitions, and faults — crashed, paused (SIGSTOP) and slow
 * (CPU-starved: inbound messages wait in a queue, timers still fire on time, as in Lifeguard's
 * evaluation) members. Everything random comes from one seed, so a run replays exactly.
 */
import { defaultConfig, type GossipConfig } from '../../src/gossip/config.js';
import { GossipNode } from '../../src/gossip/node.js';
import type { Address, GossipMessage, MemberEvent, MemberMeta, MemberState } from '../../src/gossip/types.js';
import { EventQueue } from '../sim/event-queue.js';
import { Prng } from '../sim/prng.js';

export interface GossipSimOptions {
  seed: number;
  /** Members present from the start, named m0..m{n-1}. */
  members: number;
  config?: Partial<GossipConfig>;
  /** Probability that a UDP packet is lost. TCP is reliable (it retransmits) but slower. */
  lossRate?: number;
  /** One-way latency = latencyMinMs + exponential with mean latencyMeanExtraMs. */
  latencyMinMs?: number;
  latencyMeanExtraMs?: number;
  /**
   * 'converged' (default): every member starts knowing all the others (a restored snapshot).
   * 'join': m0 starts alone and every other member joins through it at a random time in the
   * first second.
   */
  start?: 'converged' | 'join';
  /** A paused member's socket buffer: packets past this many are lost. */
  pausedBufferPackets?: number;
}

/** Condition of a member as the simulator made it (the truth the checkers compare against). */
export type Condition = 'healthy' | 'crashed' | 'paused' | 'slow' | 'left';

interface SimMember {
  name: string;
  /** Index in creation order, for the trace hash. */
  id: number;
  address: Address;
  node: GossipNode;
  condition: Condition;
  /** Per incarnation of the process: a restart makes a new one. */
  generation: number;
  wakeAtMs: number;
  wakeToken: number;
  /** Slow members: the time the last queued inbound message will be processed. */
  slowQueueMs: number;
  slowDelayMs: number;
  pausedInbox: { from: Address; message: GossipMessage }[];
  droppedWhilePaused: number;
}

export interface TrafficStats {
  messages: number;
  bytes: number;
  udpMessages: number;
  tcpMessages: number;
  byType: Record<string, number>;
}

const baseMeta: MemberMeta = { role: 'client', datacenter: 'dc1', ports: {}, version: '0.1.0', tags: {} };

/** The i-th simulated member's name. */
export function memberName(i: number): string {
  return `m${i}`;
}

export class GossipSim {
  now = 0;
  readonly config: GossipConfig;
  private readonly queue = new EventQueue();
  private readonly rng: Prng;
  private readonly members = new Map<string, SimMember>();
  private readonly byAddress = new Map<Address, SimMember>();
  private readonly lossRate: number;
  private readonly latencyMinMs: number;
  private readonly latencyMeanExtraMs: number;
  private readonly pausedBufferPackets: number;
  /** Partition group per member name; members in different groups cannot talk. */
  private groups: Map<string, number> | null = null;
  private nextWakeToken = 1;
  /** FNV-1a over every delivery and event: equal seeds give equal traces. */
  private traceHash = 0x811c9dc5;
  readonly traffic: TrafficStats = { messages: 0, bytes: 0, udpMessages: 0, tcpMessages: 0, byType: {} };
  /** subject → observer → first time that observer reported it, per event type. */
  readonly firstSeen = {
    failed: new Map<string, Map<string, number>>(),
    left: new Map<string, Map<string, number>>(),
    join: new Map<string, Map<string, number>>(),
  };
  /** subject → when the first member suspected it. */
  readonly firstSuspectedAt = new Map<string, number>();
  /** Per subject, events reported about it while it was healthy (or merely slow). */
  readonly falsePositives = {
    failed: new Map<string, number>(),
    suspect: new Map<string, number>(),
  };
  /** Cross-check every member every this many simulator steps (0 = never; tests set it). */
  checkEvery = 0;
  /** Optional observer of every event (tests print traces with it). */
  onEvent: ((observer: string, event: MemberEvent) => void) | null = null;

  constructor(options: GossipSimOptions) {
    this.rng = new Prng(options.seed);
    this.config = { ...defaultConfig, ...options.config };
    this.lossRate = options.lossRate ?? 0;
    this.latencyMinMs = options.latencyMinMs ?? 1;
    this.latencyMeanExtraMs = options.latencyMeanExtraMs ?? 2;
    this.pausedBufferPackets = options.pausedBufferPackets ?? 256;
    const names = Array.from({ length: options.members }, (_, i) => memberName(i));
    if ((options.start ?? 'converged') === 'converged') {
      const states: MemberState[] = names.map((name) => ({
        name,
        address: addressOf(name),
        incarnation: 1,
        status: 'alive',
        meta: baseMeta,
      }));
      for (const name of names) this.spawn(name, states);
    } else {
      this.spawn(names[0]!, []);
      for (const name of names.slice(1)) {
        const at = this.rng.int(0, 1000);
        this.queue.push(at, () => this.addMember(name, [addressOf(names[0]!)]));
      }
    }
  }

  // ---- driving -------------------------------------------------------------------------------

  runUntil(timeMs: number): void {
    let steps = 0;
    for (;;) {
      if (this.checkEvery > 0 && ++steps % this.checkEvery === 0) this.assertConsistent();
      const next = this.queue.peekTime();
      if (next === undefined || next > timeMs) break;
      const event = this.queue.pop()!;
      this.now = event.time;
      event.run();
    }
    this.now = Math.max(this.now, timeMs);
  }

  runFor(durationMs: number): void {
    this.runUntil(this.now + durationMs);
  }

  /** Run until `done()` holds (checked every 100 ms) or `limitMs` passes; the time it took, or null. */
  runUntilTrue(done: () => boolean, limitMs: number): number | null {
    const start = this.now;
    while (this.now - start < limitMs) {
      if (done()) return this.now - start;
      this.runFor(100);
    }
    return done() ? this.now - start : null;
  }

  // ---- faults and membership -----------------------------------------------------------------

  /** Start a new member (or restart a crashed or departed one) and join through `seeds`. */
  addMember(name: string, seeds: Address[]): GossipNode {
    const old = this.members.get(name);
    if (old !== undefined && (old.condition === 'healthy' || old.condition === 'slow'))
      throw new Error(`addMember: ${name} is still running`);
    const member = this.spawn(name, []);
    member.node.join(seeds);
    this.afterInput(member);
    return member.node;
  }

  /** SIGKILL: the process stops; packets to it vanish. */
  crash(name: string): void {
    this.get(name).condition = 'crashed';
  }

  /** SIGSTOP: nothing runs; packets wait in a bounded socket buffer. */
  pause(name: string): void {
    this.get(name).condition = 'paused';
  }

  /** SIGCONT: process the buffered packets, then every overdue timer. */
  resume(name: string): void {
    const member = this.get(name);
    if (member.condition !== 'paused') throw new Error(`resume: ${name} is ${member.condition}`);
    member.condition = 'healthy';
    const inbox = member.pausedInbox;
    member.pausedInbox = [];
    for (const { from, message } of inbox) {
      member.node.receive(from, message);
      this.afterInput(member);
    }
    member.node.tick();
    this.afterInput(member);
  }

  /** CPU starvation: every inbound message waits up to 2 × meanDelayMs (FIFO) before processing. */
  slow(name: string, meanDelayMs: number): void {
    const member = this.get(name);
    member.condition = 'slow';
    member.slowDelayMs = meanDelayMs;
  }

  leave(name: string): void {
    const member = this.get(name);
    member.node.leave();
    this.afterInput(member);
    member.condition = 'left';
  }

  /** Split the members into groups that cannot reach each other; unlisted members form one more. */
  partition(groups: string[][]): void {
    this.groups = new Map();
    groups.forEach((group, index) => {
      for (const name of group) this.groups!.set(name, index + 1);
    });
  }

  heal(): void {
    this.groups = null;
  }

  // ---- inspection ----------------------------------------------------------------------------

  node(name: string): GossipNode {
    return this.get(name).node;
  }

  condition(name: string): Condition {
    return this.get(name).condition;
  }

  /** Names of members whose process runs (healthy or slow). */
  running(): string[] {
    return [...this.members.values()]
      .filter((m) => m.condition === 'healthy' || m.condition === 'slow')
      .map((m) => m.name);
  }

  /** How every running member other than `subject` sees it. */
  viewsOf(subject: string): (string | undefined)[] {
    return this.running()
      .filter((name) => name !== subject)
      .map((name) => this.get(name).node.member(subject)?.status);
  }

  /** Time from `sinceMs` until every running member other than `subject` reported `type`, or null. */
  spreadTime(type: 'failed' | 'left' | 'join', subject: string, sinceMs: number): number | null {
    const seen = this.firstSeen[type].get(subject);
    let latest = sinceMs;
    for (const name of this.running()) {
      if (name === subject) continue;
      const at = seen?.get(name);
      if (at === undefined || at < sinceMs) return null;
      latest = Math.max(latest, at);
    }
    return latest - sinceMs;
  }

  /** False 'failed' or 'suspect' events (observer × subject), leaving out `except`. */
  falsePositiveEvents(type: 'failed' | 'suspect', except: string[] = []): number {
    let total = 0;
    for (const [subject, count] of this.falsePositives[type]) if (!except.includes(subject)) total += count;
    return total;
  }

  /** Distinct healthy members someone reported as `type`, leaving out `except`. */
  falsePositiveMembers(type: 'failed' | 'suspect', except: string[] = []): number {
    return [...this.falsePositives[type].keys()].filter((subject) => !except.includes(subject)).length;
  }

  get trace(): number {
    return this.traceHash;
  }

  // ---- internals -----------------------------------------------------------------------------

  private get(name: string): SimMember {
    const member = this.members.get(name);
    if (member === undefined) throw new Error(`no member ${name}`);
    return member;
  }

  private spawn(name: string, known: MemberState[]): SimMember {
    const random = this.rng.fork();
    const node = new GossipNode({
      name,
      address: addressOf(name),
      meta: baseMeta,
      clock: () => this.now,
      random: () => random.float(),
      config: this.config,
      members: known,
    });
    const previous = this.members.get(name);
    const member: SimMember = {
      name,
      id: previous?.id ?? this.members.size,
      address: addressOf(name),
      node,
      condition: 'healthy',
      generation: (previous?.generation ?? 0) + 1,
      wakeAtMs: Number.POSITIVE_INFINITY,
      wakeToken: 0,
      slowQueueMs: 0,
      slowDelayMs: 0,
      pausedInbox: [],
      droppedWhilePaused: 0,
    };
    this.members.set(name, member);
    this.byAddress.set(member.address, member);
    this.afterInput(member);
    return member;
  }

  /** Every member's bookkeeping cross-checked (GossipNode.assertConsistent); throws on a bug. */
  assertConsistent(): void {
    for (const member of this.members.values()) member.node.assertConsistent();
  }

  /** Send what the node produced, record its events, and schedule its next timer. */
  private afterInput(member: SimMember): void {
    const { messages, events } = member.node.takeOutput();
    for (const event of events) this.record(member.name, event);
    for (const out of messages) this.send(member, out.to, out.transport, out.message, out.bytes);
    this.scheduleWake(member);
  }

  private scheduleWake(member: SimMember): void {
    const due = member.node.nextDeadlineMs();
    if (!(due < member.wakeAtMs)) return;
    const token = this.nextWakeToken++;
    member.wakeAtMs = due;
    member.wakeToken = token;
    const generation = member.generation;
    this.queue.push(Math.max(due, this.now), () => {
      if (member.wakeToken !== token || member.generation !== generation) return;
      member.wakeAtMs = Number.POSITIVE_INFINITY;
      // A paused process's timers wait for SIGCONT; a crashed one's never run.
      if (member.condition === 'crashed' || member.condition === 'left' || member.condition === 'paused') {
        if (member.condition === 'left') this.tickLeaving(member);
        return;
      }
      member.node.tick();
      this.afterInput(member);
    });
  }

  /** A leaving member keeps gossiping until its leave message is out, then stops. */
  private tickLeaving(member: SimMember): void {
    if (member.node.leaveBroadcastDone()) return;
    member.node.tick();
    this.afterInput(member);
  }

  private send(
    sender: SimMember,
    to: Address,
    transport: 'udp' | 'tcp',
    message: GossipMessage,
    bytes: number,
  ): void {
    this.traffic.messages++;
    this.traffic.bytes += bytes;
    if (transport === 'udp') this.traffic.udpMessages++;
    else this.traffic.tcpMessages++;
    this.traffic.byType[message.type] = (this.traffic.byType[message.type] ?? 0) + 1;
    const receiver = this.byAddress.get(to);
    if (receiver === undefined || !this.reachable(sender.name, receiver.name)) return;
    if (transport === 'udp' && this.lossRate > 0 && this.rng.chance(this.lossRate)) return;
    // TCP: a connection handshake first, and lost segments retransmitted after ~200 ms.
    let latency = this.latency();
    if (transport === 'tcp') {
      latency += 2 * this.latency();
      while (this.lossRate > 0 && this.rng.chance(this.lossRate)) latency += 200;
    }
    const generation = receiver.generation;
    const from = sender.address;
    this.queue.push(this.now + latency, () => this.deliver(receiver, generation, from, message));
  }

  private deliver(receiver: SimMember, generation: number, from: Address, message: GossipMessage): void {
    if (receiver.generation !== generation) return;
    const sender = this.byAddress.get(from);
    if (sender !== undefined && !this.reachable(sender.name, receiver.name)) return;
    switch (receiver.condition) {
      case 'crashed':
        return;
      case 'left':
        if (!receiver.node.leaveBroadcastDone()) this.process(receiver, from, message);
        return;
      case 'paused':
        if (receiver.pausedInbox.length < this.pausedBufferPackets)
          receiver.pausedInbox.push({ from, message });
        else receiver.droppedWhilePaused++;
        return;
      case 'slow': {
        const at = Math.max(this.now + this.rng.float() * 2 * receiver.slowDelayMs, receiver.slowQueueMs);
        receiver.slowQueueMs = at;
        this.queue.push(at, () => {
          if (receiver.generation !== generation || receiver.condition !== 'slow') return;
          this.process(receiver, from, message);
        });
        return;
      }
      default:
        this.process(receiver, from, message);
    }
  }

  private process(receiver: SimMember, from: Address, message: GossipMessage): void {
    this.hash(
      this.now,
      receiver.id,
      message.type.length,
      message.type === 'push-pull' ? 0 : message.updates.length,
    );
    receiver.node.receive(from, message);
    this.afterInput(receiver);
  }

  private reachable(a: string, b: string): boolean {
    if (this.groups === null) return true;
    return (this.groups.get(a) ?? 0) === (this.groups.get(b) ?? 0);
  }

  private latency(): number {
    return this.latencyMinMs - Math.log(1 - this.rng.float()) * this.latencyMeanExtraMs;
  }

  private record(observer: string, event: MemberEvent): void {
    const subject = event.member.name;
    this.hash(this.now, this.get(observer).id, event.type.length, event.member.incarnation);
    this.hash(this.members.get(subject)?.id ?? -1, 0, 0, 0);
    this.onEvent?.(observer, event);
    const type = event.type;
    if (type === 'suspect' && !this.firstSuspectedAt.has(subject))
      this.firstSuspectedAt.set(subject, this.now);
    if (type === 'failed' || type === 'left' || type === 'join') {
      let seen = this.firstSeen[type].get(subject);
      if (seen === undefined) {
        seen = new Map();
        this.firstSeen[type].set(subject, seen);
      }
      if (!seen.has(observer)) seen.set(observer, this.now);
    }
    const truth = this.members.get(subject)?.condition;
    if (truth !== 'healthy' && truth !== 'slow') return;
    if (type === 'failed' || type === 'suspect') {
      const counts = this.falsePositives[type];
      counts.set(subject, (counts.get(subject) ?? 0) + 1);
    }
  }

  private hash(a: number, b: number, c: number, d: number): void {
    let h = this.traceHash;
    for (const x of [Math.round(a * 1000), b, c, d]) h = Math.imul(h ^ (x | 0), 16777619) >>> 0;
    this.traceHash = h;
  }
}

export function addressOf(name: string): Address {
  return `${name}:8301`;
}
