/**
 * Lease keep-alives gathered into one `leaseKeepAlive` command, so a thousand clients renewing
 * at once cost one Raft entry, not a thousand. (etcd renews on the leader without a log entry;
 * here renewals are replicated, so batching is what keeps them cheap.) A batch goes after a
 * short window, or at once when full; while one is being committed the next one gathers, so
 * batches grow with load (group commit).
 */

interface Waiter {
  resolve: (ttlMs: number) => void;
  reject: (error: unknown) => void;
}

export interface KeepAliveBatcherOptions {
  /** Propose one keep-alive for `ids`; resolves with each lease's granted TTL in ms, or -1 when not found. */
  renew: (ids: number[]) => Promise<Map<number, number>>;
  /** How long the first request of a batch waits for company. */
  windowMs?: number;
  /** A batch this large goes at once. */
  maxBatch?: number;
}

export class KeepAliveBatcher {
  private pending = new Map<number, Waiter[]>();
  private timer: NodeJS.Timeout | null = null;
  /** Batches being committed; a new one waits for them unless it is full. */
  private inFlight = 0;
  private readonly windowMs: number;
  private readonly maxBatch: number;

  constructor(private readonly options: KeepAliveBatcherOptions) {
    this.windowMs = options.windowMs ?? 5;
    this.maxBatch = options.maxBatch ?? 1000;
  }

  /** Renew one lease: its granted TTL in ms, or -1 when there is no such lease. */
  keepAlive(id: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const waiters = this.pending.get(id);
      if (waiters) waiters.push({ resolve, reject });
      else this.pending.set(id, [{ resolve, reject }]);
      if (this.pending.size >= this.maxBatch) this.flush();
      else if (this.inFlight === 0) this.timer ??= setTimeout(() => this.flush(), this.windowMs);
    });
  }

  private flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const batch = this.pending;
    this.pending = new Map();
    if (batch.size === 0) return;
    this.inFlight++;
    this.options
      .renew([...batch.keys()])
      .then(
        (ttls) => {
          for (const [id, waiters] of batch) for (const w of waiters) w.resolve(ttls.get(id) ?? -1);
        },
        (error: unknown) => {
          for (const waiters of batch.values()) for (const w of waiters) w.reject(error);
        },
      )
      .finally(() => {
        if (--this.inFlight === 0 && this.pending.size > 0) this.flush();
      });
  }
}
