/**
 * Crash test with real processes: run crash-child.ts against one data directory, SIGKILL it at
 * a random moment, recover the directory here, and check that
 *   - the recovered log is contiguous and every entry's bytes are intact;
 *   - it equals the state after some save n >= the last acknowledged one (G1, G2: each save is
 *     kept whole or not at all, in order, and nothing acknowledged is lost).
 * Then the next iteration continues from the recovered state with a new seed.
 *
 *   npm run crash -- --iterations 300 [--seed 1] [--dir path] [--keep]
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { RecoveredState } from '../../src/storage/types.js';
import { WalStorage } from '../../src/storage/wal/wal-storage.js';
import { entryData } from './compliance.js';
import {
  crashWalOptions,
  createRng,
  entrySizeBytes,
  maxOutstandingSaves,
  Workload,
  WorkloadModel,
} from './crash-workload.js';

const childScript = join(dirname(fileURLToPath(import.meta.url)), 'crash-child.ts');

export interface CrashRunOptions {
  iterations: number;
  seed: number;
  /** Data directory; a temp dir (removed afterwards unless `keep`) if not given. */
  dir?: string;
  keep?: boolean;
  log?: (line: string) => void;
}

export interface CrashRunResult {
  iterations: number;
  acknowledgedSaves: number;
  /** Saves found durable beyond the last acknowledgement (lost acks are fine, lost data is not). */
  unacknowledgedButKept: number;
  finalLastIndex: number;
  dir: string;
}

const liveChildren = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of liveChildren) child.kill('SIGKILL');
});

export async function runCrashTest(options: CrashRunOptions): Promise<CrashRunResult> {
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), 'conclave-crash-')));
  const log = options.log ?? (() => undefined);
  const rng = createRng(options.seed);
  const result: CrashRunResult = {
    iterations: 0,
    acknowledgedSaves: 0,
    unacknowledgedButKept: 0,
    finalLastIndex: 0,
    dir,
  };
  try {
    let recovered = await recoverHere(dir);
    for (let iteration = 1; iteration <= options.iterations; iteration++) {
      const childSeed = Math.floor(rng() * 2 ** 31);
      // Mostly kill mid-workload; sometimes during startup/recovery itself.
      const killDuringRecovery = rng() < 0.1;
      const killAfterMs = killDuringRecovery ? Math.floor(rng() * 20) : 5 + Math.floor(rng() * 150);
      const run = await runChild(dir, childSeed, killDuringRecovery, killAfterMs);
      const before = WorkloadModel.fromRecovered(recovered);
      if (run.loadedDigest !== null && run.loadedDigest !== before.digest()) {
        throw new Error(
          `child recovered ${run.loadedDigest}, parent expected ${before.digest()} (seed ${childSeed})`,
        );
      }
      recovered = await recoverHere(dir);
      const kept = checkRecovered(recovered, before, childSeed, run.acked);
      result.iterations++;
      result.acknowledgedSaves += run.acked;
      result.unacknowledgedButKept += kept - run.acked;
      result.finalLastIndex = WorkloadModel.fromRecovered(recovered).lastIndex;
      log(
        `iteration ${iteration}: seed ${childSeed}, killed after ${killAfterMs} ms${killDuringRecovery ? ' (startup)' : ''}, ` +
          `${run.acked} saves acknowledged, ${kept} kept, last index ${result.finalLastIndex}`,
      );
    }
    return result;
  } finally {
    if (options.dir === undefined && !options.keep) await rm(dir, { recursive: true, force: true });
  }
}

async function recoverHere(dir: string): Promise<RecoveredState> {
  const storage = new WalStorage({ dir, ...crashWalOptions, warn: () => undefined });
  try {
    return await storage.load();
  } finally {
    await storage.close();
  }
}

interface ChildRun {
  acked: number;
  loadedDigest: string | null;
}

function runChild(dir: string, seed: number, killAtStart: boolean, killAfterMs: number): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', childScript, '--dir', dir, '--seed', String(seed)],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    liveChildren.add(child);
    const run: ChildRun = { acked: 0, loadedDigest: null };
    let pending = '';
    let stderr = '';
    let timer: NodeJS.Timeout | undefined;
    const killSoon = () => {
      timer ??= setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    };
    // A hung child must not hang the test.
    const watchdog = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop()!;
      for (const line of lines) {
        if (line === 'start' && killAtStart) killSoon();
        else if (line.startsWith('loaded ')) {
          run.loadedDigest = line.slice('loaded '.length);
          killSoon();
        } else if (line.startsWith('ack ')) {
          const number = Number(line.slice(4));
          // Acks arrive in call order: this is what G3 promises.
          assert.equal(number, run.acked + 1, 'acknowledgements out of order');
          run.acked = number;
        }
      }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      clearTimeout(watchdog);
      liveChildren.delete(child);
      if (signal !== 'SIGKILL') reject(new Error(`crash child exited on its own (code ${code}): ${stderr}`));
      else resolve(run);
    });
  });
}

/**
 * Check `recovered` against the workload replayed from `before`; returns the number of saves
 * of the killed run that it holds (at least `acked`).
 */
function checkRecovered(
  recovered: RecoveredState,
  before: WorkloadModel,
  seed: number,
  acked: number,
): number {
  const snapshotIndex = recovered.snapshot?.meta.index ?? 0;
  // Contiguous, intact entries and snapshot.
  let expectedIndex = snapshotIndex + 1;
  for (const entry of recovered.entries) {
    assert.equal(entry.index, expectedIndex, `log not contiguous at ${expectedIndex} (seed ${seed})`);
    const expected = entryData(entry.index, entry.term, entrySizeBytes(entry.index, entry.term));
    assert.deepStrictEqual(entry.data, expected, `entry ${entry.index} damaged (seed ${seed})`);
    expectedIndex++;
  }
  if (recovered.snapshot !== null) {
    const { index, term } = recovered.snapshot.meta;
    assert.deepStrictEqual(recovered.snapshot.data, entryData(index, term, 200), `snapshot ${index} damaged`);
  }
  // The state after some save n >= acked: replay the same workload from the same start.
  const model = before.clone();
  const workload = new Workload(seed, model);
  const matches = (n: number): boolean => {
    const lastIndex = recovered.entries.at(-1)?.index ?? snapshotIndex;
    if (lastIndex !== model.lastIndex) return false;
    if (JSON.stringify(recovered.hardState) !== JSON.stringify(model.hardState)) return false;
    for (const entry of recovered.entries) if (model.terms[entry.index] !== entry.term) return false;
    return n >= 0;
  };
  const limit = acked + maxOutstandingSaves + 2;
  for (let n = 0; n <= limit; n++) {
    if (n > 0) workload.step();
    if (n >= acked && matches(n)) return n;
  }
  throw new Error(
    `recovered state (snapshot ${snapshotIndex}, last index ${recovered.entries.at(-1)?.index ?? snapshotIndex}, ` +
      `hard state ${JSON.stringify(recovered.hardState)}) is not the state after any save from ${acked} ` +
      `(acknowledged) to ${limit}: an acknowledged save was lost or a save was kept partially (seed ${seed})`,
  );
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      iterations: { type: 'string', default: '100' },
      seed: { type: 'string' },
      dir: { type: 'string' },
      keep: { type: 'boolean', default: false },
      quiet: { type: 'boolean', default: false },
    },
  });
  const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed);
  const iterations = Number(values.iterations);
  console.log(`crash test: ${iterations} iterations, seed ${seed} (replay with --seed ${seed})`);
  const started = performance.now();
  try {
    const result = await runCrashTest({
      iterations,
      seed,
      ...(values.dir === undefined ? {} : { dir: values.dir }),
      keep: values.keep,
      log: values.quiet ? () => undefined : (line) => console.log(line),
    });
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    console.log(
      `PASS: ${result.iterations} kill -9 restarts in ${seconds} s; ${result.acknowledgedSaves} acknowledged saves all ` +
        `recovered; ${result.unacknowledgedButKept} unacknowledged saves also found durable; final last index ` +
        `${result.finalLastIndex}`,
    );
  } catch (error) {
    console.error(`FAIL (seed ${seed}): ${(error as Error).stack ?? String(error)}`);
    process.exitCode = 1;
  }
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) await main();
