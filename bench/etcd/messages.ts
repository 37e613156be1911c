/** What the benchmark's main thread and its load-generator workers say to each other. */

export const WORKLOADS = ['put', 'get', 'get-serializable', 'txn-cas', 'lease', 'watch', 'lock'] as const;
export type Workload = (typeof WORKLOADS)[number];

/** How the lock workload takes a lock: etcd's v3lock service, or clientv3's Mutex recipe over KV+lease+watch. */
export type LockMode = 'v3lock' | 'recipe';

export interface StepSpec {
  workload: Workload;
  lockMode: LockMode;
  /** the cluster's etcd API endpoints, leader first; global slot g uses endpoints[g % length] */
  endpoints: string[];
  /** this worker's in-flight operations (its share of the step's concurrency) */
  slots: number;
  /** global index of this worker's first slot */
  slotBase: number;
  /** size of the preloaded keyspace that put and get draw keys from */
  keys: number;
  /** unique per step: names the lock and the watched prefix */
  tag: string;
  seed: number;
}

export type ToWorker =
  | { type: 'setup'; spec: StepSpec }
  /** run from startAt; count what completes in [windowStart, windowEnd]; stop issuing at windowEnd (epoch ms) */
  | { type: 'go'; startAt: number; windowStart: number; windowEnd: number }
  | { type: 'preload'; endpoints: string[]; keys: number; inflight: number }
  | { type: 'probe'; endpoints: string[]; what: 'lease' | 'watch' | 'v3lock' }
  | { type: 'close' };

export interface StepResult {
  /** completed operations in the window (watch: events delivered) */
  ops: number;
  errors: number;
  firstError: string | null;
  unsupported: boolean;
  /** latency of each counted operation, ms */
  samples: Float64Array;
  /** event-loop utilization of this worker over the window (1 = a saturated core) */
  elu: number;
  /** watch: puts acknowledged in the window; txn-cas: compare failures */
  extra: number;
}

export type FromWorker =
  | { type: 'ready' }
  | { type: 'result'; result: StepResult }
  | { type: 'preloaded'; ops: number; errors: number; firstError: string | null }
  | { type: 'probed'; supported: boolean; detail: string }
  | { type: 'error'; message: string };

/** The etcd keys every workload uses (the same on both systems). */
export const keyOf = (i: number): string => `bench/kv/${String(i).padStart(8, '0')}`;
export const VALUE_BYTES = 256;
