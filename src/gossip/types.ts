/**
 * Types shared by the pure gossip core (SWIM + Lifeguard) and the shell that carries its
 * messages over UDP and TCP. Nothing here does I/O. Messages are plain objects of strings,
 * non-negative integers, booleans, arrays and maps, so the shell can msgpack them as they are.
 */

/** A transport address as the shell understands it, e.g. '10.0.0.5:8301'. Opaque to the core. */
export type Address = string;

/** A member's state as every member sees it (SWIM §4.2, plus 'left' for a graceful leave). */
export type MemberStatus = 'alive' | 'suspect' | 'dead' | 'left';

/** What a member says about itself; carried in every alive update (Serf's tags, Consul's metadata). */
export interface MemberMeta {
  role: 'server' | 'client';
  datacenter: string;
  /** Named ports, e.g. { rpc: 8300, http: 8500 }. */
  ports: Record<string, number>;
  version: string;
  /** A small string map; the whole meta is limited to `metaMaxBytes` encoded. */
  tags: Record<string, string>;
}

/** One member's entry in the table, as exchanged in push-pull and reported to the shell. */
export interface MemberState {
  name: string;
  address: Address;
  incarnation: number;
  status: MemberStatus;
  meta: MemberMeta;
}

/**
 * A membership update, piggybacked on other messages or gossiped (SWIM §4.1). A `dead` whose
 * `from` is the member itself is a graceful leave, which everyone records as 'left'.
 */
export type Update =
  | { kind: 'alive'; name: string; address: Address; incarnation: number; meta: MemberMeta }
  | { kind: 'suspect'; name: string; incarnation: number; from: string }
  | { kind: 'dead'; name: string; incarnation: number; from: string };

/**
 * Every message the core sends or accepts.
 * - ping: direct probe; `target` is the name the sender thinks lives at the address, so a
 *   restarted process under another name does not answer for the old one.
 * - ping-req: ask the receiver to probe `target` at `targetAddress` and relay the ack (SWIM §3.1);
 *   `nack` asks for a nack when the target stays silent (Lifeguard, LHA-Probe).
 * - ack / nack: answer to the ping (or ping-req) with sequence number `seq`.
 * - gossip: updates alone, sent to a few random members every gossip interval.
 * - push-pull: full state exchange over TCP (`reply` marks the answer; `join` the first one).
 * Every UDP message carries `updates` (possibly empty): the piggybacked dissemination.
 */
export type GossipMessage =
  | { type: 'ping'; seq: number; from: string; target: string; updates: Update[] }
  | {
      type: 'ping-req';
      seq: number;
      from: string;
      target: string;
      targetAddress: Address;
      nack: boolean;
      updates: Update[];
    }
  | { type: 'ack'; seq: number; from: string; updates: Update[] }
  | { type: 'nack'; seq: number; from: string; updates: Update[] }
  | { type: 'gossip'; from: string; updates: Update[] }
  | { type: 'push-pull'; from: string; join: boolean; reply: boolean; members: MemberState[] };

export type GossipMessageType = GossipMessage['type'];

export type Transport = 'udp' | 'tcp';

/** One message for the shell to send. UDP messages fit `udpBudgetBytes` by `encodedSize`. */
export interface Outgoing {
  to: Address;
  transport: Transport;
  message: GossipMessage;
  /** `encodedSize(message)`, as the core computed it. */
  bytes: number;
}

/**
 * A change in the membership as this member sees it.
 * join: a member appeared, or came back from dead/left; update: an alive member's address or
 * meta changed; suspect: probing failed; alive: a suspect refuted; failed: declared dead;
 * left: it left gracefully.
 */
export type MemberEventType = 'join' | 'update' | 'suspect' | 'alive' | 'failed' | 'left';

export interface MemberEvent {
  type: MemberEventType;
  member: MemberState;
  /** Clock time (ms) when this member noticed. */
  atMs: number;
}

/** What the shell takes after every call into the core. */
export interface GossipOutput {
  messages: Outgoing[];
  events: MemberEvent[];
}
