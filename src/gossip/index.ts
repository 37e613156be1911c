/**
 * The gossip layer's public surface: the pure SWIM + Lifeguard core that the UDP/TCP shell
 * drives. The shell's whole contract:
 *
 *   const node = new GossipNode({ name, address, meta, clock: monotonicMs, random: Math.random });
 *   node.join(['10.0.0.1:8301']);                       // or restore `members` from a snapshot
 *   loop:
 *     on a UDP packet or a TCP push-pull frame from addr: node.receive(addr, msgpackDecode(bytes))
 *     at node.nextDeadlineMs():                          node.tick()
 *     after every call:  const { messages, events } = node.takeOutput()
 *       for m of messages: m.transport === 'udp' ? sendDatagram(m.to, encode(m.message))
 *                                                 : a push-pull over TCP to m.to
 *       (an incoming push-pull with reply: false yields its reply, to the same address, in the
 *       output of that same receive call: write it back on the same stream)
 *       for e of events: catalog / serfHealth / `conclave members`
 *   shutdown: node.leave(); keep ticking until node.leaveBroadcastDone() or a timeout.
 *
 * Encode with msgpackr's `Packr({ useRecords: false })`: `Outgoing.bytes` (= `encodedSize`)
 * is then the exact datagram size and never exceeds `udpBudgetBytes`. `receive` validates
 * everything it is given, so the shell passes decoded packets on as they are; it drops only
 * packets it cannot decode (or authenticate, once encryption exists).
 */
export { GossipInvariantError } from './assert.js';
export { defaultConfig, type GossipConfig, resolveConfig } from './config.js';
export {
  type ForceLeaveResult,
  GossipNode,
  type GossipNodeOptions,
  type GossipStats,
} from './node.js';
export { encodedSize } from './size.js';
export type {
  Address,
  GossipMessage,
  GossipMessageType,
  GossipOutput,
  MemberEvent,
  MemberEventType,
  MemberMeta,
  MemberState,
  MemberStatus,
  Outgoing,
  Transport,
  Update,
} from './types.js';
export { limits, parseMessage } from './validate.js';
