/**
 * The client's consistent-hash ring: for N instances and 100k keys, the fraction of keys that
 * move when one of N leaves (ideal 1/N) and when one joins (ideal 1/(N+1)), and the load spread
 * (max/mean keys per instance, ideal 1.00), for several virtual-node counts. Leave and join are
 * averaged over every instance leaving / several newcomers. A leaver's keys are exactly its share, so
 * "leave avg" is 1/N by construction; "leave worst" and max/mean show how even the shares are.
 * For contrast, `hash mod N` (what a naive client does) moves almost every key. Also the cost of
 * one lookup.
 *   npm run bench:client [-- --keys 100000]
 */
import { parseArgs } from 'node:util';
import { sha256Hash32 } from '../src/client/hash.js';
import { HashRing } from '../src/client/hash-ring.js';

const { values } = parseArgs({ options: { keys: { type: 'string', default: '100000' } } });
const keyCount = Number(values.keys);
if (!Number.isInteger(keyCount) || keyCount < 1)
  throw new Error(`--keys must be a positive integer: got '${values.keys}'`);

const INSTANCE_COUNTS = [3, 5, 10, 50];
const VIRTUAL_NODE_COUNTS = [1, 16, 64, 160, 512];
const JOINERS = 5;

// Keys hashed once: every configuration below looks up the same hashes.
const keyHashes = new Uint32Array(keyCount);
for (let k = 0; k < keyCount; k++) keyHashes[k] = sha256Hash32(`user:${k}`);

function assign(ring: HashRing): string[] {
  const owners = new Array<string>(keyCount);
  for (let k = 0; k < keyCount; k++) owners[k] = ring.lookupHash(keyHashes[k]!)!;
  return owners;
}

function spread(owners: readonly string[], instances: number): number {
  const counts = new Map<string, number>();
  for (const o of owners) counts.set(o, (counts.get(o) ?? 0) + 1);
  return Math.max(...counts.values()) / (keyCount / instances);
}

/** Fraction of keys whose owner differs; throws if a key moved between two staying members. */
function moved(before: readonly string[], after: readonly string[], changed: string): number {
  let count = 0;
  for (let k = 0; k < keyCount; k++) {
    if (before[k] === after[k]) continue;
    if (before[k] !== changed && after[k] !== changed)
      throw new Error(`key ${k} moved between staying members`);
    count++;
  }
  return count / keyCount;
}

/** Fraction of keys that change owner under hash mod N when N becomes `next`. */
function movedModN(n: number, next: number): number {
  let count = 0;
  for (let k = 0; k < keyCount; k++) if (keyHashes[k]! % n !== keyHashes[k]! % next) count++;
  return count / keyCount;
}

const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
const rows: string[][] = [];
for (const n of INSTANCE_COUNTS) {
  const members = Array.from({ length: n }, (_, i) => `node-${i}/web-${i}`);
  for (const vnodes of VIRTUAL_NODE_COUNTS) {
    const ring = new HashRing({ virtualNodes: vnodes });
    ring.setMembers(members);
    const base = assign(ring);

    let leaveSum = 0;
    let leaveWorst = 0;
    for (const leaving of members) {
      ring.setMembers(members.filter((m) => m !== leaving));
      const f = moved(base, assign(ring), leaving);
      leaveSum += f;
      leaveWorst = Math.max(leaveWorst, f);
    }
    let joinSum = 0;
    for (let j = 0; j < JOINERS; j++) {
      const joining = `node-new-${j}/web`;
      ring.setMembers([...members, joining]);
      joinSum += moved(base, assign(ring), joining);
    }
    rows.push([
      String(n),
      String(vnodes),
      pct(1 / n),
      pct(leaveSum / n),
      pct(leaveWorst),
      pct(1 / (n + 1)),
      pct(joinSum / JOINERS),
      spread(base, n).toFixed(2),
      pct(movedModN(n, n - 1)),
      pct(movedModN(n, n + 1)),
    ]);
  }
}

const header = [
  'N',
  'vnodes',
  'ideal leave',
  'leave avg',
  'leave worst',
  'ideal join',
  'join avg',
  'max/mean',
  'mod-N leave',
  'mod-N join',
];
const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
const line = (cells: string[]) => cells.map((cell, c) => cell.padStart(widths[c]!)).join('  ');
console.log(
  `${keyCount} keys; moved fraction when one instance leaves (avg and worst over each) / joins (avg of ${JOINERS})`,
);
console.log(line(header));
for (const r of rows) console.log(line(r));

// Lookup cost: hashing the key dominates; the binary search is over N * vnodes points. Best of 5
// runs, since the machine is shared.
const ring = new HashRing();
ring.setMembers(Array.from({ length: 50 }, (_, i) => `node-${i}/web-${i}`));
const lookups = 100_000;
let sink = 0;
let bestNs = Number.POSITIVE_INFINITY;
for (let run = 0; run < 5; run++) {
  const began = performance.now();
  for (let k = 0; k < lookups; k++) sink += ring.lookup(`session-${k}`)!.length;
  bestNs = Math.min(bestNs, ((performance.now() - began) * 1e6) / lookups);
}
if (sink === 0) throw new Error('no lookup answered');
console.log(`lookup (hash + search), 50 instances x 160 vnodes: ${bestNs.toFixed(0)} ns`);
