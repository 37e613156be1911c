import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HashRingPicker } from '../../src/client/hash-ring-picker.js';
import type { ServiceInstance } from '../../src/client/instance.js';
import { LeastRequestsPicker } from '../../src/client/least-requests.js';
import { type InstanceSource, LoadBalancer, NoInstanceError } from '../../src/client/load-balancer.js';
import { seededRandom } from '../../src/client/random.js';
import { RoundRobinPicker } from '../../src/client/round-robin.js';
import { entry, FakeConsul, until } from './fake-consul.js';
import { instance, sequence } from './make-instance.js';

/** A source whose set the test changes by hand. */
class ManualSource implements InstanceSource {
  instances: readonly ServiceInstance[] = [];
  readonly #listeners = new Set<(i: readonly ServiceInstance[]) => void>();
  on(_event: 'change', listener: (i: readonly ServiceInstance[]) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
  set(instances: readonly ServiceInstance[]): void {
    this.instances = instances;
    for (const l of this.#listeners) l(instances);
  }
  get listenerCount(): number {
    return this.#listeners.size;
  }
}

test('pick follows the source; run with no instance throws NoInstanceError naming the service', async () => {
  const source = new ManualSource();
  const lb = new LoadBalancer({
    source,
    picker: new RoundRobinPicker({ random: sequence(0) }),
    service: 'web',
  });
  assert.equal(lb.pick(), undefined);
  await assert.rejects(
    lb.run(() => 1),
    (e: Error) => e instanceof NoInstanceError && /'web'/.test(e.message),
  );
  source.set([instance('a'), instance('b')]);
  assert.deepEqual([lb.pick()!.id, lb.pick()!.id], ['a', 'b']);
  await lb.close();
  assert.equal(source.listenerCount, 0);
});

test('run claims the instance until fn settles, on success and on failure', async () => {
  const source = new ManualSource();
  source.set([instance('a'), instance('b')]);
  const picker = new LeastRequestsPicker({ random: sequence(0.99) });
  const lb = new LoadBalancer({ source, picker });

  let finish!: () => void;
  const slow = lb.run(
    (i) =>
      new Promise<string>((resolve) => {
        finish = () => resolve(i.id);
      }),
  );
  assert.equal(picker.outstanding('a'), 1);
  assert.equal(await lb.run((i) => i.id), 'b', 'a is busy');
  await assert.rejects(
    lb.run(() => {
      throw new Error('boom');
    }),
    /boom/,
  );
  assert.equal(picker.outstanding('b'), 0, 'released after a throw');
  finish();
  assert.equal(await slow, 'a');
  assert.equal(picker.outstanding('a'), 0);
});

test('run with a key goes through the hash ring', async () => {
  const source = new ManualSource();
  source.set(['a', 'b', 'c'].map((id) => instance(id)));
  const lb = new LoadBalancer({ source, picker: new HashRingPicker() });
  const first = await lb.run((i) => i.id, 'user-42');
  for (let n = 0; n < 5; n++) assert.equal(await lb.run((i) => i.id, 'user-42'), first);
});

test('forService: a watcher of its own, ready() after the first answer, close() stops it', async () => {
  const consul = new FakeConsul();
  consul.set([entry('a', 'web-1', { port: 1 }), entry('b', 'web-2', { port: 2 })], 10);
  const agent = await consul.start();
  const lb = LoadBalancer.forService({
    agent,
    service: 'web',
    picker: new RoundRobinPicker({ random: seededRandom(1) }),
    rateLimitIntervalMs: 0,
  });
  try {
    await lb.ready();
    const ports = new Set([lb.pick()!.port, lb.pick()!.port]);
    assert.deepEqual([...ports].sort(), [1, 2]);
    consul.set([entry('c', 'web-3', { port: 3 })]);
    await until(() => lb.pick()?.port === 3, 'the balancer to see the new set');
    await lb.close();
    await until(() => consul.droppedHeld === 1, 'the held query to be dropped');
  } finally {
    await lb.close();
    await consul.close();
  }
});
