import type { Random } from './random.js';

export interface BackoffOptions {
  /** Ceiling of the first delay. Default 250 ms. */
  initialMs?: number;
  /** No delay exceeds this. Default 30 s. */
  maxMs?: number;
  /** Default Math.random. */
  random?: Random;
}

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) {
    throw new RangeError(`Cannot back off: '${name}' must be a positive number: current value is ${value}`);
  }
  return value;
}

/**
 * Exponential back-off with "equal jitter": the n-th delay is drawn from [c/2, c] where
 * c = min(maxMs, initialMs * 2^n). Half the ceiling is always waited (no hammering after a
 * lucky draw), the other half spreads clients that failed together.
 */
export class Backoff {
  readonly #initialMs: number;
  readonly #maxMs: number;
  readonly #random: Random;
  #attempt = 0;

  constructor(options: BackoffOptions = {}) {
    this.#initialMs = positive('initialMs', options.initialMs ?? 250);
    this.#maxMs = positive('maxMs', options.maxMs ?? 30_000);
    if (this.#maxMs < this.#initialMs) {
      throw new RangeError(
        `Cannot back off: 'maxMs' (${this.#maxMs}) must be at least 'initialMs' (${this.#initialMs})`,
      );
    }
    this.#random = options.random ?? Math.random;
  }

  /** The delay before the next retry; each call doubles the ceiling until maxMs. */
  next(): number {
    const ceilingMs = Math.min(this.#maxMs, this.#initialMs * 2 ** this.#attempt);
    // Stop counting once the ceiling is reached, so 2^attempt never overflows.
    if (ceilingMs < this.#maxMs) this.#attempt++;
    return ceilingMs / 2 + (this.#random() * ceilingMs) / 2;
  }

  /** After a success: the next failure starts from initialMs again. */
  reset(): void {
    this.#attempt = 0;
  }
}
