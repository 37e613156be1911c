import type { Server } from './cluster.js';
import { DnsClient } from './dns.js';
import { call, consulIndex, ok } from './http.js';
import { type Instance, type Mode, setStatus, type UpdateLoad } from './workload.js';

/**
 * From a check failing to its instance leaving discovery. Each trial fails one instance's check
 * (through the server that owns it) while a second server is watched two ways: DNS A queries
 * for the service every `pollMs` (with EDNS0, so every healthy instance is in the answer), and
 * a blocking `/v1/health/service/NAME?passing&index=N&wait=30s` parked before the failure.
 * Both times run from just before the fail request is sent. The check is then passed again
 * and the time until DNS hands the instance out again is recorded too.
 */

const BLOCK_WAIT = '30s';
const TRIAL_TIMEOUT_MS = 35_000;
/** Time for the blocking query to reach the server and park before the check fails. */
const PARK_MS = 200;
const SETTLE_MS = 500;

export interface Trial {
  instance: string;
  owner: string;
  observer: string;
  failRequestMs: number;
  dnsGoneMs: number;
  blockingGoneMs: number;
  /** Blocking queries that returned with the instance still passing before the one without. */
  blockingWakeups: number;
  dnsBackMs: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function withDeadline<T>(what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, rej) => {
        timer = setTimeout(
          () => rej(new Error(`${what}: not within ${TRIAL_TIMEOUT_MS} ms`)),
          TRIAL_TIMEOUT_MS,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls DNS until `wanted(addresses)`; resolves with the time the deciding answer arrived. */
async function pollDns(
  dns: DnsClient,
  name: string,
  wanted: (addresses: string[]) => boolean,
  pollMs: number,
  deadline: number,
): Promise<number> {
  while (performance.now() < deadline) {
    const addresses = await dns.lookupA(name);
    if (addresses !== null && wanted(addresses)) return performance.now();
    await sleep(pollMs);
  }
  throw new Error(`DNS for ${name} did not change as expected`);
}

const passingIds = (body: string) =>
  (JSON.parse(body) as { Service: { ID: string } }[]).map((e) => e.Service.ID);

/** A trial that did not finish: what was still waited for, and the state seen at the time. */
export interface FailedTrial {
  instance: string;
  error: string;
  state: string;
}

/** Trials that fail are recorded (with the state at the time) and the next one runs. */
export async function disappearanceTrials(
  mode: Mode,
  agents: { servers: readonly Server[]; targets: readonly Server[] },
  instances: readonly Instance[],
  load: UpdateLoad,
  options: { trials: number; pollMs: number },
): Promise<{ trials: Trial[]; failed: FailedTrial[] }> {
  if (instances.length === 0) throw new Error('Cannot run disappearance trials without target instances');
  const { servers, targets } = agents;
  const trials: Trial[] = [];
  const failed: FailedTrial[] = [];
  for (let i = 0; i < options.trials; i++) {
    const instance = instances[i % instances.length]!;
    // A server other than the one taking the write (in client mode, any server: the write
    // reaches the catalog through whichever server the client's anti-entropy picks).
    const observer = servers[(instance.owner + 1) % servers.length]!;
    const dns = new DnsClient(observer.dnsPort);
    const progress: string[] = [];
    try {
      trials.push(await oneTrial(mode, targets, instance, observer, load, dns, options.pollMs, progress));
    } catch (err) {
      failed.push({
        instance: instance.id,
        error: `${String(err)} (done: ${progress.join(', ') || 'nothing'})`,
        state: await describe(mode, agents, instance, observer).catch((e: unknown) => String(e)),
      });
    } finally {
      load.release(instance);
      dns.close();
    }
    await sleep(SETTLE_MS);
  }
  return { trials, failed };
}

async function oneTrial(
  mode: Mode,
  targets: readonly Server[],
  instance: Instance,
  observer: Server,
  load: UpdateLoad,
  dns: DnsClient,
  pollMs: number,
  progress: string[],
): Promise<Trial> {
  const dnsName = `${instance.service}.service.consul`;
  const healthPath = `/v1/health/service/${instance.service}?passing`;
  // Start from a healthy instance, seen by the observer both ways.
  await withDeadline(
    'instance healthy in DNS',
    pollDns(dns, dnsName, (a) => a.includes(instance.address), pollMs, performance.now() + TRIAL_TIMEOUT_MS),
  );
  let before = await ok(observer.httpPort, 'GET', healthPath);
  // DNS answered from an earlier state than the health query may see: wait for the two to agree.
  for (
    const deadline = performance.now() + TRIAL_TIMEOUT_MS;
    !passingIds(before.body).includes(instance.id);
  ) {
    if (performance.now() > deadline)
      throw new Error(`${instance.id} is in DNS but not in ${healthPath} on ${observer.name}`);
    await sleep(pollMs);
    before = await ok(observer.httpPort, 'GET', healthPath);
  }
  progress.push('healthy before');

  let wakeups = 0;
  const blocking = (async () => {
    let index = consulIndex(before);
    for (;;) {
      const r = await call(observer.httpPort, 'GET', `${healthPath}&index=${index}&wait=${BLOCK_WAIT}`);
      if (r.status !== 200) throw new Error(`blocking ${healthPath}: ${r.status} ${r.body.slice(0, 200)}`);
      if (!passingIds(r.body).includes(instance.id)) {
        progress.push('blocking query returned without it');
        return performance.now();
      }
      wakeups++;
      index = consulIndex(r);
    }
  })();
  blocking.catch(() => {}); // awaited below; a failure before then must not go unhandled
  await sleep(PARK_MS);

  load.hold(instance);
  const failedAt = performance.now();
  const dnsGone = pollDns(
    dns,
    dnsName,
    (a) => !a.includes(instance.address),
    pollMs,
    failedAt + TRIAL_TIMEOUT_MS,
  );
  dnsGone.then(() => progress.push('gone from DNS')).catch(() => {});
  await setStatus(mode, targets, instance, 'critical', 'failed by the benchmark');
  const failRequestMs = performance.now() - failedAt;
  progress.push('fail request answered');
  const [dnsAt, blockingAt] = await withDeadline('instance gone', Promise.all([dnsGone, blocking]));

  const passedAt = performance.now();
  await setStatus(mode, targets, instance, 'passing');
  load.release(instance);
  const backAt = await pollDns(
    dns,
    dnsName,
    (a) => a.includes(instance.address),
    pollMs,
    passedAt + TRIAL_TIMEOUT_MS,
  );
  return {
    instance: instance.id,
    owner: targets[instance.owner]!.name,
    observer: observer.name,
    failRequestMs,
    dnsGoneMs: dnsAt - failedAt,
    blockingGoneMs: blockingAt - failedAt,
    blockingWakeups: wakeups,
    dnsBackMs: backAt - passedAt,
  };
}

/** The check's status as its agent and each server's catalog see it, for a failed trial. */
async function describe(
  mode: Mode,
  agents: { servers: readonly Server[]; targets: readonly Server[] },
  instance: Instance,
  observer: Server,
): Promise<string> {
  const { servers, targets } = agents;
  const parts: string[] = [];
  if (mode !== 'catalog') {
    const owner = targets[instance.owner]!;
    const checks = JSON.parse((await ok(owner.httpPort, 'GET', '/v1/agent/checks')).body) as Record<
      string,
      { Status: string }
    >;
    parts.push(`agent ${owner.name}: ${checks[instance.checkId]?.Status ?? 'missing'}`);
  }
  for (const server of servers) {
    const r = await ok(server.httpPort, 'GET', `/v1/health/checks/${instance.service}?stale`);
    const check = (JSON.parse(r.body) as { CheckID: string; Status: string }[]).find(
      (c) => c.CheckID === instance.checkId,
    );
    parts.push(
      `catalog on ${server.name}${server === observer ? ' (observer)' : ''}: ${check?.Status ?? 'missing'} (index ${consulIndex(r)})`,
    );
  }
  return parts.join('; ');
}
