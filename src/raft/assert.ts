/** Invariant checks for the core: a violated invariant is a bug, so it crashes loudly. */
export class RaftInvariantError extends Error {
  override name = 'RaftInvariantError';
}

export function invariant(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) throw new RaftInvariantError(typeof message === 'string' ? message : message());
}
