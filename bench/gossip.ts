/**
 * The gossip core under the deterministic simulator (test/gossip/sim.ts): memberlist's LAN
 * defaults, one-way latency 1 ms + exponential(2 ms), at 10, 100 and 1000 members.
 *   tsx bench/gossip.ts [--sizes 10,100,1000] [--runs N] [--fp-seconds S] [--seed 1]
 *
 * Prints, per size: time until a crashed member is known failed by all (median, p99 over the
 * crashes of several seeded runs), time until a joiner is known by all, UDP/TCP messages and
 * bytes per member per second in a healthy cluster, and false positives (healthy members
 * suspected or declared failed) under 5% and 20% UDP loss and with one slow member, Lifeguard
 * on and off in the same seeded runs.
 */
import { parseArgs } from 'node:util';
import { addressOf, GossipSim, memberName } from '../test/gossip/sim.js';

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '10,100,1000' },
    runs: { type: 'string' },
    'fp-seconds': { type: 'string' },
    seed: { type: 'string', default: '1' },
  },
});

function positiveInteger(name: string, text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive integer: got '${text}'`);
  return n;
}

const sizes = values.sizes.split(',').map((s) => positiveInteger('sizes', s));
/** Seeded runs per size for the latency table (3 crashes and a join each). */
function runsFor(n: number): number {
  if (values.runs !== undefined) return positiveInteger('runs', values.runs);
  return n <= 10 ? 10 : n <= 100 ? 5 : 1;
}
const baseSeed = positiveInteger('seed', values.seed);
/** Simulated seconds per false-positive run: long for small pools, bounded for large ones. */
function fpSeconds(n: number): number {
  if (values['fp-seconds'] !== undefined) return positiveInteger('fp-seconds', values['fp-seconds']);
  return n <= 10 ? 600 : n <= 100 ? 180 : 30;
}
/** Mean extra processing delay of the slow member's inbound messages (uniform 0..2×). */
const SLOW_MEAN_DELAY_MS = 1000;
const CRASHES_PER_RUN = 3;

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, index)]!;
}

function seconds(ms: number): string {
  return Number.isFinite(ms) ? (ms / 1000).toFixed(1) : '—';
}

interface Latencies {
  suspectFirst: number[];
  detectFirst: number[];
  detectAll: number[];
  joinAll: number[];
  udpPerSecond: number;
  tcpPerSecond: number;
  bytesPerSecond: number;
}

/** Crash members one at a time, then add a joiner; measure spread times and steady traffic. */
function latencyRun(n: number, seed: number, lifeguard: boolean, out: Latencies): void {
  const runs = runsFor(n);
  const sim = new GossipSim({ seed, members: n, config: { lifeguard } });
  sim.runFor(5_000);
  // Steady traffic in a healthy pool: 30 simulated seconds after warm-up.
  const before = { ...sim.traffic };
  sim.runFor(30_000);
  out.udpPerSecond += (sim.traffic.udpMessages - before.udpMessages) / n / 30 / runs;
  out.tcpPerSecond += (sim.traffic.tcpMessages - before.tcpMessages) / n / 30 / runs;
  out.bytesPerSecond += (sim.traffic.bytes - before.bytes) / n / 30 / runs;
  for (let crash = 0; crash < Math.min(CRASHES_PER_RUN, n - 3); crash++) {
    const victim = memberName(1 + ((seed * 7 + crash * 13) % (n - 1)));
    if (sim.condition(victim) !== 'healthy') continue;
    sim.crash(victim);
    const at = sim.now;
    const took = sim.runUntilTrue(() => sim.spreadTime('failed', victim, at) !== null, 300_000);
    if (took === null) throw new Error(`seed ${seed}: crash of ${victim} not known by all in 300 s`);
    out.detectAll.push(sim.spreadTime('failed', victim, at)!);
    out.suspectFirst.push(sim.firstSuspectedAt.get(victim)! - at);
    out.detectFirst.push(Math.min(...sim.firstSeen.failed.get(victim)!.values()) - at);
    sim.runFor(2_000);
  }
  const joiner = memberName(n);
  sim.addMember(joiner, [addressOf(memberName(0))]);
  const at = sim.now;
  const took = sim.runUntilTrue(() => sim.spreadTime('join', joiner, at) !== null, 120_000);
  if (took === null) throw new Error(`seed ${seed}: join of ${joiner} not known by all in 120 s`);
  out.joinAll.push(sim.spreadTime('join', joiner, at)!);
}

interface FalsePositives {
  /** (observer, subject) failed events about healthy members. */
  failedEvents: number;
  /** Distinct healthy members someone declared failed / suspected. */
  failedMembers: number;
  suspectedMembers: number;
  suspectEvents: number;
  /** The slow member itself declared failed by someone. */
  slowDeclared: boolean;
}

type Scenario = { label: string; lossRate: number; slow: boolean };
const scenarios: Scenario[] = [
  { label: '5% loss', lossRate: 0.05, slow: false },
  { label: '20% loss', lossRate: 0.2, slow: false },
  { label: 'one slow member', lossRate: 0, slow: true },
];

function fpRun(n: number, seed: number, scenario: Scenario, lifeguard: boolean): FalsePositives {
  const sim = new GossipSim({ seed, members: n, lossRate: scenario.lossRate, config: { lifeguard } });
  const slowName = memberName(n - 1);
  if (scenario.slow) sim.slow(slowName, SLOW_MEAN_DELAY_MS);
  sim.runFor(fpSeconds(n) * 1000);
  const except = scenario.slow ? [slowName] : [];
  return {
    failedEvents: sim.falsePositiveEvents('failed', except),
    failedMembers: sim.falsePositiveMembers('failed', except),
    suspectedMembers: sim.falsePositiveMembers('suspect', except),
    suspectEvents: sim.falsePositiveEvents('suspect', except),
    slowDeclared:
      scenario.slow && sim.falsePositiveEvents('failed') > sim.falsePositiveEvents('failed', except),
  };
}

const started = performance.now();
console.log(
  `gossip bench: memberlist LAN defaults (probe 1 s / timeout 500 ms, k = 3, gossip 200 ms × 3, ` +
    `retransmit 4, suspicion 4 × log10 n s, Lifeguard max ×6), latency 1 ms + exp(2 ms)\n`,
);
const latencyRows: string[] = [];
const fpRows: string[] = [];
for (const n of sizes) {
  const t0 = performance.now();
  for (const lifeguard of [false, true]) {
    const lat: Latencies = {
      suspectFirst: [],
      detectFirst: [],
      detectAll: [],
      joinAll: [],
      udpPerSecond: 0,
      tcpPerSecond: 0,
      bytesPerSecond: 0,
    };
    for (let r = 0; r < runsFor(n); r++) latencyRun(n, baseSeed + r, lifeguard, lat);
    const all = [...lat.detectAll].sort((a, b) => a - b);
    const first = [...lat.detectFirst].sort((a, b) => a - b);
    const suspect = [...lat.suspectFirst].sort((a, b) => a - b);
    const join = [...lat.joinAll].sort((a, b) => a - b);
    latencyRows.push(
      `| ${n} | ${lifeguard ? 'Lifeguard' : 'SWIM'} | ${all.length} | ${seconds(percentile(suspect, 50))} | ` +
        `${seconds(percentile(first, 50))} | ` +
        `${seconds(percentile(all, 50))} | ${seconds(percentile(all, 99))} | ` +
        `${join.length} | ${seconds(percentile(join, 50))} | ${seconds(percentile(join, 99))} | ` +
        `${lat.udpPerSecond.toFixed(2)} | ${lat.tcpPerSecond.toFixed(3)} | ${Math.round(lat.bytesPerSecond)} |`,
    );
  }
  for (const scenario of scenarios) {
    const cells: string[] = [];
    for (const lifeguard of [false, true]) {
      const fp = fpRun(n, baseSeed, scenario, lifeguard);
      cells.push(
        `${fp.failedMembers} (${fp.failedEvents}) | ${fp.suspectedMembers} (${fp.suspectEvents})` +
          (scenario.slow ? ` | ${fp.slowDeclared ? 'yes' : 'no'}` : ' | '),
      );
    }
    fpRows.push(`| ${n} | ${fpSeconds(n)} s | ${scenario.label} | ${cells[0]} | ${cells[1]} |`);
  }
  console.error(`  n=${n} done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

console.log(
  'Failure detection, join and load (first suspect / first failed: the first member to suspect / declare ' +
    'the crashed one; p99 over this few samples is their maximum)\n',
);
console.log(
  '| members | mode | crashes | first suspect p50 (s) | first failed p50 (s) | all know p50 (s) | all know p99 (s) | joins | join known by all p50 (s) | p99 (s) | UDP msgs/member/s | TCP msgs/member/s | bytes/member/s |',
);
console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
for (const row of latencyRows) console.log(row);
console.log(
  '\nFalse positives over the run: healthy members declared failed by anyone (failed events), healthy members suspected (suspect events);',
);
console.log('the slow member is not counted among the healthy; its own fate is in the last column.\n');
console.log(
  '| members | simulated | scenario | SWIM: failed | SWIM: suspected | SWIM: slow one failed | Lifeguard: failed | Lifeguard: suspected | Lifeguard: slow one failed |',
);
console.log('|---|---|---|---|---|---|---|---|---|');
for (const row of fpRows) console.log(row);
console.log(`\n(${((performance.now() - started) / 1000).toFixed(0)} s wall)`);
