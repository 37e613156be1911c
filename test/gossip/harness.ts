/**
 * A hand-driven network for scripted protocol tests: a shared manual clock, nodes addressed
 * by name, and every message visible (and droppable) before delivery.
 */
import type { GossipConfig } from '../../src/gossip/config.js';
import { GossipNode } from '../../src/gossip/node.js';
import type {
  GossipMessage,
  MemberEvent,
  MemberMeta,
  MemberState,
  Outgoing,
} from '../../src/gossip/types.js';
import { Prng } from '../sim/prng.js';

export const meta: MemberMeta = {
  role: 'server',
  datacenter: 'dc1',
  ports: { rpc: 8300 },
  version: '1',
  tags: {},
};

export interface Sent extends Outgoing {
  from: string;
}

/** Drop rule: return true to lose the message. */
export type Drop = (sent: Sent) => boolean;

export class Harness {
  now = 0;
  readonly nodes = new Map<string, GossipNode>();
  readonly sent: Sent[] = [];
  readonly events: { observer: string; event: MemberEvent }[] = [];
  drop: Drop = () => false;
  private pending: Sent[] = [];
  private readonly rng: Prng;

  constructor(names: string[], config: Partial<GossipConfig> = {}, seed = 1) {
    this.rng = new Prng(seed);
    const states: MemberState[] = names.map((name) => ({
      name,
      address: name,
      incarnation: 1,
      status: 'alive',
      meta,
    }));
    for (const name of names) this.add(name, config, states);
  }

  add(name: string, config: Partial<GossipConfig>, members: MemberState[] = []): GossipNode {
    const random = this.rng.fork();
    const node = new GossipNode({
      name,
      address: name,
      meta,
      clock: () => this.now,
      random: () => random.float(),
      // Push-pull and reaping out of the way unless a test wants them.
      config: { pushPullIntervalMs: 3_600_000, ...config },
      members,
    });
    this.nodes.set(name, node);
    this.collect(name);
    return node;
  }

  node(name: string): GossipNode {
    const node = this.nodes.get(name);
    if (node === undefined) throw new Error(`no node ${name}`);
    return node;
  }

  /** Take `name`'s output into the network. */
  collect(name: string): void {
    const { messages, events } = this.node(name).takeOutput();
    for (const event of events) this.events.push({ observer: name, event });
    for (const m of messages) {
      const sent = { ...m, from: name };
      this.sent.push(sent);
      this.pending.push(sent);
    }
  }

  /** Deliver everything in flight (and what it causes) at the current time. */
  flush(): void {
    for (let rounds = 0; this.pending.length > 0; rounds++) {
      if (rounds > 10_000) throw new Error('message storm');
      const batch = this.pending;
      this.pending = [];
      for (const m of batch) {
        if (this.drop(m)) continue;
        const to = this.nodes.get(m.to);
        if (to === undefined) continue;
        to.receive(m.from, structuredClone(m.message));
        this.collect(m.to);
      }
    }
  }

  /** Move the clock in 10 ms steps, firing timers and delivering instantly after each. */
  advance(ms: number): void {
    const end = this.now + ms;
    while (this.now < end) {
      this.now = Math.min(end, this.now + 10);
      for (const [name, node] of this.nodes) {
        if (node.nextDeadlineMs() <= this.now) {
          node.tick();
          this.collect(name);
        }
      }
      this.flush();
    }
  }

  sentOfType<T extends GossipMessage['type']>(
    type: T,
  ): (Sent & { message: Extract<GossipMessage, { type: T }> })[] {
    return this.sent.filter((s) => s.message.type === type) as (Sent & {
      message: Extract<GossipMessage, { type: T }>;
    })[];
  }

  eventsOf(observer: string, type?: MemberEvent['type']): MemberEvent[] {
    return this.events
      .filter((e) => e.observer === observer && (type === undefined || e.event.type === type))
      .map((e) => e.event);
  }
}
