#!/usr/bin/env node
// Summarises a V8 .cpuprofile (as written by `node --cpu-prof`, e.g. by
// `npm run bench:etcd -- --profile DIR`): the functions with the most self time, and the longest
// stretches without idle time with what ran in them (inclusive), which is where a latency stall
// shows up.
//
// Usage: node scripts/cpuprofile-summary.mjs FILE.cpuprofile [--top N] [--runs N]
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { top: { type: 'string', default: '20' }, runs: { type: 'string', default: '3' } },
});
if (positionals.length !== 1) {
  console.error('usage: node scripts/cpuprofile-summary.mjs FILE.cpuprofile [--top N] [--runs N]');
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
for (let i = 0; i < profile.samples.length; i++) {
  const delta = profile.timeDeltas[i] ?? 0;
  time += delta;
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
