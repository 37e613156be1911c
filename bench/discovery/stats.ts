import { cpuSeconds, rssBytes } from '../etcd/clusters.js';

/** Numbers the report prints: percentiles, and CPU and RSS of processes over a window. */

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export function median(values: readonly number[]): number {
  return percentile(
    [...values].sort((a, b) => a - b),
    50,
  );
}

export interface ProcessUsage {
  /** CPU time over the window divided by its length, in percent of one core. */
  cpuPercent: number;
  rssMiBMean: number;
  rssMiBMax: number;
}

const RSS_SAMPLE_MS = 1000;
const MIB = 1024 * 1024;

/**
 * CPU (utime+stime from /proc/PID/stat) and RSS (VmRSS, sampled every second) of the given
 * processes between `new` and `end()`, and this process's own CPU (process.cpuUsage).
 */
export class UsageWindow {
  private readonly began = performance.now();
  private readonly cpuBefore: number[];
  private readonly ownCpuBefore = process.cpuUsage();
  private readonly rss: number[][];
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly pids: readonly number[]) {
    this.cpuBefore = pids.map(cpuSeconds);
    this.rss = pids.map(() => []);
    const sample = () => {
      pids.forEach((pid, i) => {
        const bytes = rssBytes(pid);
        if (Number.isFinite(bytes)) this.rss[i]!.push(bytes / MIB);
      });
    };
    sample();
    this.timer = setInterval(sample, RSS_SAMPLE_MS);
  }

  end(): { seconds: number; processes: ProcessUsage[]; generatorCpuPercent: number } {
    clearInterval(this.timer);
    const seconds = (performance.now() - this.began) / 1000;
    const own = process.cpuUsage(this.ownCpuBefore);
    return {
      seconds,
      processes: this.pids.map((pid, i) => {
        const samples = this.rss[i]!;
        return {
          cpuPercent: ((cpuSeconds(pid) - this.cpuBefore[i]!) / seconds) * 100,
          rssMiBMean: samples.reduce((a, b) => a + b, 0) / Math.max(1, samples.length),
          rssMiBMax: Math.max(...samples),
        };
      }),
      generatorCpuPercent: ((own.user + own.system) / 1e6 / seconds) * 100,
    };
  }
}
