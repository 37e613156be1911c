#!/usr/bin/env node
// Summarises a V8 .cpuprofile (as written by `node --cpu-prof`, e.g. by
// `npm run bench:etcd -- --profile DIR`): the functions with the most self time, and the longest
// stretches without idle time with what ran in them (inclusive), which is where a latency stall
// shows up.
//
// Usage: node scripts/cpuprofile-summary.mjs FILE.cpuprofile [--top N] [--runs N] [--last SECONDS]
//
// --last keeps only the samples of the profile's last SECONDS (a benchmark's final step, say),
// and adds how many busy stretches there were per length and what their samples were doing.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    top: { type: 'string', default: '20' },
    runs: { type: 'string', default: '3' },
    last: { type: 'string' },
    window: { type: 'string' },
    long: { type: 'string', default: '2' },
  },
});
if (positionals.length !== 1) {
  console.error(
    'usage: node scripts/cpuprofile-summary.mjs FILE.cpuprofile [--top N] [--runs N] [--last SECONDS]',
  );
  process.exit(2);
}
const profile = JSON.parse(readFileSync(positionals[0], 'utf8'));
const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
const parentOf = new Map();
for (const n of profile.nodes) for (const child of n.children ?? []) parentOf.set(child, n.id);

const label = (node) => {
  const { functionName, url, lineNumber } = node.callFrame;
  return `${functionName || '(anonymous)'} ${url.split('/').slice(-2).join('/')}:${lineNumber + 1}`;
};
const pct = (part, whole) => `${((part / whole) * 100).toFixed(1).padStart(5)} %`;

// Self time per function, and the runs of consecutive non-idle samples.
const self = new Map();
const runs = [];
let total = 0;
let time = profile.startTime;
let run = null;
const [windowFrom, windowTo] = (values.window ?? '').split(',').map(Number);
const from = values.window
  ? windowFrom
  : values.last === undefined
    ? -Infinity
    : profile.endTime - Number(values.last) * 1e6;
const to = values.window ? windowTo : Infinity;
for (let i = 0; i < profile.samples.length; i++) {
  const delta = profile.timeDeltas[i] ?? 0;
  time += delta;
  if (time < from || time > to) continue;
  total += delta;
  const node = nodes.get(profile.samples[i]);
  const key = label(node);
  self.set(key, (self.get(key) ?? 0) + delta);
  if (node.callFrame.functionName === '(idle)') {
    if (run) runs.push(run);
    run = null;
    continue;
  }
  run ??= { start: time, end: time, samples: [] };
  run.end = time;
  run.samples.push(node.id);
}
if (run) runs.push(run);

console.log(`${(total / 1000).toFixed(0)} ms sampled; self time:`);
for (const [key, t] of [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(values.top)))
  console.log(`  ${pct(t, total)}  ${key}`);

if (values.last !== undefined || values.window !== undefined) {
  // Busy stretches by length, and the self time inside the long ones: what a request that
  // arrives during one waits for.
  const bounds = [1, 2, 3, 5, 10, Infinity];
  const counts = bounds.map(() => 0);
  const longSelf = new Map();
  let longSamples = 0;
  for (const r of runs) {
    const ms = (r.end - r.start) / 1000;
    counts[bounds.findIndex((b) => ms < b)]++;
    if (ms < Number(values.long)) continue;
    for (const id of r.samples) {
      const key = label(nodes.get(id));
      longSelf.set(key, (longSelf.get(key) ?? 0) + 1);
      longSamples++;
    }
  }
  console.log('\nbusy stretches by length (ms):');
  let lower = 0;
  for (let i = 0; i < bounds.length; i++) {
    console.log(`  ${String(lower).padStart(2)}-${bounds[i] === Infinity ? '' : bounds[i]}: ${counts[i]}`);
    lower = bounds[i];
  }
  console.log(`self time in stretches of ${values.long} ms or more:`);
  for (const [key, n] of [...longSelf].sort((a, b) => b[1] - a[1]).slice(0, Number(values.top)))
    console.log(`  ${pct(n, longSamples)}  ${key}`);
}

runs.sort((a, b) => b.end - b.start - (a.end - a.start));
for (const r of runs.slice(0, Number(values.runs))) {
  console.log(
    `\nbusy for ${((r.end - r.start) / 1000).toFixed(0)} ms without idle (${r.samples.length} samples):`,
  );
  const inclusive = new Map();
  for (const id of r.samples) {
    const seen = new Set();
    for (let at = id; at !== undefined; at = parentOf.get(at)) {
      const key = label(nodes.get(at));
      if (seen.has(key)) continue;
      seen.add(key);
      inclusive.set(key, (inclusive.get(key) ?? 0) + 1);
    }
  }
  for (const [key, n] of [...inclusive].sort((a, b) => b[1] - a[1]).slice(1, Number(values.top)))
    console.log(`  ${pct(n, r.samples.length)}  ${key}`);
}
