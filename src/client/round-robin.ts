import type { ServiceInstance } from './instance.js';
import type { Picker } from './picker.js';
import { type Random, randomIndex } from './random.js';

/**
 * Each instance in turn. The first position is random, so that many clients starting together
 * do not all send their first request to the same instance.
 */
export class RoundRobinPicker implements Picker {
  readonly #random: Random;
  #instances: readonly ServiceInstance[] = [];
  #next: number | undefined;

  constructor(options: { random?: Random } = {}) {
    this.#random = options.random ?? Math.random;
  }

  update(instances: readonly ServiceInstance[]): void {
    // The position carries over: a changed set continues the rotation rather than restarting it.
    this.#instances = instances;
  }

  pick(): ServiceInstance | undefined {
    const count = this.#instances.length;
    if (count === 0) return undefined;
    this.#next ??= randomIndex(this.#random, count);
    const position = this.#next % count;
    this.#next = (position + 1) % count;
    return this.#instances[position];
  }
}
