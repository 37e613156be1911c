import type { ServiceInstance } from './instance.js';

/** One request's claim on an instance; release() it when the request ends (idempotent). */
export interface Lease {
  readonly instance: ServiceInstance;
  release(): void;
}

/** Chooses an instance from the current set. Each picker implements one policy. */
export interface Picker {
  /** Replaces the instance set (sorted by id, as the watcher gives it). */
  update(instances: readonly ServiceInstance[]): void;
  /** An instance for one request, or undefined when the set is empty. */
  pick(key?: string): ServiceInstance | undefined;
  /** For pickers that track requests in flight: pick and count until release(). */
  acquire?(key?: string): Lease | undefined;
}
