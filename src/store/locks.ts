/**
 * Consul lock-delay: after a lock is invalidated (its session destroyed or expired), the key
 * cannot be acquired again for the session's lock-delay (Consul docs "Sessions", default 15 s,
 * capped at 60 s). Consul keeps this in memory on each server with local clocks; we keep it in
 * replicated state with deadlines from command stamps, so every replica agrees.
 */
import type { ByteString } from './bytes.js';

export class LockDelays {
  private readonly until = new Map<ByteString, number>();

  set(key: ByteString, untilMs: number): void {
    const existing = this.until.get(key) ?? 0;
    if (untilMs > existing) this.until.set(key, untilMs);
  }

  /** Deadline still in force at nowMs, or 0. */
  activeUntil(key: ByteString, nowMs: number): number {
    const until = this.until.get(key);
    return until !== undefined && until > nowMs ? until : 0;
  }

  /** Drop expired entries (deterministic: driven by command time). */
  prune(nowMs: number): void {
    for (const [key, until] of this.until) if (until <= nowMs) this.until.delete(key);
  }

  get size(): number {
    return this.until.size;
  }

  /** Live entries in key order (snapshots). */
  entries(nowMs: number): [ByteString, number][] {
    return [...this.until].filter(([, until]) => until > nowMs).sort((a, b) => (a[0] < b[0] ? -1 : 1));
  }
}
