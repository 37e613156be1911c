/**
 * The local health multiplier (Lifeguard, LHA-Probe): a score in 0..max-1 that grows when this
 * member misses nacks, fails probes or has to refute a suspicion about itself, and shrinks on
 * every successful probe. Probe interval and timeout are multiplied by score + 1, so a member
 * that is itself slow waits longer before blaming others. Always 0 when Lifeguard is off.
 */
import { invariant } from './assert.js';

export class Awareness {
  private score = 0;

  constructor(
    private readonly max: number,
    private readonly enabled: boolean,
  ) {
    invariant(max > 0, () => `awareness max must be positive: ${max}`);
  }

  applyDelta(delta: number): void {
    if (!this.enabled) return;
    this.score = Math.min(this.max - 1, Math.max(0, this.score + delta));
    invariant(this.score >= 0 && this.score < this.max, () => `health score out of range: ${this.score}`);
  }

  get healthScore(): number {
    return this.score;
  }

  scale(timeoutMs: number): number {
    return timeoutMs * (this.score + 1);
  }
}
