/** Invariant checks for the gossip core: a violated invariant is a bug, so it crashes loudly. */
export class GossipInvariantError extends Error {
  override name = 'GossipInvariantError';
}

export function invariant(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) throw new GossipInvariantError(typeof message === 'string' ? message : message());
}
