/**
 * Store benchmark: in-process apply (no Raft, no disk), one core.
 *   npm run bench:store            (1M keys)
 *   npm run bench:store -- 200000  (smaller key count)
 * Measures puts/s into N keys (256 B values), point gets/s, 1k-key range reads/s, watch fan-out
 * to 1k watchers (events/s), snapshot speed, and heap bytes per key at N keys.
 */
import { type Command, decodeCommand, encodeCommand, Store, snapshot } from '../src/store/index.js';

const gc = (globalThis as { gc?: () => void }).gc;
const keyCount = Number(process.argv[2] ?? 1_000_000);
const VALUE_BYTES = 256;

function keyOf(i: number): Uint8Array {
  return Buffer.from(`/registry/pods/ns-${i % 100}/pod-${i.toString().padStart(8, '0')}`);
}

/** Small deterministic PRNG (mulberry32). */
function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function memory(): { heap: number; external: number } {
  gc?.();
  gc?.();
  const usage = process.memoryUsage();
  return { heap: usage.heapUsed, external: usage.external };
}

const rows: [string, string, string][] = [];
function row(name: string, value: string, note = ''): void {
  rows.push([name, value, note]);
  console.error(`  ${name}: ${value} ${note}`);
}
const rate = (count: number, ms: number) => `${Math.round((count / ms) * 1000).toLocaleString('en-US')}/s`;

if (gc === undefined) console.error('note: run with --expose-gc (npm run bench:store) for memory figures');

const values: Uint8Array[] = [];
for (let i = 0; i < 16; i++) values.push(Buffer.alloc(VALUE_BYTES, 97 + i));

// Keys are built up front so the timed loop measures apply, not string formatting.
const keys: Uint8Array[] = new Array(keyCount);
for (let i = 0; i < keyCount; i++) keys[i] = keyOf(i);

const store = new Store({ limits: { quotaBytes: 0 } });
let index = 0;
let time = 1_700_000_000_000;
const before = memory();

// ---- puts into fresh keys
{
  const start = performance.now();
  for (let i = 0; i < keyCount; i++) {
    store.apply(++index, { type: 'put', timeMs: time, key: keys[i]!, value: values[i & 15]! });
    if ((i & 1023) === 0) time++;
  }
  const ms = performance.now() - start;
  row(
    `put, ${keyCount.toLocaleString('en-US')} new keys`,
    rate(keyCount, ms),
    `(${(ms / 1000).toFixed(2)} s)`,
  );
}

const after = memory();
const heapPerKey = (after.heap - before.heap) / keyCount;
const totalPerKey = (after.heap + after.external - before.heap - before.external) / keyCount;
row(
  'heap bytes/key',
  heapPerKey.toFixed(0),
  `(heap+external ${totalPerKey.toFixed(0)}; key ~40 B, value ${VALUE_BYTES} B)`,
);

// ---- point gets
{
  const random = prng(1);
  const count = Math.min(keyCount, 1_000_000);
  const picks = Array.from({ length: count }, () => keys[Math.floor(random() * keyCount)]!);
  const start = performance.now();
  let found = 0;
  for (const key of picks) if (store.get(key) !== null) found++;
  const ms = performance.now() - start;
  if (found !== count) throw new Error('missing keys');
  row('point get', rate(count, ms));
}

// ---- 1k-key range reads
{
  const random = prng(2);
  const count = 2000;
  // Keys i and i + 100k share a namespace prefix with exactly 1000 keys between them.
  const span = 100 * 1000;
  const starts = Array.from({ length: count }, () => Math.floor(random() * (keyCount - span)));
  const start = performance.now();
  let returned = 0;
  for (const i of starts) {
    const result = store.range({ key: keys[i]!, rangeEnd: keys[i + span]! });
    returned += result.kvs.length;
  }
  if (returned !== count * 1000) throw new Error(`range returned ${returned}`);
  const ms = performance.now() - start;
  row('range read, limit 1000', rate(count, ms), `(${rate(returned, ms)} keys)`);
}

// ---- puts overwriting existing keys (history grows)
{
  const count = Math.min(keyCount, 500_000);
  const random = prng(3);
  const picks = Array.from({ length: count }, () => keys[Math.floor(random() * keyCount)]!);
  const start = performance.now();
  for (let i = 0; i < count; i++) {
    store.apply(++index, { type: 'put', timeMs: time, key: picks[i]!, value: values[i & 15]! });
  }
  const ms = performance.now() - start;
  row('put, overwrite existing key', rate(count, ms));
}

// ---- decode + apply (what the server's apply loop does with entry bytes)
{
  const count = 200_000;
  const encoded: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const command: Command = { type: 'put', timeMs: time, key: keys[i % keyCount]!, value: values[i & 15]! };
    encoded.push(encodeCommand(command));
  }
  const start = performance.now();
  for (const bytes of encoded) store.apply(++index, decodeCommand(bytes));
  const ms = performance.now() - start;
  row('decode + put', rate(count, ms));
}

// ---- compaction of all history so far
{
  const start = performance.now();
  store.apply(++index, { type: 'compact', timeMs: time, revision: store.revision });
  row('compact all history', `${(performance.now() - start).toFixed(0)} ms`);
}

// ---- watch fan-out: 1k watchers on one prefix, every put delivered to each
{
  const watchers = Array.from({ length: 1000 }, () =>
    store.watch({ key: Buffer.from('/fanout/'), rangeEnd: Buffer.from('/fanout0') }),
  );
  const puts = 2000;
  let delivered = 0;
  const start = performance.now();
  for (let i = 0; i < puts; i++) {
    store.apply(++index, {
      type: 'put',
      timeMs: time,
      key: Buffer.from(`/fanout/${i & 63}`),
      value: values[0]!,
    });
    if ((i & 15) === 15) for (const watcher of watchers) delivered += watcher.take().events.length;
  }
  for (const watcher of watchers) delivered += watcher.take().events.length;
  const ms = performance.now() - start;
  if (delivered !== puts * watchers.length) throw new Error(`delivered ${delivered}`);
  row('watch fan-out, 1k watchers', rate(delivered, ms), `(events delivered, ${puts} puts)`);
  for (const watcher of watchers) watcher.cancel();
}

// ---- snapshot
{
  const start = performance.now();
  const bytes = snapshot(store);
  const ms = performance.now() - start;
  row('snapshot', `${(bytes.length / 1024 / 1024).toFixed(0)} MiB in ${ms.toFixed(0)} ms`);
}

const width = Math.max(...rows.map((r) => r[0].length));
console.log(
  `\nstore benchmark (node ${process.version}, ${keyCount.toLocaleString('en-US')} keys, ${VALUE_BYTES} B values)`,
);
for (const [name, value, note] of rows) console.log(`${name.padEnd(width)}  ${value.padStart(14)}  ${note}`);
