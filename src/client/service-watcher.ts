import { setTimeout as delay } from 'node:timers/promises';
import { Backoff } from './backoff.js';
import { nextBlockingIndex } from './blocking-index.js';
import { AgentHttpError, readBody } from './http-body.js';
import { fingerprint, MalformedResponseError, parseHealthService, type ServiceInstance } from './instance.js';
import { Listeners } from './listeners.js';
import type { Random } from './random.js';
import { TokenBucket } from './token-bucket.js';

export interface ServiceWatcherOptions {
  /** The service name, as registered. */
  service: string;
  /** The agent's HTTP API base URL. Default http://127.0.0.1:8500 (Consul's port). */
  agent?: string;
  /** Only instances carrying every one of these tags (Consul's ?tag=, repeatable). */
  tag?: string | readonly string[];
  /** Datacenter to ask about; default the agent's own. */
  dc?: string;
  /** Sent as X-Consul-Token. */
  token?: string;
  /**
   * true (default): ask the agent for ?passing, so only instances whose checks all pass are
   * listed. false: list warning instances too (critical ones are dropped here), which is what
   * gives Consul's Weights.Warning a meaning to the weighted picker.
   */
  passingOnly?: boolean;
  /** Blocking query ?wait=. Default 5 min (Consul's default); at most 10 min (Consul's limit). */
  waitMs?: number;
  /** Deadline of a non-blocking read, and the slack given past `waitMs + waitMs/16`. Default 10 s. */
  requestTimeoutMs?: number;
  /** Back-off after failed requests. Defaults 250 ms doubling up to 30 s. */
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /**
   * Rate limit of the query loop (a token bucket: `rateLimitBurst` requests at once, then one per
   * `rateLimitIntervalMs`). Consul suggests ~15 s for generic watches; the default here is 1 s,
   * because a stale instance list costs failed requests. 0 disables it.
   */
  rateLimitIntervalMs?: number;
  rateLimitBurst?: number;
  /** Larger answers are refused as errors. Default 16 MiB. */
  maxResponseBytes?: number;
  /** Injection points for tests. */
  random?: Random;
  /** A monotonic clock in ms. Default performance.now. */
  now?: () => number;
  /** Resolves after `ms`, or early once `signal` aborts; must not reject on abort. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  fetch?: typeof fetch;
}

/** Events of a ServiceWatcher. */
export interface ServiceWatcherEvents {
  /** The instance set differs from the last one emitted (or from the empty set, at first). */
  change: (instances: readonly ServiceInstance[]) => void;
  /** A request failed; the watcher keeps the last known set and retries after a back-off. */
  error: (error: Error) => void;
}

const MAX_WAIT_MS = 600_000;

async function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0 || signal.aborted) return;
  try {
    await delay(ms, undefined, { signal });
  } catch {
    // Aborted: stop() is ending the loop.
  }
}

function checkMs(name: string, value: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isFinite(value) || value < min || value > max) {
    throw new RangeError(
      `Cannot watch a service: '${name}' must be a number in [${min}, ${max}]: current value is ${value}`,
    );
  }
  return value;
}

/**
 * Keeps the healthy instances of one service current with Consul blocking queries on
 * GET /v1/health/service/:name. While the agent is unreachable it keeps serving the last known
 * set. Call start(), read `instances` or listen for 'change', and stop() when done.
 */
export class ServiceWatcher {
  readonly service: string;
  readonly #baseUrl: string;
  readonly #query: URLSearchParams;
  readonly #headers: Record<string, string>;
  readonly #waitMs: number;
  readonly #requestTimeoutMs: number;
  readonly #maxResponseBytes: number;
  readonly #backoff: Backoff;
  readonly #bucket: TokenBucket;
  readonly #now: () => number;
  readonly #sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  readonly #fetch: typeof fetch;
  readonly #listeners = new Listeners<ServiceWatcherEvents>();
  readonly #controller = new AbortController();
  #instances: readonly ServiceInstance[] = Object.freeze([]);
  #fingerprint = fingerprint([]);
  #index = 0;
  #known = false;
  #failures = 0;
  #lastError: Error | undefined;
  #loop: Promise<void> | undefined;
  #readyWaiters: { resolve: (i: readonly ServiceInstance[]) => void; reject: (e: Error) => void }[] = [];

  constructor(options: ServiceWatcherOptions) {
    if (typeof options.service !== 'string' || options.service === '') {
      throw new TypeError(
        `Cannot watch a service: 'service' must be a non-empty string: current value is ${String(options.service)}`,
      );
    }
    this.service = options.service;
    const agent = options.agent ?? 'http://127.0.0.1:8500';
    try {
      new URL(agent);
    } catch {
      throw new TypeError(`Cannot watch a service: 'agent' must be a URL: current value is ${agent}`);
    }
    this.#baseUrl = `${agent.replace(/\/+$/, '')}/v1/health/service/${encodeURIComponent(options.service)}`;
    this.#query = new URLSearchParams();
    // passing=1 as the official Go client sends it; Consul reads any present value as true.
    if (options.passingOnly ?? true) this.#query.set('passing', '1');
    const tags = typeof options.tag === 'string' ? [options.tag] : (options.tag ?? []);
    for (const tag of tags) this.#query.append('tag', tag);
    if (options.dc !== undefined) this.#query.set('dc', options.dc);
    this.#headers = options.token === undefined ? {} : { 'X-Consul-Token': options.token };
    this.#waitMs = checkMs('waitMs', options.waitMs ?? 300_000, 1, MAX_WAIT_MS);
    this.#requestTimeoutMs = checkMs('requestTimeoutMs', options.requestTimeoutMs ?? 10_000, 1);
    this.#maxResponseBytes = checkMs('maxResponseBytes', options.maxResponseBytes ?? 16 << 20, 1);
    this.#backoff = new Backoff({
      initialMs: options.backoffInitialMs ?? 250,
      maxMs: options.backoffMaxMs ?? 30_000,
      random: options.random ?? Math.random,
    });
    this.#bucket = new TokenBucket({
      burst: options.rateLimitBurst ?? 2,
      intervalMs: checkMs('rateLimitIntervalMs', options.rateLimitIntervalMs ?? 1000, 0),
    });
    this.#now = options.now ?? (() => performance.now());
    this.#sleep = options.sleep ?? abortableSleep;
    this.#fetch = options.fetch ?? fetch;
  }

  /** The current instance set, sorted by id; empty until the first answer. Frozen. */
  get instances(): readonly ServiceInstance[] {
    return this.#instances;
  }

  /** Failed requests since the last successful one. */
  get consecutiveFailures(): number {
    return this.#failures;
  }

  /** The error of the last failed request, cleared by a success. */
  get lastError(): Error | undefined {
    return this.#lastError;
  }

  /** Adds a listener; returns a function that removes it. */
  on<E extends keyof ServiceWatcherEvents>(event: E, listener: ServiceWatcherEvents[E]): () => void {
    return this.#listeners.add(event, listener);
  }

  /** Starts the query loop (once); returns this. */
  start(): this {
    if (this.#controller.signal.aborted) throw new Error(`watcher of '${this.service}' was stopped`);
    this.#loop ??= this.#run(this.#controller.signal);
    return this;
  }

  /** Resolves with the instance set once the agent has answered once; rejects if stopped first. */
  ready(): Promise<readonly ServiceInstance[]> {
    if (this.#known) return Promise.resolve(this.#instances);
    if (this.#controller.signal.aborted) {
      return Promise.reject(new Error(`watcher of '${this.service}' was stopped`));
    }
    return new Promise((resolve, reject) => this.#readyWaiters.push({ resolve, reject }));
  }

  /** Aborts the request in flight and ends the loop; resolves once it has ended. */
  async stop(): Promise<void> {
    this.#controller.abort();
    const waiters = this.#readyWaiters.splice(0);
    for (const w of waiters) w.reject(new Error(`watcher of '${this.service}' was stopped`));
    await this.#loop;
  }

  async #run(signal: AbortSignal): Promise<void> {
    // Ends only through stop(); every iteration waits on the rate limit, a blocking query or a back-off.
    while (!signal.aborted) {
      await this.#sleep(this.#bucket.take(this.#now()), signal);
      if (signal.aborted) break;
      const sent = this.#index;
      try {
        const { indexHeader, instances } = await this.#request(sent, signal);
        this.#index = nextBlockingIndex(sent, indexHeader);
        this.#failures = 0;
        this.#lastError = undefined;
        this.#backoff.reset();
        this.#accept(instances);
      } catch (caught) {
        if (signal.aborted) break;
        const error = caught instanceof Error ? caught : new Error(String(caught));
        this.#failures++;
        this.#lastError = error;
        // After a failure the agent may have restarted with lower indexes; blocking on our old
        // index could then hang a full wait before the reset rule sees it. Re-read at once instead.
        this.#index = 0;
        this.#listeners.emit('error', error);
        await this.#sleep(this.#backoff.next(), signal);
      }
    }
  }

  async #request(
    index: number,
    signal: AbortSignal,
  ): Promise<{ indexHeader: string | null; instances: ServiceInstance[] }> {
    const query = new URLSearchParams(this.#query);
    let timeoutMs = this.#requestTimeoutMs;
    if (index > 0) {
      query.set('index', String(index));
      query.set('wait', `${this.#waitMs}ms`);
      // Consul adds up to wait/16 of jitter to the wait.
      timeoutMs += this.#waitMs + this.#waitMs / 16;
    }
    const response = await this.#fetch(`${this.#baseUrl}?${query}`, {
      headers: this.#headers,
      signal: AbortSignal.any([signal, AbortSignal.timeout(Math.ceil(timeoutMs))]),
    });
    const body = await readBody(response, this.#maxResponseBytes);
    if (response.status !== 200) throw new AgentHttpError(response.status, body);
    let json: unknown;
    try {
      json = JSON.parse(body);
    } catch {
      throw new MalformedResponseError(`the agent's answer is not JSON: ${body.slice(0, 100)}`);
    }
    return { indexHeader: response.headers.get('x-consul-index'), instances: parseHealthService(json) };
  }

  #accept(instances: ServiceInstance[]): void {
    const print = fingerprint(instances);
    const changed = print !== this.#fingerprint;
    if (changed) {
      this.#fingerprint = print;
      this.#instances = Object.freeze(instances.map((i) => Object.freeze(i)));
    }
    if (!this.#known) {
      this.#known = true;
      for (const w of this.#readyWaiters.splice(0)) w.resolve(this.#instances);
    }
    if (!changed) return;
    for (const thrown of this.#listeners.emit('change', this.#instances)) {
      const error = thrown instanceof Error ? thrown : new Error(String(thrown));
      this.#listeners.emit(
        'error',
        new Error(`a 'change' listener threw: ${error.message}`, { cause: error }),
      );
    }
  }
}
