import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LeastRequestsPicker } from '../../src/client/least-requests.js';
import { seededRandom } from '../../src/client/random.js';
import { RoundRobinPicker } from '../../src/client/round-robin.js';
import { WeightedRandomPicker } from '../../src/client/weighted-random.js';
import { instance, sequence } from './make-instance.js';

// Every picker with an injected random source: the statistics below are exact for their seed,
// not probabilistic, so they cannot flake.

const three = [instance('a'), instance('b'), instance('c')];

function tally(pick: () => { id: string } | undefined, times: number): Record<string, number> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < times; i++) {
    const id = pick()?.id ?? 'none';
    counts[id] = (counts[id] ?? 0) + 1;
  }
  return counts;
}

test('round robin: every instance once per round, starting at a random position', () => {
  const picker = new RoundRobinPicker({ random: sequence(0.5) }); // start at index 1 of 3
  assert.equal(picker.pick(), undefined, 'empty set');
  picker.update(three);
  assert.deepEqual(
    Array.from({ length: 7 }, () => picker.pick()!.id),
    ['b', 'c', 'a', 'b', 'c', 'a', 'b'],
  );
  assert.deepEqual(
    tally(() => picker.pick(), 3000),
    { a: 1000, b: 1000, c: 1000 },
  );
});

test('round robin: a changed set continues the rotation, and shrinking never goes out of range', () => {
  const picker = new RoundRobinPicker({ random: sequence(0) });
  picker.update(three);
  assert.deepEqual([picker.pick()!.id, picker.pick()!.id], ['a', 'b']);
  picker.update([instance('a'), instance('b')]); // position 2 is past the end now
  assert.deepEqual(
    Array.from({ length: 4 }, () => picker.pick()!.id),
    ['a', 'b', 'a', 'b'],
  );
  picker.update([]);
  assert.equal(picker.pick(), undefined);
});

test('weighted random: the draw maps onto cumulative weights', () => {
  const picker = new WeightedRandomPicker({ random: sequence(0, 0.24, 0.25, 0.99) });
  picker.update([instance('a', { weight: 1 }), instance('b', { weight: 3 })]);
  // total 4: [0, 1) is a, [1, 4) is b
  assert.deepEqual(
    Array.from({ length: 4 }, () => picker.pick()!.id),
    ['a', 'a', 'b', 'b'],
  );
});

test('weighted random: shares follow the weights (seeded), weight 0 is never chosen', () => {
  const picker = new WeightedRandomPicker({ random: seededRandom(42) });
  picker.update([
    instance('a', { weight: 1 }),
    instance('b', { weight: 0 }),
    instance('c', { weight: 2, health: 'warning' }),
    instance('d', { weight: 7 }),
  ]);
  const counts = tally(() => picker.pick(), 100_000);
  assert.equal(counts.b, undefined);
  const share = (id: string) => (counts[id] ?? 0) / 100_000;
  assert.ok(Math.abs(share('a') - 0.1) < 0.01, `a: ${share('a')}`);
  assert.ok(Math.abs(share('c') - 0.2) < 0.01, `c: ${share('c')}`);
  assert.ok(Math.abs(share('d') - 0.7) < 0.01, `d: ${share('d')}`);
});

test('weighted random: all weights 0 falls back to uniform; empty set gives undefined', () => {
  const picker = new WeightedRandomPicker({ random: sequence(0, 0.4, 0.9) });
  assert.equal(picker.pick(), undefined);
  picker.update(three.map((i) => ({ ...i, weight: 0 })));
  assert.deepEqual(
    Array.from({ length: 3 }, () => picker.pick()!.id),
    ['a', 'b', 'c'],
  );
});

test('least requests: acquire goes to the least loaded; release frees; ties are random', () => {
  // With every tie the reservoir keeps the newcomer only when random() * ties < 1.
  const picker = new LeastRequestsPicker({ random: sequence(0.99) });
  picker.update(three);
  const first = picker.acquire()!; // all at 0; 0.99*2 and 0.99*3 >= 1: stays 'a'
  assert.equal(first.instance.id, 'a');
  const second = picker.acquire()!; // b and c at 0
  assert.equal(second.instance.id, 'b');
  const third = picker.acquire()!;
  assert.equal(third.instance.id, 'c');
  assert.deepEqual(
    ['a', 'b', 'c'].map((id) => picker.outstanding(id)),
    [1, 1, 1],
  );
  second.release();
  second.release(); // idempotent
  assert.equal(picker.outstanding('b'), 0);
  assert.equal(picker.pick()!.id, 'b', 'pick() answers without claiming');
  assert.equal(picker.acquire()!.instance.id, 'b');
  assert.equal(picker.outstanding('b'), 1);
});

test('least requests: a random tie-break takes the other candidates too (seeded spread)', () => {
  const picker = new LeastRequestsPicker({ random: seededRandom(3) });
  picker.update(three);
  // Acquire and release at once: every pick is a three-way tie, so the choice is uniform.
  const counts = tally(() => {
    const lease = picker.acquire()!;
    lease.release();
    return lease.instance;
  }, 30_000);
  for (const id of ['a', 'b', 'c']) {
    assert.ok(Math.abs(counts[id]! - 10_000) < 500, `${id}: ${counts[id]}`);
  }
});

test('least requests: in-flight counts keep balance under held requests', () => {
  const picker = new LeastRequestsPicker({ random: seededRandom(11) });
  picker.update(three);
  const held = Array.from({ length: 30 }, () => picker.acquire()!);
  assert.deepEqual(
    ['a', 'b', 'c'].map((id) => picker.outstanding(id)),
    [10, 10, 10],
  );
  for (const lease of held.filter((l) => l.instance.id === 'c')) lease.release();
  assert.equal(picker.acquire()!.instance.id, 'c');
});

test('least requests: counts survive an update; a removed and re-added instance starts at 0', () => {
  const picker = new LeastRequestsPicker({ random: sequence(0.99) });
  picker.update(three);
  const onA = picker.acquire()!;
  assert.equal(onA.instance.id, 'a');
  picker.update([instance('a', { port: 9090 }), instance('b'), instance('c')]);
  assert.equal(picker.outstanding('a'), 1, 'kept across an update');
  assert.equal(picker.pick()!.port, 8080, 'b, the least loaded');
  picker.update([instance('b'), instance('c')]);
  picker.update(three);
  assert.equal(picker.outstanding('a'), 0);
  onA.release(); // a lease from before the removal does not touch the new slot
  assert.equal(picker.outstanding('a'), 0);
  picker.update([]);
  assert.equal(picker.acquire(), undefined);
});
