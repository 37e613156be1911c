/**
 * One suspicion timer's arithmetic (Lifeguard, LHA-Suspicion): the timeout starts at `maxMs`
 * and shrinks toward `minMs` as independent members confirm the suspicion, following
 * memberlist's formula timeout = max(min, max - (max - min) * log(c + 1) / log(k + 1)).
 * With Lifeguard off it is SWIM's fixed timeout (`maxMs === minMs`).
 */
import { invariant } from './assert.js';

export class Suspicion {
  /** Members whose suspicion counted, including the one that started it. */
  private readonly confirmers = new Set<string>();
  private confirmations = 0;

  constructor(
    readonly incarnation: number,
    readonly startedMs: number,
    /** Expected confirmations k; 0 makes the timeout `minMs` from the start. */
    private readonly expected: number,
    private readonly minMs: number,
    private readonly maxMs: number,
    from: string,
  ) {
    invariant(minMs > 0 && maxMs >= minMs, () => `suspicion bounds wrong: min ${minMs}, max ${maxMs}`);
    invariant(expected >= 0, () => `expected confirmations must be non-negative: ${expected}`);
    this.confirmers.add(from);
  }

  /** Count `from`'s suspicion once; true when it was new and counted (so it is worth rebroadcasting). */
  confirm(from: string): boolean {
    if (this.confirmations >= this.expected || this.confirmers.has(from)) return false;
    this.confirmers.add(from);
    this.confirmations++;
    return true;
  }

  get confirmationCount(): number {
    return this.confirmations;
  }

  /** The total timeout given the confirmations so far. */
  timeoutMs(): number {
    return suspicionTimeoutMs(this.confirmations, this.expected, this.minMs, this.maxMs);
  }

  deadlineMs(): number {
    return this.startedMs + this.timeoutMs();
  }
}

/** memberlist's remainingSuspicionTime without the elapsed part. */
export function suspicionTimeoutMs(
  confirmations: number,
  expected: number,
  minMs: number,
  maxMs: number,
): number {
  if (expected <= 0) return minMs;
  const fraction = Math.log(confirmations + 1) / Math.log(expected + 1);
  const raw = Math.floor(maxMs - fraction * (maxMs - minMs));
  return Math.max(minMs, raw);
}
