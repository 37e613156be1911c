/**
 * npm run bench:consul [-- --duration 5 --blocking 10000]
 *
 * Consul HTTP API against a 3-server Conclave cluster on loopback: KV put and get throughput
 * with p50/p99 at a few concurrencies, then N idle blocking queries on one key: server RSS and
 * CPU while they wait, and how long until all N have returned after one write.
 */

import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { Cluster } from '../test/cluster/harness.js';

const args = process.argv.slice(2);
const opt = (name: string, fallback: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const DURATION_S = opt('duration', 5);
const BLOCKING = opt('blocking', 10_000);
const VALUE = 'v'.repeat(256);
const KEYSPACE = 10_000;

const agent = new Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY });

function call(
  port: number,
  method: string,
  path: string,
  body?: string,
): Promise<{ status: number; body: string; index: number }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          body: Buffer.concat(chunks).toString(),
          index: Number(res.headers['x-consul-index'] ?? 0),
        }),
      );
    });
    req.on('error', reject);
    req.end(body);
  });
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function load(
  ports: number[],
  concurrency: number,
  op: (port: number, i: number) => Promise<boolean>,
): Promise<{ opsPerS: number; p50: number; p99: number; errors: number }> {
  const latencies: number[] = [];
  let errors = 0;
  let next = 0;
  const end = performance.now() + DURATION_S * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, w) => {
      while (performance.now() < end) {
        const i = next++;
        const began = performance.now();
        const ok = await op(ports[(w + i) % ports.length]!, i).catch(() => false);
        if (ok) latencies.push(performance.now() - began);
        else errors++;
      }
    }),
  );
  latencies.sort((a, b) => a - b);
  return {
    opsPerS: latencies.length / DURATION_S,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    errors,
  };
}

function procStats(pid: number): { rssMiB: number; cpuS: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  const ticks = Number(stat[11]) + Number(stat[12]);
  return { rssMiB: rssKb / 1024, cpuS: ticks / 100 };
}

async function main(): Promise<void> {
  console.log(`starting a 3-server cluster (default raft tick); ${DURATION_S}s per step`);
  const cluster = await Cluster.bootstrap(3, ['-raft-tick-ms', '100']);
  const stop = () => void cluster.close().then(() => process.exit(1));
  process.once('SIGINT', stop);
  try {
    const ports = cluster.agents.map((a) => a.httpPort);
    const rows: string[] = [];
    const row = (name: string, c: number, r: Awaited<ReturnType<typeof load>>) => {
      rows.push(
        `| ${name} | ${c} | ${r.opsPerS.toFixed(0)} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.errors} |`,
      );
      console.log(rows.at(-1));
    };
    console.log(
      '| workload | concurrency | ops/s | p50 ms | p99 ms | errors |\n| --- | --- | --- | --- | --- | --- |',
    );
    for (const c of [1, 16, 64]) {
      row(
        'kv put',
        c,
        await load(ports, c, async (port, i) => {
          const r = await call(port, 'PUT', `/v1/kv/bench/${i % KEYSPACE}`, VALUE);
          return r.status === 200;
        }),
      );
    }
    for (const c of [1, 16, 64]) {
      row(
        'kv get (default)',
        c,
        await load(ports, c, async (port, i) => {
          const r = await call(port, 'GET', `/v1/kv/bench/${i % 1000}`);
          return r.status === 200;
        }),
      );
    }
    for (const c of [1, 64]) {
      row(
        'kv get (stale)',
        c,
        await load(ports, c, async (port, i) => {
          const r = await call(port, 'GET', `/v1/kv/bench/${i % 1000}?stale`);
          return r.status === 200;
        }),
      );
    }

    // Idle blocking queries, all on one server and one key.
    const target = cluster.agents[1]!;
    const pid = target.child!.pid!;
    await call(target.httpPort, 'PUT', '/v1/kv/watched', 'v0');
    const first = await call(target.httpPort, 'GET', '/v1/kv/watched');
    const index = JSON.parse(first.body)[0].ModifyIndex as number;
    const before = procStats(pid);
    let returned = 0;
    let lastReturn = 0;
    let wrote = Number.POSITIVE_INFINITY;
    // A query that returned before the write, or without a newer index, would flatter the figures.
    let early = 0;
    let wrong = 0;
    const waits = Array.from({ length: BLOCKING }, () =>
      call(target.httpPort, 'GET', `/v1/kv/watched?index=${index}&wait=5m`).then((r) => {
        returned++;
        lastReturn = performance.now();
        if (lastReturn < wrote) early++;
        if (r.status !== 200 || !(r.index > index)) wrong++;
      }),
    );
    await new Promise((r) => setTimeout(r, 5000));
    const parked = procStats(pid);
    await new Promise((r) => setTimeout(r, 10_000));
    const idle = procStats(pid);
    const idleCpuPct = ((idle.cpuS - parked.cpuS) / 10) * 100;
    wrote = performance.now();
    await call(cluster.agents[0]!.httpPort, 'PUT', '/v1/kv/watched', 'v1');
    const acknowledged = performance.now();
    await Promise.all(waits);
    console.log(
      `\n${BLOCKING} blocking queries on one server: RSS ${before.rssMiB.toFixed(0)} -> ${idle.rssMiB.toFixed(0)} MiB ` +
        `(+${(((idle.rssMiB - before.rssMiB) * 1024) / BLOCKING).toFixed(1)} KiB each), ` +
        `CPU while idle ${idleCpuPct.toFixed(1)}% of a core, all ${returned} returned ${(lastReturn - wrote).toFixed(0)} ms ` +
        `after the write was sent (${(lastReturn - acknowledged).toFixed(0)} ms after it was acknowledged); ` +
        `${early} returned before the write, ${wrong} without 200 and a newer index`,
    );
  } finally {
    agent.destroy();
    await cluster.close();
  }
}

await main();
