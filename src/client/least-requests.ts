import type { ServiceInstance } from './instance.js';
import type { Lease, Picker } from './picker.js';
import type { Random } from './random.js';

interface Slot {
  instance: ServiceInstance;
  outstanding: number;
}

/**
 * The instance with the fewest of this client's requests in flight, ties broken uniformly at
 * random. An exact O(n) scan rather than power-of-two-choices: counts are local to this client,
 * so there is no shared, stale view to herd on, and instance lists are small.
 *
 * Only acquire() counts; pick() answers the same question without claiming anything.
 */
export class LeastRequestsPicker implements Picker {
  readonly #random: Random;
  #slots: Slot[] = [];

  constructor(options: { random?: Random } = {}) {
    this.#random = options.random ?? Math.random;
  }

  update(instances: readonly ServiceInstance[]): void {
    const previous = new Map(this.#slots.map((s) => [s.instance.id, s]));
    // Instances that stay keep their counts (and the leases pointing at their slot); a new or
    // re-added instance starts at 0, so releases of an old lease cannot drive it negative.
    this.#slots = instances.map((instance) => {
      const slot = previous.get(instance.id);
      return slot === undefined ? { instance, outstanding: 0 } : Object.assign(slot, { instance });
    });
  }

  /** Requests in flight on the instance with this id (0 if unknown). */
  outstanding(id: string): number {
    return this.#slots.find((s) => s.instance.id === id)?.outstanding ?? 0;
  }

  pick(): ServiceInstance | undefined {
    return this.#choose()?.instance;
  }

  acquire(): Lease | undefined {
    const slot = this.#choose();
    if (slot === undefined) return undefined;
    slot.outstanding++;
    let released = false;
    return {
      instance: slot.instance,
      release: () => {
        if (released) return;
        released = true;
        slot.outstanding--;
      },
    };
  }

  #choose(): Slot | undefined {
    let best: Slot | undefined;
    let ties = 0;
    for (const slot of this.#slots) {
      if (best === undefined || slot.outstanding < best.outstanding) {
        best = slot;
        ties = 1;
      } else if (slot.outstanding === best.outstanding) {
        // Reservoir sampling: the k-th tie replaces the choice with probability 1/k.
        ties++;
        if (this.#random() * ties < 1) best = slot;
      }
    }
    return best;
  }
}
