import type { ServiceInstance } from './instance.js';
import type { Picker } from './picker.js';
import { type Random, randomIndex } from './random.js';

/**
 * A random instance with probability proportional to its Consul weight (Weights.Passing, or
 * Weights.Warning for an instance with a warning check), as Consul's DNS interface does with
 * SRV weights. Weight-0 instances are never chosen unless every instance weighs 0, in which case
 * the choice is uniform: better a degraded instance than none. O(log n) per pick.
 */
export class WeightedRandomPicker implements Picker {
  readonly #random: Random;
  #instances: readonly ServiceInstance[] = [];
  /** cumulative[i] = sum of the weights of instances 0..i. */
  #cumulative = new Float64Array(0);

  constructor(options: { random?: Random } = {}) {
    this.#random = options.random ?? Math.random;
  }

  update(instances: readonly ServiceInstance[]): void {
    this.#instances = instances;
    this.#cumulative = new Float64Array(instances.length);
    let total = 0;
    instances.forEach((instance, i) => {
      total += instance.weight;
      this.#cumulative[i] = total;
    });
  }

  pick(): ServiceInstance | undefined {
    const count = this.#instances.length;
    if (count === 0) return undefined;
    const total = this.#cumulative[count - 1]!;
    if (total <= 0) return this.#instances[randomIndex(this.#random, count)];
    const target = this.#random() * total;
    // First i with cumulative[i] > target; weight-0 instances add nothing, so are skipped.
    let low = 0;
    let high = count - 1;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (this.#cumulative[mid]! > target) high = mid;
      else low = mid + 1;
    }
    return this.#instances[low];
  }
}
