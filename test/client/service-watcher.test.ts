import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import type { ServiceInstance } from '../../src/client/instance.js';
import { seededRandom } from '../../src/client/random.js';
import { ServiceWatcher, type ServiceWatcherOptions } from '../../src/client/service-watcher.js';
import { entry, FakeConsul, until } from './fake-consul.js';

// The watcher against a fake agent that serves blocking queries. Sleeps (rate limit, back-off)
// are injected and recorded, so the tests check the delays asked for without waiting them out.

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Harness {
  consul: FakeConsul;
  watcher: ServiceWatcher;
  changes: (readonly ServiceInstance[])[];
  errors: Error[];
  sleeps: number[];
}

async function harness(
  options: Partial<ServiceWatcherOptions> = {},
  consul = new FakeConsul(),
): Promise<Harness> {
  const base = await consul.start();
  cleanups.push(() => consul.close());
  const sleeps: number[] = [];
  const watcher = new ServiceWatcher({
    agent: base,
    service: 'web',
    rateLimitIntervalMs: 0,
    random: seededRandom(7),
    // Record the delay, then yield a turn of the event loop instead of waiting it out.
    sleep: async (ms) => {
      if (ms > 0) sleeps.push(ms);
      await new Promise((resolve) => setImmediate(resolve));
    },
    ...options,
  });
  cleanups.push(() => watcher.stop());
  const changes: (readonly ServiceInstance[])[] = [];
  const errors: Error[] = [];
  watcher.on('change', (instances) => changes.push(instances));
  watcher.on('error', (error) => errors.push(error));
  return { consul, watcher, changes, errors, sleeps };
}

const ids = (instances: readonly ServiceInstance[]): string[] => instances.map((i) => i.id);

test('first read is non-blocking, then blocks on the returned index with a wait', async () => {
  const consul = new FakeConsul();
  consul.set([entry('b', 'web-2', { address: '10.1.1.2', port: 81 }), entry('a', 'web-1')], 40);
  const { watcher, changes } = await harness(
    { waitMs: 30_000, tag: ['v2', 'blue'], dc: 'dc9', token: 't0k' },
    consul,
  );
  watcher.start();
  const ready = await watcher.ready();
  assert.deepEqual(ids(ready), ['a/web-1', 'b/web-2']);
  await until(() => consul.heldCount === 1, 'a held blocking query');

  const [first, second] = consul.requests;
  assert.equal(first!.path, '/v1/health/service/web');
  assert.equal(first!.index, null, 'the first request starts from index 0');
  assert.equal(first!.wait, null);
  assert.equal(first!.passing, '1');
  assert.deepEqual(first!.tags, ['v2', 'blue']);
  assert.equal(first!.dc, 'dc9');
  assert.equal(first!.token, 't0k');
  assert.equal(second!.index, '40');
  assert.equal(second!.wait, '30000ms');

  assert.equal(changes.length, 1);
  const [a, b] = changes[0]!;
  // Service.Address is empty for a: the node's address stands in, as in Consul.
  assert.deepEqual([a!.address, a!.port, a!.node, a!.serviceId], ['10.0.0.1', 8080, 'a', 'web-1']);
  assert.deepEqual([b!.address, b!.port], ['10.1.1.2', 81]);
});

test('a change wakes the blocked query and emits once; an index bump alone emits nothing', async () => {
  const { consul, watcher, changes } = await harness();
  consul.set([entry('a', 'web-1')], 5);
  watcher.start();
  await until(() => changes.length === 1 && consul.heldCount === 1, 'the first set');

  consul.set([entry('a', 'web-1'), entry('b', 'web-2')], 9);
  await until(() => changes.length === 2, 'the change event');
  assert.deepEqual(ids(changes[1]!), ['a/web-1', 'b/web-2']);
  assert.deepEqual(ids(watcher.instances), ['a/web-1', 'b/web-2']);

  // Same set at a higher index (say a check's output changed): the loop goes on, silently.
  const before = consul.requests.length;
  consul.set([entry('a', 'web-1'), entry('b', 'web-2')], 12);
  await until(() => consul.requests.length > before && consul.heldCount === 1, 'the next blocking query');
  assert.equal(consul.requests.at(-1)!.index, '12');
  assert.equal(changes.length, 2);

  // A failing check removes the instance (the agent filters with ?passing).
  consul.set([entry('a', 'web-1'), entry('b', 'web-2', { checks: ['passing', 'critical'] })], 13);
  await until(() => changes.length === 3, 'the removal');
  assert.deepEqual(ids(changes[2]!), ['a/web-1']);
});

test('an index that goes backwards restarts from 0; an index of 0 or none blocks on 1', async () => {
  const { consul, watcher } = await harness();
  consul.set([entry('a', 'web-1')], 50);
  consul.script.push({ index: '50' }, { index: '20' }, { index: '0' }, { index: null }, { index: '30' });
  watcher.start();
  // After the script the fake holds the query sent at index 50.
  await until(() => consul.requests.length === 7 && consul.heldCount === 1, 'the scripted answers');
  assert.deepEqual(
    consul.requests.map((r) => r.index),
    [null, '50', null, '1', '1', '30', '50'],
    'sent 0, got 50; sent 50, got 20 (backwards): 0; got 0: 1; got none: 1; got 30: 30; got 50: 50',
  );
});

test('rate limit: two queries at once, then one per interval while results churn', async () => {
  // The clock stands still, so the bucket never refills: each further query waits one more interval.
  const { consul, watcher, sleeps } = await harness({
    rateLimitIntervalMs: 1000,
    rateLimitBurst: 2,
    now: () => 0,
  });
  consul.set([entry('a', 'web-1')], 3);
  watcher.start();
  await until(() => consul.heldCount === 1, 'the blocking query');
  assert.deepEqual(sleeps, [], 'the burst: no wait for the first read and the first blocking query');
  consul.set([entry('b', 'web-2')], 4);
  await until(() => consul.heldCount === 1 && consul.requests.length === 3, 'the third query');
  consul.set([entry('c', 'web-3')], 5);
  await until(() => consul.heldCount === 1 && consul.requests.length === 4, 'the fourth query');
  assert.deepEqual(sleeps, [1000, 2000]);
});

test('errors: back-off grows with jitter up to its bound, the last set is kept, index re-read', async () => {
  const { consul, watcher, errors, sleeps, changes } = await harness({
    backoffInitialMs: 100,
    backoffMaxMs: 800,
  });
  consul.set([entry('a', 'web-1')], 7);
  watcher.start();
  await until(() => consul.heldCount === 1, 'the blocking query');

  const failures = 6;
  consul.script.push(
    ...Array.from({ length: failures }, () => ({ status: 500, body: 'rpc error: No cluster leader' })),
  );
  consul.set([entry('a', 'web-1')], 8); // wakes the held query; the following ones fail
  // The woken query gets a 200 at index 8; each following query gets a scripted 500.
  await until(() => errors.length === failures && consul.heldCount === 1, 'failures then recovery');
  assert.equal(watcher.consecutiveFailures, 0);
  assert.deepEqual(ids(watcher.instances), ['a/web-1'], 'the last known set is still served');
  assert.equal(changes.length, 1, 'failures emit no change');
  assert.match(errors[0]!.message, /HTTP 500: rpc error: No cluster leader/);

  // Equal jitter: the n-th delay lies in [c/2, c] for c = min(800, 100 * 2^n).
  assert.equal(sleeps.length, errors.length);
  sleeps.forEach((ms, n) => {
    const ceiling = Math.min(800, 100 * 2 ** n);
    assert.ok(ms >= ceiling / 2 && ms <= ceiling, `delay ${n} = ${ms} outside [${ceiling / 2}, ${ceiling}]`);
  });
  // After a failure the next query is a non-blocking re-read (index 0), then blocking resumes.
  const afterFailure = consul.requests.slice(-2).map((r) => r.index);
  assert.deepEqual(afterFailure, [null, '8']);
});

test('an unreachable agent: errors, and the last set is kept', async () => {
  const consul = new FakeConsul();
  consul.set([entry('a', 'web-1'), entry('b', 'web-2')], 3);
  const { watcher, errors } = await harness({ backoffInitialMs: 10, backoffMaxMs: 20 }, consul);
  watcher.start();
  await until(() => consul.heldCount === 1, 'the blocking query');
  await consul.close();
  await until(() => errors.length >= 3, 'connection errors');
  assert.deepEqual(ids(watcher.instances), ['a/web-1', 'b/web-2']);
  assert.ok(watcher.lastError !== undefined);
});

test('malformed answers are errors that keep the last set', async () => {
  const { consul, watcher, errors, changes } = await harness({ backoffInitialMs: 1, backoffMaxMs: 1 });
  consul.set([entry('a', 'web-1')], 3);
  watcher.start();
  await until(() => consul.heldCount === 1, 'the blocking query');
  consul.script.push({ body: 'not json' }, { body: '{"an":"object"}' }, { body: '[{"Node":{}}]' });
  // Wakes the held query (same set, index 4); the three queries after it get the bad bodies.
  consul.set([entry('a', 'web-1')], 4);
  await until(() => errors.length === 3 && consul.heldCount === 1, 'three malformed answers');
  assert.deepEqual(
    errors.map((e) => e.name),
    ['MalformedResponseError', 'MalformedResponseError', 'MalformedResponseError'],
  );
  assert.deepEqual(ids(watcher.instances), ['a/web-1']);
  assert.equal(changes.length, 1);
});

test('passingOnly false: warning instances listed with their Warning weight, critical dropped', async () => {
  const consul = new FakeConsul();
  consul.set(
    [
      entry('a', 'web-1', { weights: { Passing: 10, Warning: 1 } }),
      entry('b', 'web-2', { weights: { Passing: 10, Warning: 2 }, checks: ['passing', 'warning'] }),
      entry('c', 'web-3', { checks: ['warning', 'critical'] }),
    ],
    3,
  );
  const { watcher } = await harness({ passingOnly: false }, consul);
  watcher.start();
  const instances = await watcher.ready();
  assert.equal(consul.requests[0]!.passing, null);
  assert.deepEqual(
    instances.map((i) => [i.id, i.health, i.weight]),
    [
      ['a/web-1', 'passing', 10],
      ['b/web-2', 'warning', 2],
    ],
  );
});

test('stop() aborts the blocked query and ends the loop', async () => {
  const { consul, watcher } = await harness({ waitMs: 600_000 });
  consul.set([entry('a', 'web-1')], 3);
  watcher.start();
  await until(() => consul.heldCount === 1, 'the blocking query');
  // Without the abort this would wait for the 10-minute query (and the test's own timeout).
  await watcher.stop();
  await until(() => consul.droppedHeld === 1, 'the server to see the request dropped');
  const seen = consul.requests.length;
  consul.set([entry('b', 'web-2')], 4);
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(consul.requests.length, seen, 'no request after stop()');
  assert.deepEqual(ids(watcher.instances), ['a/web-1']);
});

test('stop() during a back-off ends the loop, and ready() rejects when stopped first', async () => {
  const consul = new FakeConsul();
  const base = await consul.start();
  cleanups.push(() => consul.close());
  consul.script.push({ status: 503 });
  // The real sleep, with a back-off long enough that only the abort can end it.
  const watcher = new ServiceWatcher({
    agent: base,
    service: 'web',
    backoffInitialMs: 600_000,
    backoffMaxMs: 600_000,
  });
  const errored = new Promise<void>((resolve) => watcher.on('error', () => resolve()));
  const ready = watcher.ready();
  watcher.start();
  await errored;
  await watcher.stop();
  await assert.rejects(ready, /stopped/);
  assert.equal(consul.requests.length, 1);
});

test('options are checked up front, naming the value', () => {
  assert.throws(() => new ServiceWatcher({ service: '' }), /'service' must be a non-empty string/);
  assert.throws(
    () => new ServiceWatcher({ service: 'web', agent: 'nope' }),
    /'agent' must be a URL: current value is nope/,
  );
  assert.throws(() => new ServiceWatcher({ service: 'web', waitMs: 700_000 }), /'waitMs'.*700000/);
});
