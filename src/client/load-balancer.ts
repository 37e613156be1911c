import type { ServiceInstance } from './instance.js';
import type { Lease, Picker } from './picker.js';
import { ServiceWatcher, type ServiceWatcherOptions } from './service-watcher.js';

/** What a LoadBalancer reads instances from: a ServiceWatcher, or a fixed list in tests. */
export interface InstanceSource {
  readonly instances: readonly ServiceInstance[];
  on(event: 'change', listener: (instances: readonly ServiceInstance[]) => void): () => void;
}

/** Thrown by run() when the service has no healthy instance known. */
export class NoInstanceError extends Error {
  override name = 'NoInstanceError';
}

export interface LoadBalancerOptions {
  source: InstanceSource;
  picker: Picker;
  /** Named in errors. */
  service?: string;
}

/**
 * A picker kept current by an instance source. pick() chooses; run() chooses, calls the
 * function with the instance, and releases it afterwards (what least-requests counts).
 */
export class LoadBalancer {
  readonly service: string;
  readonly #picker: Picker;
  readonly #unsubscribe: () => void;
  #watcher: ServiceWatcher | undefined;

  constructor(options: LoadBalancerOptions) {
    this.#picker = options.picker;
    this.service = options.service ?? 'service';
    this.#picker.update(options.source.instances);
    this.#unsubscribe = options.source.on('change', (instances) => this.#picker.update(instances));
  }

  /**
   * A balancer over a watcher of its own: started now, stopped by close().
   * `await lb.ready()` before the first request to wait for the agent's first answer.
   */
  static forService(options: ServiceWatcherOptions & { picker: Picker }): LoadBalancer {
    const { picker, ...watcherOptions } = options;
    const watcher = new ServiceWatcher(watcherOptions);
    const lb = new LoadBalancer({ source: watcher, picker, service: options.service });
    lb.#watcher = watcher;
    watcher.start();
    return lb;
  }

  /** The watcher forService() made, if this balancer was made so. */
  get watcher(): ServiceWatcher | undefined {
    return this.#watcher;
  }

  /** Resolves once the watcher forService() made has its first answer; at once otherwise. */
  async ready(): Promise<void> {
    await this.#watcher?.ready();
  }

  /** An instance, or undefined when none is known. Hash pickers need `key`. */
  pick(key?: string): ServiceInstance | undefined {
    return this.#picker.pick(key);
  }

  /**
   * Runs `fn` against a chosen instance; with a picker that counts requests in flight, the
   * instance stays claimed until `fn` settles. Throws NoInstanceError when none is known.
   */
  async run<T>(fn: (instance: ServiceInstance) => T | Promise<T>, key?: string): Promise<T> {
    const lease = this.#acquire(key);
    try {
      return await fn(lease.instance);
    } finally {
      lease.release();
    }
  }

  /** Stops following the source (and stops the watcher forService() made). */
  async close(): Promise<void> {
    this.#unsubscribe();
    await this.#watcher?.stop();
  }

  #acquire(key: string | undefined): Lease {
    const lease: Lease | undefined = this.#picker.acquire
      ? this.#picker.acquire(key)
      : wrap(this.#picker.pick(key));
    if (lease === undefined) throw new NoInstanceError(`no healthy instance of '${this.service}' is known`);
    return lease;
  }
}

function wrap(instance: ServiceInstance | undefined): Lease | undefined {
  return instance === undefined ? undefined : { instance, release: () => {} };
}
