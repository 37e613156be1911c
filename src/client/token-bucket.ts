/**
 * A token bucket for a request loop: `take()` reserves one token and says how long to wait
 * before using it. Consul's blocking-query guidance ("Rate limit") asks for exactly this: no
 * delay in the happy case, a couple of quick successive requests allowed, then at most one
 * request per `intervalMs` while results churn.
 */
export class TokenBucket {
  readonly #burst: number;
  readonly #intervalMs: number;
  #tokens: number;
  #lastMs: number | undefined;

  constructor(options: { burst: number; intervalMs: number }) {
    const { burst, intervalMs } = options;
    if (!Number.isInteger(burst) || burst < 1) {
      throw new RangeError(`'burst' must be a positive integer: current value is ${burst}`);
    }
    if (!Number.isFinite(intervalMs) || intervalMs < 0) {
      throw new RangeError(`'intervalMs' must be a non-negative number: current value is ${intervalMs}`);
    }
    this.#burst = burst;
    this.#intervalMs = intervalMs;
    this.#tokens = burst;
  }

  /** Reserves a token at `nowMs` (a monotonic clock); returns the ms to wait before using it. */
  take(nowMs: number): number {
    if (this.#intervalMs === 0) return 0;
    if (this.#lastMs !== undefined) {
      const elapsedMs = Math.max(0, nowMs - this.#lastMs);
      this.#tokens = Math.min(this.#burst, this.#tokens + elapsedMs / this.#intervalMs);
    }
    this.#lastMs = nowMs;
    this.#tokens -= 1;
    // A negative balance is a reservation: the caller waits until it has been refilled.
    return this.#tokens >= 0 ? 0 : -this.#tokens * this.#intervalMs;
  }
}
