/**
 * Conclave against etcd 3.4 over etcd's own v3 gRPC API, on this machine.
 *   npm run bench:etcd
 *   npm run bench:etcd -- --quick
 *   npm run bench:etcd -- --only put,get --duration 10 --concurrency 1,16,64,256
 *
 * Starts a 3-member etcd cluster and a 3-server Conclave cluster on loopback (data in a temp
 * directory, fsync on), loads the same keyspace into both and measures the server RSS, then runs
 * each workload at each concurrency against etcd and then Conclave with one load generator
 * (worker threads, requests protobuf-encoded ahead of time, sent over a minimal HTTP/2 gRPC client,
 * bench/etcd/h2.ts, because a grpc-js call costs the client more CPU than etcd spends serving it).
 * Prints markdown tables. Every server process is killed by PID at the end, on error, and on
 * Ctrl-C.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import {
  type ClusterHandle,
  leaderFirst,
  Processes,
  rssBytes,
  startConclave,
  startEtcd,
} from './etcd/clusters.js';
import { LoadGenerator, type StepOutcome, TAIL_QUANTILES } from './etcd/loadgen.js';
import { type LockMode, WORKLOADS, type Workload } from './etcd/messages.js';
import { callDecoded, channel, RPC } from './etcd/protocol.js';
import { snapshotsDuring } from './etcd/snapshot-log.js';

const USAGE = `usage: npm run bench:etcd -- [options]
  --duration S        measured seconds per step (default 5; --quick 1.5)
  --warmup S          unmeasured seconds before each step (default 1; --quick 0.5)
  --concurrency LIST  in-flight operations per step (default 1,16,64; --quick 1,16)
  --only LIST         workloads, of: ${WORKLOADS.join(', ')}
  --keys N            keys loaded before the steps, RSS measured after (default 100000; --quick 20000)
  --workers N         load-generator threads (default 2)
  --channels N        gRPC channels (TCP connections) per endpoint per worker (default 2)
  --client KIND       the generator's gRPC client: h2 (bench/etcd/h2.ts, default) or grpc-js
  --lock MODE         auto (v3lock if both serve it, else the KV+lease+watch recipe), v3lock or recipe
  --etcd PATH         the etcd binary (default: etcd on PATH)
  --dir DIR           where the temp data directories go (default: the OS temp dir)
  --profile DIR       run the Conclave servers under node --cpu-prof, profiles written to DIR;
                      each step's measured window is logged in the profiles' clock, for
                      scripts/cpuprofile-summary.mjs --window
  --profile-interval US  sampling interval for --profile (default node's, 1000 µs)
  --node-args=ARGS    more node options for the Conclave servers, space-separated
                      (e.g. --node-args='--trace-gc --max-semi-space-size=32'; the = is needed)
  --server-logs DIR   also write every server's output (both systems) to DIR/NAME.log, and log
                      the Conclave snapshots taken during each step
  --tail              also log each step's latency at p90, p95, p97, p98, p99, p99.5 and p99.9
  --quick             a short run: fewer keys, shorter steps, concurrency 1,16`;

const { values: opts } = parseArgs({
  options: {
    duration: { type: 'string' },
    warmup: { type: 'string' },
    concurrency: { type: 'string' },
    only: { type: 'string' },
    keys: { type: 'string' },
    workers: { type: 'string' },
    channels: { type: 'string' },
    client: { type: 'string' },
    lock: { type: 'string' },
    etcd: { type: 'string' },
    dir: { type: 'string' },
    profile: { type: 'string' },
    'profile-interval': { type: 'string' },
    'node-args': { type: 'string' },
    'server-logs': { type: 'string' },
    tail: { type: 'boolean', default: false },
    quick: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opts.help) {
  console.log(USAGE);
  process.exit(0);
}

function positive(name: string, raw: string | undefined, dflt: number, integer = false): number {
  const v = raw === undefined ? dflt : Number(raw);
  if (!(v > 0) || (integer && !Number.isInteger(v))) {
    console.error(`--${name} must be a positive ${integer ? 'integer' : 'number'}: got '${raw}'\n${USAGE}`);
    process.exit(2);
  }
  return v;
}
const quick = opts.quick === true;
const durationMs = positive('duration', opts.duration, quick ? 1.5 : 5) * 1000;
const warmupMs = positive('warmup', opts.warmup, quick ? 0.5 : 1) * 1000;
const keys = positive('keys', opts.keys, quick ? 20_000 : 100_000, true);
const workerCount = positive('workers', opts.workers, 2, true);
const channelsPerEndpoint = positive('channels', opts.channels, 2, true);
const ladder = (opts.concurrency ?? (quick ? '1,16' : '1,16,64'))
  .split(',')
  .map((s) => positive('concurrency', s.trim(), 0, true));
const selected: Workload[] = [];
for (const name of (opts.only ?? WORKLOADS.join(',')).split(',').map((s) => s.trim())) {
  if (!(WORKLOADS as readonly string[]).includes(name)) {
    console.error(`--only: unknown workload '${name}'\n${USAGE}`);
    process.exit(2);
  }
  selected.push(name as Workload);
}
const etcdBin = opts.etcd ?? 'etcd';
const clientKind = opts.client ?? 'h2';
if (clientKind !== 'h2' && clientKind !== 'grpc-js') {
  console.error(`--client must be h2 or grpc-js: got '${clientKind}'\n${USAGE}`);
  process.exit(2);
}
const client: 'h2' | 'grpc-js' = clientKind;
const lockOption = opts.lock ?? 'auto';
if (lockOption !== 'auto' && lockOption !== 'v3lock' && lockOption !== 'recipe') {
  console.error(`--lock must be auto, v3lock or recipe: got '${lockOption}'\n${USAGE}`);
  process.exit(2);
}
const PRELOAD_INFLIGHT = 64;
const profileDir = opts.profile === undefined ? null : resolve(opts.profile);

/** Node options for the Conclave servers: --profile's and --node-args'. */
function conclaveNodeArgs(): string[] {
  const args = opts['node-args']?.split(' ').filter((a) => a !== '') ?? [];
  if (profileDir) {
    args.push('--cpu-prof', '--cpu-prof-dir', profileDir);
    if (opts['profile-interval'] !== undefined)
      args.push(
        '--cpu-prof-interval',
        String(positive('--profile-interval', opts['profile-interval'], 1000, true)),
      );
  }
  return args;
}

const log = (msg: string) => console.error(msg);

// ---- processes: whatever happens, every server we started is killed by PID

const logDir = opts['server-logs'] === undefined ? null : resolve(opts['server-logs']);
const procs = new Processes(logDir);
const root = mkdtempSync(join(opts.dir ?? tmpdir(), 'conclave-bench-etcd-'));
let generator: LoadGenerator | null = null;
let cleaning: Promise<void> | null = null;
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    await generator?.close().catch(() => {});
    // A graceful stop lets node write what --profile or --node-args asked for (--heap-prof).
    await procs.stopAll(profileDir || opts['node-args'] ? 15_000 : 0);
    if (profileDir) log(`Conclave CPU profiles in ${profileDir}`);
    rmSync(root, { recursive: true, force: true });
  })();
  return cleaning;
}
let interrupted = 0;
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    interrupted++;
    if (interrupted > 1) {
      procs.killAllSync();
      process.exit(130);
    }
    log(`\n${signal}: stopping every server started (pids ${procs.pids().join(' ') || 'none'})`);
    void cleanup().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  });
}
process.on('exit', () => {
  procs.killAllSync();
  try {
    rmSync(root, { recursive: true, force: true });
  } catch {
    // best effort
  }
});

// ---- reporting helpers

const fmtRate = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '-');
function fmtMs(ms: number): string {
  if (!Number.isFinite(ms)) return '-';
  if (ms < 1) return ms.toFixed(2);
  if (ms < 10) return ms.toFixed(1);
  return Math.round(ms).toString();
}
const fmtMiB = (b: number) => (Number.isFinite(b) ? `${Math.round(b / 1024 / 1024)} MiB` : '-');
const fmtCores = (c: number) => (Number.isFinite(c) ? c.toFixed(2) : '-');

function commandOutput(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '?';
  }
}

interface Row {
  workload: string;
  concurrency: number;
  etcd: StepOutcome | 'unsupported' | 'failed' | 'skipped';
  conclave: StepOutcome | 'unsupported' | 'failed' | 'skipped';
  notes: string[];
}

const rssSum = (c: ClusterHandle) => c.members.reduce((a, m) => a + rssBytes(m.pid), 0);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Compact each cluster's history up to now (etcd 3.4 does not by default; the benchmark keeps both small). */
const compactedAt = new Map<ClusterHandle, string>();
async function compact(c: ClusterHandle): Promise<void> {
  const client = channel(c.members[0]!.endpoint);
  try {
    const r = await callDecoded(client, RPC.range(), { key: Buffer.from('bench/ready') });
    const revision = String(r.header.revision);
    if (compactedAt.get(c) === revision) return; // nothing written since
    await callDecoded(client, RPC.compact(), { revision }, 60_000);
    compactedAt.set(c, revision);
  } finally {
    client.close();
  }
}

async function main(): Promise<void> {
  const started = Date.now();
  log(`data directories under ${root}`);
  log('starting etcd (3 members) and Conclave (3 servers) on loopback ...');
  const [etcd, conclave] = await Promise.all([
    startEtcd(procs, root, etcdBin),
    startConclave(procs, root, conclaveNodeArgs()),
  ]);
  log(`  etcd: ${etcd.members.map((m) => `${m.name} pid ${m.pid} ${m.endpoint}`).join(', ')}`);
  log(`  Conclave: ${conclave.members.map((m) => `${m.name} pid ${m.pid} ${m.endpoint}`).join(', ')}`);
  const systems = [etcd, conclave];
  generator = await LoadGenerator.start(workerCount, channelsPerEndpoint, client);
  const gen = generator;

  // What each system serves (Lease, Watch and v3lock may be missing on Conclave).
  const support = new Map<ClusterHandle, Record<'lease' | 'watch' | 'v3lock', boolean>>();
  for (const c of systems) {
    const eps = c.members.map((m) => m.endpoint);
    const s = { lease: false, watch: false, v3lock: false };
    for (const what of ['lease', 'watch', 'v3lock'] as const) {
      const r = await gen.probe(eps, what);
      s[what] = r.supported;
      if (!r.supported) log(`  ${c.system}: ${what} not served (${r.detail})`);
    }
    support.set(c, s);
  }
  const lockMode: LockMode =
    lockOption === 'v3lock' || lockOption === 'recipe'
      ? lockOption
      : support.get(conclave)!.v3lock && support.get(etcd)!.v3lock
        ? 'v3lock'
        : 'recipe';
  const supported = (c: ClusterHandle, w: Workload): boolean => {
    const s = support.get(c)!;
    if (w === 'lease') return s.lease;
    if (w === 'watch') return s.watch;
    if (w === 'lock') return lockMode === 'v3lock' ? s.v3lock : s.lease && s.watch;
    return true;
  };

  // Memory: RSS before and after loading the keyspace (which every workload then reads or overwrites).
  const memory = new Map<ClusterHandle, { before: number; after: number; putsPerSec: number }>();
  for (const c of systems) {
    const before = rssSum(c);
    log(
      `loading ${keys.toLocaleString('en-US')} keys of 256 B into ${c.system} (${PRELOAD_INFLIGHT} in flight) ...`,
    );
    const { endpoints } = await leaderFirst(c);
    const r = await gen.preload(endpoints, keys, PRELOAD_INFLIGHT);
    if (r.errors) log(`  ${r.errors} put errors, retried (${r.firstError})`);
    await sleep(3000);
    const after = rssSum(c);
    memory.set(c, { before, after, putsPerSec: keys / r.seconds });
    log(`  ${fmtRate(keys / r.seconds)} puts/s; RSS ${fmtMiB(before)} -> ${fmtMiB(after)}`);
  }

  const rows: Row[] = [];
  let stepNo = 0;
  for (const workload of selected) {
    for (const concurrency of ladder) {
      const row: Row = { workload, concurrency, etcd: 'skipped', conclave: 'skipped', notes: [] };
      rows.push(row);
      for (const c of systems) {
        const key = c === etcd ? 'etcd' : 'conclave';
        if (!supported(c, workload)) {
          row[key] = 'unsupported';
          log(`${workload} x${concurrency} ${c.system}: unsupported`);
          continue;
        }
        const before = await leaderFirst(c);
        let out: StepOutcome;
        const stepStartUs = process.hrtime.bigint() / 1000n;
        const measuredFromMs = Date.now() + warmupMs;
        try {
          out = await gen.step(
            {
              workload,
              lockMode,
              endpoints: before.endpoints,
              keys,
              tag: `${process.pid}-${stepNo++}`,
              seed: stepNo,
            },
            concurrency,
            warmupMs,
            durationMs,
            c.members.map((m) => m.pid),
          );
        } catch (err) {
          if (interrupted) throw err;
          const text = err instanceof Error ? err.message : String(err);
          row[key] = /UNIMPLEMENTED/.test(text) ? 'unsupported' : 'failed';
          row.notes.push(`${c.system}: step failed: ${text}`);
          log(`${workload} x${concurrency} ${c.system}: failed: ${text}`);
          continue;
        }
        if (profileDir && c === conclave) {
          // process.hrtime and V8's profile timestamps read the same monotonic clock.
          const measuredFrom = stepStartUs + BigInt(Math.round(warmupMs * 1000));
          log(
            `  profile window ${measuredFrom},${process.hrtime.bigint() / 1000n} (leader pid ${before.pid})`,
          );
        }
        const after = await leaderFirst(c);
        if (after.term !== before.term) row.notes.push(`${c.system}: leader election during the step`);
        if (out.unsupported) row[key] = 'unsupported';
        else row[key] = out;
        if (out.errors) row.notes.push(`${c.system}: ${out.errors} errors (${out.firstError})`);
        // Sanity: CAS loops should rarely lose (each slot owns its key); watches should see every put.
        if (workload === 'txn-cas' && out.extra > concurrency + out.ops * 0.01)
          row.notes.push(`${c.system}: ${out.extra} of ${out.ops} CAS compares failed`);
        if (workload === 'watch' && out.ops < out.extra * 0.95)
          row.notes.push(`${c.system}: ${out.ops} events delivered for ${out.extra} puts in the window`);
        if (out.maxWorkerElu > 0.9)
          row.notes.push(
            `generator thread saturated (${Math.round(out.maxWorkerElu * 100)}%) on ${c.system}`,
          );
        log(
          `${workload} x${concurrency} ${c.system}: ${fmtRate(out.opsPerSec)}/s p50 ${fmtMs(out.p50)} ms p99 ${fmtMs(out.p99)} ms max ${fmtMs(out.max)} ms; ` +
            `servers ${fmtCores(out.serverCores)} cores, generator ${fmtCores(out.generatorCores)} cores ` +
            `(busiest thread ${Math.round(out.maxWorkerElu * 100)}%)${out.errors ? `; ${out.errors} errors: ${out.firstError}` : ''}`,
        );
        if (opts.tail)
          log(
            `  tail ms: ${TAIL_QUANTILES.map((q, i) => `p${Math.round(q * 1000) / 10} ${fmtMs(out.tail[i]!)}`).join(', ')}`,
          );
        const measuredToMs = Date.now();
        await sleep(300);
        if (logDir !== null && c === conclave) {
          const names = c.members.map((m) => m.name);
          for (const snap of snapshotsDuring(logDir, names, measuredFromMs, measuredToMs))
            log(
              `  snapshot during the step: ${snap.server}, ${(snap.bytes / 1e6).toFixed(1)} MB, ` +
                `capture ${snap.captureMs} ms, save ${snap.saveMs} ms`,
            );
        }
      }
    }
    for (const c of systems) await compact(c).catch((err) => log(`compact ${c.system}: ${String(err)}`));
  }

  // ---- the report
  const etcdVersion = commandOutput(etcdBin, ['--version']).split('\n')[0] ?? '?';
  const commit = commandOutput('git', ['rev-parse', '--short', 'HEAD']);
  const dirty = commandOutput('git', ['status', '--porcelain', '--', 'src']) ? ' (src modified)' : '';
  const cpu = cpus();
  const out: string[] = [];
  out.push(
    `${new Date().toISOString().slice(0, 10)}; ${cpu.length} × ${cpu[0]?.model.trim() ?? '?'}; Node ${process.version}; ` +
      `${etcdVersion}; Conclave ${commit}${dirty}`,
    '',
  );
  out.push(
    `steps of ${durationMs / 1000} s after ${warmupMs / 1000} s warm-up; ${workerCount} generator threads × ` +
      `${channelsPerEndpoint} ${clientKind} channels per endpoint; ${keys.toLocaleString('en-US')} keys, 256 B values; lock: ${lockMode}`,
  );
  out.push('');
  out.push(
    '| workload | in flight | etcd ops/s | etcd p50 ms | etcd p99 ms | Conclave ops/s | Conclave p50 ms | Conclave p99 ms | Conclave/etcd |',
  );
  out.push('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  const cells = (o: Row['etcd']) =>
    typeof o === 'string' ? [o, '', ''] : [fmtRate(o.opsPerSec), fmtMs(o.p50), fmtMs(o.p99)];
  for (const r of rows) {
    const ratio =
      typeof r.etcd !== 'string' && typeof r.conclave !== 'string' && r.etcd.opsPerSec > 0
        ? `${(r.conclave.opsPerSec / r.etcd.opsPerSec).toFixed(2)}`
        : '-';
    out.push(
      `| ${r.workload} | ${r.concurrency} | ${[...cells(r.etcd), ...cells(r.conclave), ratio].join(' | ')} |`,
    );
  }
  out.push('');
  out.push(
    '| workload | in flight | etcd max ms | Conclave max ms | etcd servers CPU | Conclave servers CPU | etcd CPU µs/op | Conclave CPU µs/op | generator CPU (etcd / Conclave step) |',
  );
  out.push('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  const cpuPerOp = (o: Row['etcd']) =>
    typeof o === 'string' || o.opsPerSec === 0
      ? '-'
      : Math.round((o.serverCores / o.opsPerSec) * 1e6).toString();
  const maxMs = (o: Row['etcd']) => (typeof o === 'string' ? '-' : fmtMs(o.max));
  const cores = (o: Row['etcd']) => (typeof o === 'string' ? '-' : fmtCores(o.serverCores));
  const genCores = (o: Row['etcd']) => (typeof o === 'string' ? '-' : fmtCores(o.generatorCores));
  for (const r of rows) {
    out.push(
      `| ${r.workload} | ${r.concurrency} | ${maxMs(r.etcd)} | ${maxMs(r.conclave)} | ` +
        `${cores(r.etcd)} | ${cores(r.conclave)} | ${cpuPerOp(r.etcd)} | ` +
        `${cpuPerOp(r.conclave)} | ${genCores(r.etcd)} / ${genCores(r.conclave)} |`,
    );
  }
  out.push('');
  out.push(`| memory (RSS, sum of 3 members) | etcd | Conclave |`);
  out.push('| --- | ---: | ---: |');
  const me = memory.get(etcd)!;
  const mc = memory.get(conclave)!;
  out.push(`| idle, before loading | ${fmtMiB(me.before)} | ${fmtMiB(mc.before)} |`);
  out.push(
    `| after loading ${keys.toLocaleString('en-US')} keys | ${fmtMiB(me.after)} | ${fmtMiB(mc.after)} |`,
  );
  out.push(
    `| load rate (puts/s, ${PRELOAD_INFLIGHT} in flight) | ${fmtRate(me.putsPerSec)} | ${fmtRate(mc.putsPerSec)} |`,
  );
  const notes = rows.flatMap((r) => r.notes.map((n) => `- ${r.workload} ×${r.concurrency}: ${n}`));
  if (notes.length) out.push('', 'Notes:', ...notes);
  const genTotal = rows
    .flatMap((r) => [r.etcd, r.conclave])
    .filter((o): o is StepOutcome => typeof o !== 'string');
  const maxGen = Math.max(0, ...genTotal.map((o) => o.generatorCores));
  const maxElu = Math.max(0, ...genTotal.map((o) => o.maxWorkerElu));
  out.push(
    '',
    `Generator: at most ${fmtCores(maxGen)} cores over a step, busiest thread ${Math.round(maxElu * 100)}% ` +
      `busy${maxElu > 0.9 ? ' — WARNING: a generator thread saturated a core; add --workers' : ''}. ` +
      `Run time ${Math.round((Date.now() - started) / 1000)} s.`,
  );
  console.log(out.join('\n'));
}

try {
  await main();
} catch (err) {
  // After a signal the servers and workers go away under the run: that is not a failure to report.
  if (!interrupted)
    log(`bench:etcd failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exitCode = 1;
} finally {
  await cleanup();
}
