import { HashRing, type HashRingOptions } from './hash-ring.js';
import type { ServiceInstance } from './instance.js';
import type { Picker } from './picker.js';

/**
 * Sends equal keys to the same instance (cache affinity, sticky sessions) over a consistent-hash
 * ring of instance ids: when an instance leaves, only its keys move; when one joins, only the
 * keys it takes over move. pick() needs a key.
 */
export class HashRingPicker implements Picker {
  readonly #ring: HashRing;
  #byId = new Map<string, ServiceInstance>();

  constructor(options: HashRingOptions = {}) {
    this.#ring = new HashRing(options);
  }

  update(instances: readonly ServiceInstance[]): void {
    this.#byId = new Map(instances.map((i) => [i.id, i]));
    // Ids, not addresses, are the ring members: an instance re-registered at a new address keeps its keys.
    this.#ring.setMembers(this.#byId.keys());
  }

  pick(key?: string): ServiceInstance | undefined {
    if (typeof key !== 'string') {
      throw new TypeError(`HashRingPicker.pick needs a string key: current value is ${String(key)}`);
    }
    const id = this.#ring.lookup(key);
    return id === undefined ? undefined : this.#byId.get(id);
  }
}
