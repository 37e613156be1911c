/**
 * Tunables of the gossip core, with memberlist's LAN defaults (DefaultLANConfig), and the
 * formulas derived from them. Times are milliseconds of the injected clock.
 */

export interface GossipConfig {
  /** SWIM protocol period T' (SWIM §3.1). */
  probeIntervalMs: number;
  /** How long to wait for a direct ack before asking others (SWIM §3.1). */
  probeTimeoutMs: number;
  /** k in SWIM §3.1: members asked to probe indirectly. */
  indirectChecks: number;
  /** Updates are piggybacked retransmitMult * ceil(log10(n + 1)) times (SWIM §4.1, λ log n). */
  retransmitMult: number;
  /** Minimum suspicion timeout = suspicionMult * max(1, log10(n)) * probeInterval (SWIM §4.2). */
  suspicionMult: number;
  /** Maximum suspicion timeout = this * minimum (Lifeguard, LHA-Suspicion). */
  suspicionMaxTimeoutMult: number;
  /** Full state exchange period, stretched for clusters over 32 members (memberlist pushPullScale). */
  pushPullIntervalMs: number;
  /** Gossip rounds: every gossipIntervalMs, pending updates go to gossipNodes random members. */
  gossipIntervalMs: number;
  gossipNodes: number;
  /** Dead members still receive gossip this long, so a wrongly declared one learns it and refutes. */
  gossipToTheDeadMs: number;
  /** Local health multiplier ranges over 0..awarenessMaxMultiplier-1 (Lifeguard, LHA-Probe). */
  awarenessMaxMultiplier: number;
  /** Every UDP message the core emits fits this many bytes by `encodedSize`. */
  udpBudgetBytes: number;
  /** Limit on one member's encoded metadata (memberlist's MetaMaxSize). */
  metaMaxBytes: number;
  /**
   * Every reconnectIntervalMs, a push-pull to one random failed member (Serf's reconnect): the
   * only way two sides of a healed partition, each holding the other dead, find each other.
   */
  reconnectIntervalMs: number;
  /** Dead and left members are forgotten this long after they changed state (Serf's reap). */
  reapAfterMs: number;
  /** Bound on the member table; alive updates about further members are dropped and counted. */
  maxMembers: number;
  /**
   * Lifeguard on (default) or plain SWIM off: local health awareness, nacks, suspicion timeouts
   * shrinking with confirmations, and the buddy system, all together.
   */
  lifeguard: boolean;
}

export const defaultConfig: Readonly<GossipConfig> = Object.freeze({
  probeIntervalMs: 1000,
  probeTimeoutMs: 500,
  indirectChecks: 3,
  retransmitMult: 4,
  suspicionMult: 4,
  suspicionMaxTimeoutMult: 6,
  pushPullIntervalMs: 30_000,
  gossipIntervalMs: 200,
  gossipNodes: 3,
  gossipToTheDeadMs: 30_000,
  awarenessMaxMultiplier: 8,
  udpBudgetBytes: 1400,
  metaMaxBytes: 512,
  reconnectIntervalMs: 30_000,
  reapAfterMs: 24 * 3600_000,
  maxMembers: 10_000,
  lifeguard: true,
});

const positiveKeys = [
  'probeIntervalMs',
  'probeTimeoutMs',
  'retransmitMult',
  'suspicionMult',
  'suspicionMaxTimeoutMult',
  'pushPullIntervalMs',
  'gossipIntervalMs',
  'awarenessMaxMultiplier',
  'metaMaxBytes',
  'reconnectIntervalMs',
  'reapAfterMs',
  'maxMembers',
] as const;

/** Fills defaults and checks every value, naming the one that is wrong. */
export function resolveConfig(partial: Partial<GossipConfig> = {}): GossipConfig {
  const config: GossipConfig = { ...defaultConfig, ...partial };
  for (const key of positiveKeys) {
    const value = config[key];
    if (!Number.isInteger(value) || value <= 0)
      throw new RangeError(`gossip config '${key}' must be a positive integer: current value is ${value}`);
  }
  for (const key of ['indirectChecks', 'gossipNodes', 'gossipToTheDeadMs'] as const) {
    const value = config[key];
    if (!Number.isInteger(value) || value < 0)
      throw new RangeError(
        `gossip config '${key}' must be a non-negative integer: current value is ${value}`,
      );
  }
  if (config.probeTimeoutMs >= config.probeIntervalMs)
    throw new RangeError(
      `gossip config 'probeTimeoutMs' must be below probeIntervalMs (${config.probeIntervalMs}): current value is ${config.probeTimeoutMs}`,
    );
  if (!Number.isInteger(config.udpBudgetBytes) || config.udpBudgetBytes < 512)
    throw new RangeError(
      `gossip config 'udpBudgetBytes' must be an integer of at least 512: current value is ${config.udpBudgetBytes}`,
    );
  return config;
}

/** Times an update is piggybacked: retransmitMult * ceil(log10(n + 1)) (SWIM §4.1; memberlist). */
export function retransmitLimit(retransmitMult: number, memberCount: number): number {
  return retransmitMult * Math.ceil(Math.log10(memberCount + 1));
}

/** The minimum suspicion timeout: suspicionMult * max(1, log10(n)) * probeInterval (SWIM §4.2). */
export function suspicionTimeoutMinMs(config: GossipConfig, memberCount: number): number {
  const nodeScale = Math.max(1, Math.log10(Math.max(1, memberCount)));
  return Math.floor(config.suspicionMult * nodeScale * config.probeIntervalMs);
}

/** Push-pull slows down past 32 members so TCP sync load per member stays bounded (memberlist). */
export function pushPullIntervalMs(config: GossipConfig, memberCount: number): number {
  if (memberCount <= 32) return config.pushPullIntervalMs;
  const multiplier = Math.ceil(Math.log2(memberCount) - Math.log2(32)) + 1;
  return config.pushPullIntervalMs * multiplier;
}
