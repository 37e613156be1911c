import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { ServiceInstance } from '../../src/client/instance.js';
import { LeastRequestsPicker } from '../../src/client/least-requests.js';
import { LoadBalancer } from '../../src/client/load-balancer.js';
import { seededRandom } from '../../src/client/random.js';
import { ServiceWatcher } from '../../src/client/service-watcher.js';
import { WeightedRandomPicker } from '../../src/client/weighted-random.js';
import { type DevAgent, startDevAgent } from '../interop/dev-agent.js';
import { until } from './fake-consul.js';

// The SDK against a real dev agent in its own process, over HTTP only: instances registered with
// PUT /v1/catalog/register are discovered, and check changes and deregistrations reach the
// watcher through blocking queries.

let agent: DevAgent | null = null;
let base = '';

before(async () => {
  agent = await startDevAgent();
  base = agent.base;
});

after(() => {
  agent?.stop();
});

async function put(path: string, body: unknown): Promise<void> {
  const res = await fetch(`${base}${path}`, { method: 'PUT', body: JSON.stringify(body) });
  assert.equal(res.status, 200, await res.text());
}

function register(
  node: string,
  port: number,
  status: 'passing' | 'warning' | 'critical',
  weights = { Passing: 1, Warning: 1 },
): Promise<void> {
  return put('/v1/catalog/register', {
    Node: node,
    Address: `10.0.1.${port % 250}`,
    Service: { ID: `api-${port}`, Service: 'api', Port: port, Tags: ['v1'], Weights: weights },
    Checks: [{ CheckID: `api-${port}-alive`, Name: 'alive', Status: status, ServiceID: `api-${port}` }],
  });
}

const ports = (instances: readonly ServiceInstance[]) => instances.map((i) => i.port).sort();

test('a watcher follows registrations, check changes and deregistrations', { timeout: 60_000 }, async () => {
  await register('n1', 9001, 'passing');
  await register('n2', 9002, 'passing');
  const watcher = new ServiceWatcher({ agent: base, service: 'api', tag: 'v1', waitMs: 30_000 });
  const changes: (readonly ServiceInstance[])[] = [];
  watcher.on('change', (i) => changes.push(i));
  try {
    watcher.start();
    const first = await watcher.ready();
    assert.deepEqual(ports(first), [9001, 9002]);
    // Node.Address stands in for the empty Service.Address.
    assert.equal(first.find((i) => i.port === 9001)?.address, '10.0.1.1');

    await register('n3', 9003, 'passing');
    await until(() => ports(watcher.instances).length === 3, 'the new instance');
    await register('n1', 9001, 'critical');
    await until(() => !ports(watcher.instances).includes(9001), 'the failing instance to leave');
    await put('/v1/catalog/deregister', { Node: 'n2', ServiceID: 'api-9002' });
    await until(() => ports(watcher.instances).join() === '9003', 'the deregistration');
    assert.ok(watcher.consecutiveFailures === 0);
    // Each emitted set differs from the one before it.
    for (let i = 1; i < changes.length; i++) assert.notDeepEqual(changes[i], changes[i - 1]);
  } finally {
    await watcher.stop();
  }
});

test('load balancers over the agent: weights with warnings, least requests', {
  timeout: 60_000,
}, async () => {
  await register('w1', 9101, 'passing', { Passing: 3, Warning: 1 });
  await register('w2', 9102, 'warning', { Passing: 3, Warning: 1 });
  const weighted = LoadBalancer.forService({
    agent: base,
    service: 'api',
    passingOnly: false,
    picker: new WeightedRandomPicker({ random: seededRandom(5) }),
  });
  const least = LoadBalancer.forService({
    agent: base,
    service: 'api',
    picker: new LeastRequestsPicker({ random: seededRandom(6) }),
  });
  try {
    await Promise.all([weighted.ready(), least.ready()]);
    const w2 = weighted.watcher?.instances.find((i) => i.port === 9102);
    assert.deepEqual([w2?.health, w2?.weight], ['warning', 1]);
    assert.ok(!least.watcher?.instances.some((i) => i.port === 9102), '?passing drops the warning one');

    // Hold one request per passing instance; the next goes to one of them, never twice in a row
    // to the same while the others are free.
    const count = least.watcher!.instances.length;
    const releases: (() => void)[] = [];
    const seen = new Set<number>();
    const pending = Array.from({ length: count }, () =>
      least.run(
        (i) =>
          new Promise<void>((done) => {
            seen.add(i.port);
            releases.push(done);
          }),
      ),
    );
    assert.equal(seen.size, count, 'each instance got one of the held requests');
    for (const release of releases) release();
    await Promise.all(pending);
  } finally {
    await weighted.close();
    await least.close();
  }
});
