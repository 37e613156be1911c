import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { cpuSeconds } from './clusters.js';
import type { FromWorker, StepResult, StepSpec, ToWorker } from './messages.js';

/**
 * The load generator: a few worker threads (bench/etcd/worker.ts), each with its own gRPC
 * channels. A step's in-flight operations are split over the workers; the main thread only
 * coordinates and measures: the generator's own CPU (this whole process, all threads) and the
 * servers' CPU over the same window.
 */

const now = (): number => performance.timeOrigin + performance.now();

/** The quantiles `--tail` reports: where a tail starts and how it grows. */
export const TAIL_QUANTILES = [0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 0.999];

export interface StepOutcome {
  ops: number;
  opsPerSec: number;
  p50: number;
  p99: number;
  max: number;
  /** latency in ms at each of TAIL_QUANTILES */
  tail: number[];
  errors: number;
  firstError: string | null;
  unsupported: boolean;
  /** the generator's CPU over the window, in cores (1 = one core busy all the time) */
  generatorCores: number;
  /** the busiest worker thread's event-loop utilization over the window */
  maxWorkerElu: number;
  /** the cluster's members' CPU over the window, summed, in cores */
  serverCores: number;
  extra: number;
}

class WorkerHandle {
  private readonly waiting: { resolve: (m: FromWorker) => void; reject: (e: Error) => void }[] = [];
  private dead: Error | null = null;

  constructor(readonly worker: Worker) {
    worker.on('message', (m: FromWorker) => {
      const w = this.waiting.shift();
      if (!w) return;
      if (m.type === 'error') w.reject(new Error(`load generator worker: ${m.message}`));
      else w.resolve(m);
    });
    const die = (err: Error) => {
      this.dead = err;
      for (const w of this.waiting.splice(0)) w.reject(err);
    };
    worker.on('error', die);
    worker.on('exit', (code) => die(new Error(`load generator worker exited (${code})`)));
  }

  ask<T extends FromWorker['type']>(m: ToWorker, expect: T): Promise<Extract<FromWorker, { type: T }>> {
    if (this.dead) return Promise.reject(this.dead);
    return new Promise((resolve, reject) => {
      this.waiting.push({
        resolve: (r) =>
          r.type === expect
            ? resolve(r as Extract<FromWorker, { type: T }>)
            : reject(new Error(`worker answered ${r.type}, not ${expect}`)),
        reject,
      });
      this.worker.postMessage(m);
    });
  }
}

export class LoadGenerator {
  private constructor(private readonly workers: WorkerHandle[]) {}

  get size(): number {
    return this.workers.length;
  }

  static async start(workers: number, channels: number, client: 'h2' | 'grpc-js'): Promise<LoadGenerator> {
    // Worker threads do not inherit tsx's loader: register it in each, then load the worker.
    const tsx = import.meta.resolve('tsx/esm/api');
    const entry = new URL('./worker.ts', import.meta.url).href;
    const code = `import(${JSON.stringify(tsx)}).then(({ register }) => { register(); return import(${JSON.stringify(entry)}); });`;
    const handles: WorkerHandle[] = [];
    for (let index = 0; index < workers; index++)
      handles.push(
        new WorkerHandle(new Worker(code, { eval: true, workerData: { index, workers, channels, client } })),
      );
    return new LoadGenerator(handles);
  }

  async close(): Promise<void> {
    await Promise.all(
      this.workers.map(async (h) => {
        h.worker.postMessage({ type: 'close' } satisfies ToWorker);
        await Promise.race([
          new Promise((r) => h.worker.once('exit', r)),
          new Promise((r) => setTimeout(r, 2000).unref()),
        ]);
        await h.worker.terminate();
      }),
    );
  }

  async probe(
    endpoints: string[],
    what: 'lease' | 'watch' | 'v3lock',
  ): Promise<{ supported: boolean; detail: string }> {
    const r = await this.workers[0]!.ask({ type: 'probe', endpoints, what }, 'probed');
    return { supported: r.supported, detail: r.detail };
  }

  /** Put keys 0..keys-1 once each with `inflight` puts in flight; returns puts/s. */
  async preload(
    endpoints: string[],
    keys: number,
    inflight: number,
  ): Promise<{ seconds: number; errors: number; firstError: string | null }> {
    const per = Math.max(1, Math.ceil(inflight / this.workers.length));
    const t0 = now();
    const rs = await Promise.all(
      this.workers.map((w) => w.ask({ type: 'preload', endpoints, keys, inflight: per }, 'preloaded')),
    );
    return {
      seconds: (now() - t0) / 1000,
      errors: rs.reduce((a, r) => a + r.errors, 0),
      firstError: rs.find((r) => r.firstError)?.firstError ?? null,
    };
  }

  async step(
    spec: Omit<StepSpec, 'slots' | 'slotBase'>,
    concurrency: number,
    warmupMs: number,
    durationMs: number,
    serverPids: number[],
  ): Promise<StepOutcome> {
    const n = this.workers.length;
    const active: { w: WorkerHandle; slots: number; slotBase: number }[] = [];
    let base = 0;
    for (let i = 0; i < n; i++) {
      const slots = Math.floor(concurrency / n) + (i < concurrency % n ? 1 : 0);
      if (slots > 0) active.push({ w: this.workers[i]!, slots, slotBase: base });
      base += slots;
    }
    await Promise.all(
      active.map((a) =>
        a.w.ask({ type: 'setup', spec: { ...spec, slots: a.slots, slotBase: a.slotBase } }, 'ready'),
      ),
    );

    const startAt = now() + 50;
    const windowStart = startAt + warmupMs;
    const windowEnd = windowStart + durationMs;
    // CPU is sampled by timers at the window's edges, independent of when the workers answer.
    let cpu0 = process.cpuUsage();
    let servers0 = serverPids.map(cpuSeconds);
    const t1 = setTimeout(() => {
      cpu0 = process.cpuUsage();
      servers0 = serverPids.map(cpuSeconds);
    }, windowStart - now());
    let t2: NodeJS.Timeout | undefined;
    const cpu = new Promise<{ genMicros: number; serverSeconds: number }>((resolve) => {
      t2 = setTimeout(() => {
        const d = process.cpuUsage(cpu0);
        const serverSeconds = serverPids.map(cpuSeconds).reduce((a, s, i) => a + (s - servers0[i]!), 0);
        resolve({ genMicros: d.user + d.system, serverSeconds });
      }, windowEnd - now());
    });
    let results: StepResult[];
    let genMicros: number;
    let serverSeconds: number;
    try {
      [results, { genMicros, serverSeconds }] = await Promise.all([
        Promise.all(
          active.map((a) => a.w.ask({ type: 'go', startAt, windowStart, windowEnd }, 'result')),
        ).then((rs) => rs.map((r) => r.result)),
        cpu,
      ]);
    } finally {
      clearTimeout(t1);
      clearTimeout(t2);
    }

    let total = 0;
    for (const r of results) total += r.samples.length;
    const all = new Float64Array(total);
    let at = 0;
    for (const r of results) {
      all.set(r.samples, at);
      at += r.samples.length;
    }
    all.sort();
    const pct = (p: number) =>
      all.length ? all[Math.min(all.length - 1, Math.floor(p * all.length))]! : Number.NaN;
    const ops = results.reduce((a, r) => a + r.ops, 0);
    const seconds = durationMs / 1000;
    return {
      ops,
      opsPerSec: ops / seconds,
      p50: pct(0.5),
      p99: pct(0.99),
      max: all.length ? all[all.length - 1]! : Number.NaN,
      tail: TAIL_QUANTILES.map(pct),
      errors: results.reduce((a, r) => a + r.errors, 0),
      firstError: results.find((r) => r.firstError)?.firstError ?? null,
      unsupported: results.some((r) => r.unsupported),
      generatorCores: genMicros / 1e6 / seconds,
      maxWorkerElu: Math.max(...results.map((r) => r.elu)),
      serverCores: serverSeconds / seconds,
      extra: results.reduce((a, r) => a + r.extra, 0),
    };
  }
}
