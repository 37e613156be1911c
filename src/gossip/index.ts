/** The gossip layer's public surface: the pure SWIM + Lifeguard core the UDP/TCP shell drives. */
export { GossipInvariantError } from './assert.js';
export { defaultConfig, type GossipConfig, resolveConfig } from './config.js';
export { GossipNode, type GossipNodeOptions, type GossipStats } from './node.js';
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
