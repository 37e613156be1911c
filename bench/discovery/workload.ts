import type { Server } from './cluster.js';
import { call, ok } from './http.js';
import { percentile } from './stats.js';

/**
 * The services, their instances, and three ways of putting them into Conclave:
 *
 * - `agent`: each instance is a service with a TTL check registered on a server agent's own
 *   agent API, the 10 instances of a service spread over the 3 servers; TTL passes go to that
 *   agent (PUT /v1/agent/check/pass/service:<id>), and anti-entropy carries status changes into
 *   the catalog. 3 agents hold ~1/3 of all instances each; in Consul each host's client agent
 *   would hold a few.
 * - `client`: the same through client agents (no -server), the instances spread over them; their
 *   anti-entropy reaches the catalog through a server's HTTP API.
 * - `catalog`: instances on synthetic nodes (what client agents would be), written with
 *   PUT /v1/catalog/register, and every TTL pass becomes a catalog register carrying the check's
 *   status: a Raft write per pass, the upper bound of what client agents' anti-entropy sends
 *   (Consul's agents send only status changes at once, output-only changes at most every 5 min).
 */

export type Mode = 'agent' | 'catalog' | 'client';

export const TTL = '30s';
const CHECK_NAME = 'Service TTL check';
const CHECK_TYPE = 'ttl';
const REGISTER_CONCURRENCY = 32;

export interface Instance {
  index: number;
  service: string;
  id: string;
  checkId: string;
  /** The service's address: A records carry it, so each instance is told apart in DNS. */
  address: string;
  port: number;
  /** The catalog node it lives on: the owning server's name, or a synthetic node. */
  node: string;
  nodeAddress: string;
  /** Which of the `targets` (servers, or client agents) takes its registration and updates. */
  owner: number;
}

export interface LayoutOptions {
  mode: Mode;
  services: number;
  perService: number;
  /** Synthetic nodes in catalog mode (each holds instances of different services). */
  nodes: number;
  /** The agents whose HTTP APIs take registrations and updates. */
  targets: readonly Server[];
}

const pad = (n: number, width: number) => String(n).padStart(width, '0');
const ipv4 = (prefix: number, n: number) => `${prefix}.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;

export function serviceName(s: number): string {
  return `svc-${pad(s, 4)}`;
}

export function layout(options: LayoutOptions): Instance[] {
  const { mode, services, perService, nodes, targets } = options;
  const local = mode !== 'catalog';
  if (!(perService >= 1 && perService <= nodes))
    throw new Error(
      `Cannot lay out as 'perService' must be 1..nodes (${nodes}): current value is ${perService}`,
    );
  const instances: Instance[] = [];
  for (let s = 0; s < services; s++) {
    for (let j = 0; j < perService; j++) {
      const index = s * perService + j;
      const owner = index % targets.length;
      // Instance j of service s on node (s*perService + j) mod nodes: a service's instances on
      // distinct nodes, each node with instances of different services.
      const nodeIndex = (s * perService + j) % nodes;
      const id = `${serviceName(s)}-${j}`;
      instances.push({
        index,
        service: serviceName(s),
        id,
        checkId: `service:${id}`,
        address: ipv4(10, index),
        port: 8000 + j,
        node: local ? targets[owner]!.name : `node-${pad(nodeIndex, 5)}`,
        nodeAddress: local ? '127.0.0.1' : ipv4(11, nodeIndex),
        owner: local ? owner : nodeIndex % targets.length,
      });
    }
  }
  return instances;
}

export type CheckStatus = 'passing' | 'critical';

/** The request that sets an instance's check status, in the given mode. */
function statusRequest(
  mode: Mode,
  instance: Instance,
  status: CheckStatus,
  output: string,
): { method: string; path: string; body?: string } {
  if (mode !== 'catalog') {
    const verb = status === 'passing' ? 'pass' : 'fail';
    const note = output === '' ? '' : `?note=${encodeURIComponent(output)}`;
    return { method: 'PUT', path: `/v1/agent/check/${verb}/${encodeURIComponent(instance.checkId)}${note}` };
  }
  return {
    method: 'PUT',
    path: '/v1/catalog/register',
    body: JSON.stringify({
      Node: instance.node,
      Address: instance.nodeAddress,
      Check: {
        CheckID: instance.checkId,
        Name: CHECK_NAME,
        Type: CHECK_TYPE,
        ServiceID: instance.id,
        Status: status,
        Output: output,
      },
    }),
  };
}

export async function setStatus(
  mode: Mode,
  targets: readonly Server[],
  instance: Instance,
  status: CheckStatus,
  output = '',
): Promise<void> {
  const r = statusRequest(mode, instance, status, output);
  await ok(targets[instance.owner]!.httpPort, r.method, r.path, r.body);
}

/** Registers every instance (passing), `REGISTER_CONCURRENCY` requests at a time. */
export async function registerAll(
  mode: Mode,
  targets: readonly Server[],
  instances: readonly Instance[],
  /** Called once an instance is registered (and, on an agent, passed once). */
  registered: (instance: Instance) => void = () => {},
): Promise<void> {
  let next = 0;
  const one = async (instance: Instance) => {
    await registerOne(instance);
    registered(instance);
  };
  const registerOne = async (instance: Instance) => {
    const port = targets[instance.owner]!.httpPort;
    if (mode !== 'catalog') {
      await ok(
        port,
        'PUT',
        '/v1/agent/service/register',
        JSON.stringify({
          Name: instance.service,
          ID: instance.id,
          Address: instance.address,
          Port: instance.port,
          Check: { Name: CHECK_NAME, TTL },
        }),
      );
      // A TTL check starts critical; its first pass makes it healthy.
      await setStatus(mode, targets, instance, 'passing');
      return;
    }
    await ok(
      port,
      'PUT',
      '/v1/catalog/register',
      JSON.stringify({
        Node: instance.node,
        Address: instance.nodeAddress,
        Service: {
          ID: instance.id,
          Service: instance.service,
          Address: instance.address,
          Port: instance.port,
        },
        Check: {
          CheckID: instance.checkId,
          Name: CHECK_NAME,
          Type: CHECK_TYPE,
          ServiceID: instance.id,
          Status: 'passing',
          Output: '',
        },
      }),
    );
  };
  await Promise.all(
    Array.from({ length: REGISTER_CONCURRENCY }, async () => {
      while (next < instances.length) await one(instances[next++]!);
    }),
  );
}

/** Service checks that the catalog (read through `server`) has as passing. */
export async function passingInCatalog(server: Server): Promise<number> {
  const r = await ok(server.httpPort, 'GET', '/v1/health/state/passing?stale');
  const checks = JSON.parse(r.body) as { ServiceID: string }[];
  return checks.filter((c) => c.ServiceID !== '').length;
}

export interface UpdateCounters {
  sent: number;
  ok: number;
  failed: number;
  /** Updates that were due but not yet sent because `maxInFlight` were outstanding. */
  behind: number;
  latenciesMs: number[];
}

const TICK_MS = 10;

/**
 * Every instance's check updated once per `periodMs`, evenly spread: at time t after start,
 * t/periodMs × n updates are due, sent round-robin over the instances, at most `maxInFlight`
 * outstanding. `hold` keeps an instance out (a benchmark that failed it on purpose).
 */
export class UpdateLoad {
  private readonly began = performance.now();
  private readonly timer: NodeJS.Timeout;
  private readonly held = new Set<number>();
  private readonly inFlight = new Set<Promise<void>>();
  private cursor = 0;
  private sequence = 0;
  private counters: UpdateCounters = { sent: 0, ok: 0, failed: 0, behind: 0, latenciesMs: [] };
  /** The first failure's message, for the report. */
  firstError: string | null = null;

  constructor(
    private readonly mode: Mode,
    private readonly targets: readonly Server[],
    private readonly instances: readonly Instance[],
    private readonly options: { periodMs: number; maxInFlight: number; changingOutput: boolean },
  ) {
    if (!(options.periodMs > 0 && options.maxInFlight > 0))
      throw new Error(
        `Cannot run updates with periodMs ${options.periodMs} and maxInFlight ${options.maxInFlight}`,
      );
    this.timer = setInterval(() => this.tick(), TICK_MS);
  }

  hold(instance: Instance): void {
    this.held.add(instance.index);
  }

  release(instance: Instance): void {
    this.held.delete(instance.index);
  }

  /** The counters since the last call (latencies sorted). */
  take(): UpdateCounters {
    const taken = this.counters;
    taken.behind = this.due() - this.cursor;
    taken.latenciesMs.sort((a, b) => a - b);
    this.counters = { sent: 0, ok: 0, failed: 0, behind: 0, latenciesMs: [] };
    return taken;
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await Promise.all(this.inFlight);
  }

  private due(): number {
    return Math.floor(((performance.now() - this.began) / this.options.periodMs) * this.instances.length);
  }

  private tick(): void {
    const due = this.due();
    while (this.cursor < due && this.inFlight.size < this.options.maxInFlight) {
      const instance = this.instances[this.cursor % this.instances.length]!;
      this.cursor++;
      if (this.held.has(instance.index)) continue;
      this.send(instance);
    }
  }

  private send(instance: Instance): void {
    const output = this.options.changingOutput ? `ok ${this.sequence++}` : '';
    const r = statusRequest(this.mode, instance, 'passing', output);
    const sentAt = performance.now();
    this.counters.sent++;
    const counters = this.counters;
    const p: Promise<void> = call(this.targets[instance.owner]!.httpPort, r.method, r.path, r.body)
      .then((reply) => {
        if (reply.status === 200) {
          counters.ok++;
          counters.latenciesMs.push(performance.now() - sentAt);
        } else {
          counters.failed++;
          this.firstError ??= `${r.method} ${r.path}: ${reply.status} ${reply.body.slice(0, 200)}`;
        }
      })
      .catch((err: unknown) => {
        counters.failed++;
        this.firstError ??= String(err);
      })
      .finally(() => this.inFlight.delete(p));
    this.inFlight.add(p);
  }
}

export function latencySummary(sortedMs: readonly number[]): { p50Ms: number; p99Ms: number } {
  return { p50Ms: percentile(sortedMs, 50), p99Ms: percentile(sortedMs, 99) };
}
