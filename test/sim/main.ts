/**
 * The deterministic simulator's command line.
 *   npm run sim -- --seeds 500          run seeds 1..500 (3, 5 and 7 voters in turn)
 *   npm run sim -- --seed 1234 -v       replay one seed exactly, printing its trace
 *   npm run sim -- --bug voteForStaleLog --seeds 200   show the checkers catch an injected bug
 */
import { parseArgs } from 'node:util';
import type { InjectedBugs } from '../../src/raft/node.js';
import { runSeed, type SimResult } from './cluster.js';

const { values } = parseArgs({
  options: {
    seed: { type: 'string' },
    seeds: { type: 'string' },
    start: { type: 'string', default: '1' },
    voters: { type: 'string' },
    'fault-ms': { type: 'string' },
    bug: { type: 'string', multiple: true },
    'read-mode': { type: 'string', default: 'safe' },
    verbose: { type: 'boolean', short: 'v', default: false },
  },
});

function fail(message: string): never {
  console.error(`sim: ${message}`);
  process.exit(2);
}

function parsePositive(name: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) fail(`--${name} must be a non-negative integer: got '${text}'`);
  return n;
}

const knownBugs = [
  'commitOldTermByCount',
  'voteForStaleLog',
  'skipConfChangeErratum',
  'readWithoutQuorumCheck',
];
const bugs: InjectedBugs = {};
for (const b of values.bug ?? []) {
  if (!knownBugs.includes(b)) fail(`unknown --bug '${b}'; known: ${knownBugs.join(', ')}`);
  (bugs as Record<string, boolean>)[b] = true;
}

const readMode = values['read-mode'];
if (readMode !== 'safe' && readMode !== 'lease') fail(`--read-mode must be safe or lease: got '${readMode}'`);

const single = parsePositive('seed', values.seed);
const count = parsePositive('seeds', values.seeds) ?? (single === undefined ? 100 : 1);
const start = single ?? parsePositive('start', values.start) ?? 1;
const votersFixed = parsePositive('voters', values.voters);
if (votersFixed !== undefined && ![3, 5, 7].includes(votersFixed)) fail('--voters must be 3, 5 or 7');
const faultMs = parsePositive('fault-ms', values['fault-ms']);

const began = Date.now();
let violations = 0;
const totals = {
  events: 0,
  writesAcked: 0,
  readsServed: 0,
  leaderChanges: 0,
  crashes: 0,
  confChanges: 0,
  checks: 0,
};
for (let i = 0; i < count; i++) {
  const seed = start + i;
  const voters = (votersFixed ?? [3, 5, 7][seed % 3]) as 3 | 5 | 7;
  const result: SimResult = runSeed({
    seed,
    voters,
    bugs,
    readMode,
    ...(faultMs !== undefined ? { faultMs } : {}),
    ...(values.verbose ? { trace: (line: string) => console.log(line) } : {}),
  });
  for (const k of Object.keys(totals) as (keyof typeof totals)[]) totals[k] += result[k];
  if (result.violation) {
    violations++;
    console.log(`seed ${seed} (${voters} voters): VIOLATION ${result.violation}`);
    console.log(
      `  replay: npm run sim -- --seed ${seed} --voters ${voters}${(values.bug ?? []).map((b) => ` --bug ${b}`).join('')} -v`,
    );
  } else if (count === 1 || values.verbose) {
    console.log(`seed ${seed} (${voters} voters): ok`, result);
  }
}
const seconds = (Date.now() - began) / 1000;
console.log(
  `${count} seeds, ${violations} violations in ${seconds.toFixed(1)}s: ${totals.events} events, ` +
    `${totals.writesAcked} writes acked, ${totals.readsServed} reads checked, ${totals.leaderChanges} leader terms, ` +
    `${totals.crashes} crashes, ${totals.confChanges} membership changes, ${totals.checks} invariant checks`,
);
process.exit(violations > 0 ? 1 : 0);
