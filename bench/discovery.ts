/**
 * npm run bench:discovery [-- --quick] [--mode agent,client,catalog] [--services 1000] [--clients 10]
 *   [--per-service 10] [--nodes N] [--period-s 10] [--warmup-s 5] [--steady-s 60] [--dns-s 10]
 *   [--dns-in-flight 64] [--trials 10] [--poll-ms 5] [--max-in-flight 256] [--changing-output]
 *
 * Service discovery on a 3-server Conclave cluster (real processes on loopback), issue #8's
 * benchmark: 1k services × 10 instances with TTL checks updated every 10 s; CPU and RSS of the
 * servers in steady state; DNS queries/s for one name; the time from a check failing to the
 * instance leaving DNS and a blocking ?passing health query. Run once per registration mode
 * (bench/discovery/workload.ts explains `agent`, `client` and `catalog`), each on a fresh cluster.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { lifecycle, type Server, startClients, startServers } from './discovery/cluster.js';
import { leaderOf, type WriteCounters, writeCounters } from './discovery/counters.js';
import { disappearanceTrials, type FailedTrial, type Trial } from './discovery/disappearance.js';
import { type DnsLoadResult, dnsLoad, encodeQuery } from './discovery/dns.js';
import { closeSockets } from './discovery/http.js';
import { median, type ProcessUsage, UsageWindow } from './discovery/stats.js';
import {
  latencySummary,
  layout,
  type Mode,
  passingInCatalog,
  registerAll,
  serviceName,
  TTL,
  type UpdateCounters,
  UpdateLoad,
} from './discovery/workload.js';
import { Processes } from './etcd/clusters.js';

const args = process.argv.slice(2);
const QUICK = args.includes('--quick');
const KNOWN = new Set([
  'quick',
  'mode',
  'services',
  'per-service',
  'nodes',
  'period-s',
  'warmup-s',
  'steady-s',
  'dns-s',
  'dns-in-flight',
  'trials',
  'poll-ms',
  'max-in-flight',
  'changing-output',
  'clients',
]);
for (const a of args)
  if (a.startsWith('--') && !KNOWN.has(a.slice(2)))
    throw new Error(`unknown option ${a} (see the top of bench/discovery.ts)`);

function numberOption(name: string, fallback: number, quickFallback = fallback): number {
  const i = args.indexOf(`--${name}`);
  if (i < 0) return QUICK ? quickFallback : fallback;
  const value = Number(args[i + 1]);
  if (!(Number.isFinite(value) && value >= 0))
    throw new Error(
      `Cannot run as '--${name}' must be a non-negative number: current value is ${args[i + 1]}`,
    );
  return value;
}

const ALL_MODES: readonly Mode[] = ['agent', 'client', 'catalog'];
const modeArg = args.includes('--mode') ? (args[args.indexOf('--mode') + 1] ?? '') : ALL_MODES.join(',');
const MODES = modeArg.split(',') as Mode[];
if (!MODES.every((m) => ALL_MODES.includes(m)))
  throw new Error(`Cannot run as '--mode' must list agent, client or catalog: current value is ${modeArg}`);
const SERVICES = numberOption('services', 1000, 100);
const PER_SERVICE = numberOption('per-service', 10);
const NODES = numberOption('nodes', SERVICES, SERVICES);
const CLIENTS = numberOption('clients', 10, 3);
const PERIOD_S = numberOption('period-s', 10);
const WARMUP_S = numberOption('warmup-s', 5, 3);
const STEADY_S = numberOption('steady-s', 60, 15);
const DNS_S = numberOption('dns-s', 10, 5);
const DNS_IN_FLIGHT = numberOption('dns-in-flight', 64);
const TRIALS = numberOption('trials', 10, 3);
const POLL_MS = numberOption('poll-ms', 5);
const MAX_IN_FLIGHT = numberOption('max-in-flight', 256);
const CHANGING_OUTPUT = args.includes('--changing-output');
const CONVERGE_TIMEOUT_MS = 10 * 60_000;

/** The service whose name the DNS load asks for, and the one whose instances fail in trials. */
const DNS_SERVICE = serviceName(0);
const TRIAL_SERVICE = serviceName(Math.min(1, SERVICES - 1));

const procsInUse = new Set<Processes>();
process.on('exit', () => {
  for (const p of procsInUse) p.killAllSync();
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    lifecycle.stopping = true;
    for (const p of procsInUse) p.killAllSync();
    process.exit(130);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (line: string) => process.stderr.write(`${line}\n`);

interface RoleUsage {
  role: string;
  name: string;
  usage: ProcessUsage;
}

interface ModeResult {
  mode: Mode;
  instances: number;
  registerS: number;
  convergeS: number;
  steadyS: number;
  updates: UpdateCounters;
  updatesPerS: number;
  firstUpdateError: string | null;
  raftPerS: number;
  revisionsPerS: number;
  steady: RoleUsage[];
  clients: number;
  /** All client agents together, % of one core; and one client's mean RSS. */
  clientCpuPercent: number;
  clientRssMiBMean: number;
  generatorSteadyPercent: number;
  dnsTarget: string;
  dnsPlain: DnsLoadResult;
  dnsEdns: DnsLoadResult;
  dnsServerPercent: number;
  /** Check updates while the DNS load ran: a server busy answering DNS serves them late. */
  updatesDuringDns: UpdateCounters;
  /** Instances passing in the catalog right after the DNS load, and seconds until all were again. */
  passingAfterDns: number;
  resettleS: number;
  trials: Trial[];
  failedTrials: FailedTrial[];
  rssEnd: RoleUsage[];
}

/** Waits until the catalog has every instance passing; returns the seconds it took. */
async function allPassing(servers: readonly Server[], instances: number): Promise<number> {
  const began = performance.now();
  for (;;) {
    const passing = await passingInCatalog(servers[0]!).catch(() => 0);
    if (passing >= instances) return (performance.now() - began) / 1000;
    if (performance.now() - began > CONVERGE_TIMEOUT_MS)
      throw new Error(`only ${passing} of ${instances} instances passing after ${CONVERGE_TIMEOUT_MS} ms`);
    await sleep(1000);
  }
}

async function runMode(mode: Mode): Promise<ModeResult> {
  const procs = new Processes();
  procsInUse.add(procs);
  const root = mkdtempSync(join(tmpdir(), 'conclave-discovery-'));
  try {
    log(`[${mode}] starting 3 servers`);
    const servers = await startServers(procs, root);
    let clients: Server[] = [];
    if (mode === 'client') {
      log(`[${mode}] starting ${CLIENTS} client agents`);
      clients = await startClients(procs, root, servers, CLIENTS);
    }
    const targets = mode === 'client' ? clients : servers;
    const instances = layout({ mode, services: SERVICES, perService: PER_SERVICE, nodes: NODES, targets });
    const began = performance.now();
    log(`[${mode}] registering ${instances.length} instances`);
    // Updates start with registration, each instance joining once registered, so a registration
    // longer than the TTL does not let the first instances' checks expire.
    const load = new UpdateLoad(mode, targets, instances, {
      periodMs: PERIOD_S * 1000,
      maxInFlight: MAX_IN_FLIGHT,
      changingOutput: CHANGING_OUTPUT,
    });
    try {
      for (const instance of instances) load.hold(instance);
      await registerAll(mode, targets, instances, (instance) => load.release(instance));
      const registerS = (performance.now() - began) / 1000;
      log(`[${mode}] registered in ${registerS.toFixed(1)} s; waiting for the catalog to show them passing`);
      const convergeS = registerS + (await allPassing(servers, instances.length));
      log(
        `[${mode}] all passing after ${convergeS.toFixed(1)} s; warm-up ${WARMUP_S} s, then ${STEADY_S} s steady`,
      );
      await sleep(WARMUP_S * 1000);

      const leader = await leaderOf(servers);
      if (!leader) throw new Error('no leader');
      const followers = servers.filter((s) => s !== leader);
      const roles = [
        { role: 'leader', server: leader },
        { role: 'follower (DNS target)', server: followers[0]! },
        { role: 'follower', server: followers[1]! },
      ];
      const pids = roles.map((r) => r.server.pid);
      const rolesWith = (usages: ProcessUsage[]): RoleUsage[] =>
        roles.map((r, i) => ({ role: r.role, name: r.server.name, usage: usages[i]! }));

      load.take();
      const before: WriteCounters = await writeCounters(leader);
      const steadyWindow = new UsageWindow(pids);
      const clientWindow = new UsageWindow(clients.map((c) => c.pid));
      await sleep(STEADY_S * 1000);
      const steadyUsage = steadyWindow.end();
      const clientUsage = clientWindow.end().processes;
      const after = await writeCounters(leader);
      const updates = load.take();

      const dnsTarget = followers[0]!;
      const name = `${DNS_SERVICE}.service.consul`;
      log(`[${mode}] DNS load: A ${name} on ${dnsTarget.name}, ${DNS_IN_FLIGHT} in flight, ${DNS_S} s twice`);
      const dnsWindow = new UsageWindow([dnsTarget.pid]);
      const dnsPlain = await dnsLoad(dnsTarget.dnsPort, encodeQuery(name, 'A'), {
        seconds: DNS_S,
        inFlight: DNS_IN_FLIGHT,
      });
      const dnsServerPercent = dnsWindow.end().processes[0]!.cpuPercent;
      const dnsEdns = await dnsLoad(dnsTarget.dnsPort, encodeQuery(name, 'A', 4096), {
        seconds: DNS_S,
        inFlight: DNS_IN_FLIGHT,
      });

      const updatesDuringDns = load.take();
      const passingAfterDns = await passingInCatalog(leader);
      const resettleS = await allPassing(servers, instances.length);
      log(`[${mode}] ${TRIALS} failure trials on ${TRIAL_SERVICE}`);
      const { trials, failed: failedTrials } = await disappearanceTrials(
        mode,
        { servers, targets },
        instances.filter((i) => i.service === TRIAL_SERVICE),
        load,
        { trials: TRIALS, pollMs: POLL_MS },
      );
      const endWindow = new UsageWindow(pids);
      const rssEnd = rolesWith(endWindow.end().processes);
      return {
        mode,
        instances: instances.length,
        registerS,
        convergeS,
        steadyS: steadyUsage.seconds,
        updates,
        updatesPerS: updates.ok / steadyUsage.seconds,
        firstUpdateError: load.firstError,
        raftPerS: (after.commitIndex - before.commitIndex) / steadyUsage.seconds,
        revisionsPerS: (after.revision - before.revision) / steadyUsage.seconds,
        steady: rolesWith(steadyUsage.processes),
        clients: clientUsage.length,
        clientCpuPercent: clientUsage.reduce((a, c) => a + c.cpuPercent, 0),
        clientRssMiBMean: clientUsage.reduce((a, c) => a + c.rssMiBMean, 0) / Math.max(1, clientUsage.length),
        generatorSteadyPercent: steadyUsage.generatorCpuPercent,
        dnsTarget: dnsTarget.name,
        dnsPlain,
        dnsEdns,
        dnsServerPercent,
        updatesDuringDns,
        passingAfterDns,
        resettleS,
        trials,
        failedTrials,
        rssEnd,
      };
    } finally {
      await load.stop();
    }
  } finally {
    lifecycle.stopping = true;
    await procs.stopAll();
    lifecycle.stopping = false;
    procsInUse.delete(procs);
    closeSockets();
    rmSync(root, { recursive: true, force: true });
  }
}

// ---- report

const f0 = (n: number) => (Number.isFinite(n) ? n.toFixed(0) : '-');
const f1 = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : '-');
const maxOf = (xs: number[]) => (xs.length === 0 ? Number.NaN : Math.max(...xs));

function table(results: ModeResult[]): string {
  const rows: [string, (r: ModeResult) => string][] = [
    ['instances (services × per service)', (r) => `${r.instances} (${SERVICES} × ${PER_SERVICE})`],
    ['register all, s (HTTP, 32 at a time)', (r) => f1(r.registerS)],
    ['... until all passing in the catalog, s', (r) => f1(r.convergeS)],
    ['steady window, s', (r) => f1(r.steadyS)],
    ['check updates/s acknowledged (target)', (r) => `${f0(r.updatesPerS)} (${f0(r.instances / PERIOD_S)})`],
    [
      'check update p50 / p99, ms',
      (r) =>
        `${f1(latencySummary(r.updates.latenciesMs).p50Ms)} / ${f1(latencySummary(r.updates.latenciesMs).p99Ms)}`,
    ],
    ['check updates failed / behind at end', (r) => `${r.updates.failed} / ${r.updates.behind}`],
    ['Raft entries committed/s', (r) => f1(r.raftPerS)],
    ['store revisions/s (state changes)', (r) => f1(r.revisionsPerS)],
  ];
  for (let i = 0; i < 3; i++) {
    rows.push([
      `CPU % of a core: ${results[0]?.steady[i]?.role}`,
      (r) => `${f0(r.steady[i]!.usage.cpuPercent)} (${r.steady[i]!.name})`,
    ]);
  }
  rows.push(
    ['CPU %: 3 servers together', (r) => f0(r.steady.reduce((a, s) => a + s.usage.cpuPercent, 0))],
    [
      'CPU %: client agents together; RSS MiB each',
      (r) => (r.clients === 0 ? '-' : `${f0(r.clientCpuPercent)} (${r.clients}); ${f0(r.clientRssMiBMean)}`),
    ],
  );
  for (let i = 0; i < 3; i++) {
    rows.push([
      `RSS MiB mean / max: ${results[0]?.steady[i]?.role}`,
      (r) => `${f0(r.steady[i]!.usage.rssMiBMean)} / ${f0(r.steady[i]!.usage.rssMiBMax)}`,
    ]);
  }
  rows.push(
    [
      'RSS MiB after the trials (leader, f1, f2)',
      (r) => r.rssEnd.map((s) => f0(s.usage.rssMiBMean)).join(', '),
    ],
    ['generator CPU % (steady window)', (r) => f0(r.generatorSteadyPercent)],
    [`DNS A ${DNS_SERVICE} answers/s, no EDNS0`, (r) => f0(r.dnsPlain.answersPerS)],
    [
      '... p50 / p99 ms; records per answer',
      (r) => `${f1(r.dnsPlain.p50Ms)} / ${f1(r.dnsPlain.p99Ms)}; ${r.dnsPlain.recordsPerAnswer}`,
    ],
    [
      '... lost (of them late) / errors / empty; served/s',
      (r) =>
        `${r.dnsPlain.lost} (${r.dnsPlain.late}) / ${r.dnsPlain.errors} / ${r.dnsPlain.empty}; ${f0(r.dnsPlain.servedPerS)}`,
    ],
    [
      '... DNS server CPU %; generator CPU %',
      (r) => `${f0(r.dnsServerPercent)}; ${f0((r.dnsPlain.generatorCpuS / r.dnsPlain.seconds) * 100)}`,
    ],
    [
      'check updates during both DNS loads: p99 ms / failed',
      (r) => `${f1(latencySummary(r.updatesDuringDns.latenciesMs).p99Ms)} / ${r.updatesDuringDns.failed}`,
    ],
    ['passing in catalog after DNS load; s until all', (r) => `${r.passingAfterDns}; ${f1(r.resettleS)}`],
    [`DNS A ${DNS_SERVICE} answers/s, EDNS0 4096`, (r) => f0(r.dnsEdns.answersPerS)],
    [
      '... p50 / p99 ms; records per answer',
      (r) => `${f1(r.dnsEdns.p50Ms)} / ${f1(r.dnsEdns.p99Ms)}; ${r.dnsEdns.recordsPerAnswer}`,
    ],
    [
      '... lost (of them late) / errors / empty; served/s',
      (r) =>
        `${r.dnsEdns.lost} (${r.dnsEdns.late}) / ${r.dnsEdns.errors} / ${r.dnsEdns.empty}; ${f0(r.dnsEdns.servedPerS)}`,
    ],
    [
      'fail → gone from DNS, ms median / max',
      (r) =>
        `${f1(median(r.trials.map((t) => t.dnsGoneMs)))} / ${f1(maxOf(r.trials.map((t) => t.dnsGoneMs)))}`,
    ],
    [
      'fail → blocking ?passing returns without it, ms',
      (r) =>
        `${f1(median(r.trials.map((t) => t.blockingGoneMs)))} / ${f1(maxOf(r.trials.map((t) => t.blockingGoneMs)))}`,
    ],
    [
      'fail request itself, ms median / max',
      (r) =>
        `${f1(median(r.trials.map((t) => t.failRequestMs)))} / ${f1(maxOf(r.trials.map((t) => t.failRequestMs)))}`,
    ],
    [
      'pass → back in DNS, ms median / max',
      (r) =>
        `${f1(median(r.trials.map((t) => t.dnsBackMs)))} / ${f1(maxOf(r.trials.map((t) => t.dnsBackMs)))}`,
    ],
    ['trials done / failed', (r) => `${r.trials.length} / ${r.failedTrials.length}`],
  );
  const header = ['measure', ...results.map((r) => `${r.mode} mode`)];
  const body = rows.map(([label, cell]) => [label, ...results.map(cell)]);
  const widths = header.map((_, c) => Math.max(...[header, ...body].map((row) => row[c]!.length)));
  const line = (row: string[]) => `| ${row.map((cell, c) => cell.padEnd(widths[c]!)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...body.map(line)].join('\n');
}

function method(): string {
  return `Method
- 3 Conclave servers (bin/conclave.mjs agent -server, -bootstrap-expect 3, -retry-join, default
  raft tick and fsync), real processes on loopback; a fresh cluster per mode.
- ${SERVICES} services × ${PER_SERVICE} instances, each with one TTL check (TTL ${TTL}), every
  check updated once per ${PERIOD_S} s, evenly spread (${f0((SERVICES * PER_SERVICE) / PERIOD_S)}/s),
  at most ${MAX_IN_FLIGHT} requests outstanding; output ${CHANGING_OUTPUT ? 'changes on every update' : 'unchanged (empty)'}.
- agent mode: services registered on the server agents' own agent API, 1/3 of the instances
  on each (in Consul, thousands of client agents would each hold a few); updates are
  PUT /v1/agent/check/pass; anti-entropy writes only status changes at once (output-only changes at most every 5 min), so a pass on a passing check writes nothing.
- client mode: the same agent API on ${CLIENTS} client agents (no -server), instances spread over
  them; their anti-entropy writes through a server's HTTP API; failures are watched on a server.
- catalog mode: instances on ${NODES} synthetic nodes via PUT /v1/catalog/register, and every
  update is a catalog register with Status passing: one Raft write per update, an upper bound
  for client agents' anti-entropy traffic.
- CPU: utime+stime deltas from /proc/PID/stat over the window, in % of one core; RSS: VmRSS
  sampled every second. Raft entries/s from /v1/agent/self commit_index on the leader; store
  revisions/s (state-changing commands) from the etcd API's header revision.
- DNS: UDP A queries for ${DNS_SERVICE}.service.consul to one follower, ${DNS_IN_FLIGHT} in flight
  for ${DNS_S} s, without EDNS0 (udp_answer_limit: 3 records) and with a 4096-byte EDNS0 buffer
  (every healthy instance); the check updates keep running. An answer after 2 s counts as lost
  (and as late if it came at all); served/s counts every answer.
- Failure: for ${TRIALS} trials, one ${TRIAL_SERVICE} instance's check is failed through the server
  holding it (agent: PUT /v1/agent/check/fail; catalog: register with Status critical) while
  another server is watched: an EDNS0 A query every ${POLL_MS} ms, and a blocking
  /v1/health/service/${TRIAL_SERVICE}?passing&index=N&wait=30s parked before the failure. Times
  run from just before the fail request; then the check passes again and DNS is polled until
  the instance is back.
- Machine: ${cpus().length} cores shared with other work; the load generator runs on the same
  cores. Absolute numbers are noisy; compare the modes, and look at the generator's own CPU
  before reading a server's number as its limit.`;
}

const loadAtStart = loadavg();
const results: ModeResult[] = [];
for (const mode of MODES) results.push(await runMode(mode));
console.log(`\nbench:discovery${QUICK ? ' (quick)' : ''}: ${new Date().toISOString()}\n`);
console.log(table(results));
console.log('');
for (const r of results) {
  console.log(
    `${r.mode} mode trials (ms): fail→DNS gone, fail→blocking returned [spurious wakeups], pass→DNS back`,
  );
  for (const t of r.trials)
    console.log(
      `  ${t.instance} on ${t.owner}, watched on ${t.observer}: ${f1(t.dnsGoneMs)}, ${f1(t.blockingGoneMs)} [${t.blockingWakeups}], ${f1(t.dnsBackMs)}`,
    );
  for (const f of r.failedTrials) console.log(`  FAILED ${f.instance}: ${f.error}\n    ${f.state}`);
  if (r.firstUpdateError) console.log(`  first check update error: ${r.firstUpdateError}`);
}
console.log(`\n${method()}`);
console.log(
  `  Load average at start ${loadAtStart.map((x) => x.toFixed(1)).join(' ')}, at end ${loadavg()
    .map((x) => x.toFixed(1))
    .join(' ')}.`,
);
