import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Backoff } from '../../src/client/backoff.js';
import { nextBlockingIndex } from '../../src/client/blocking-index.js';
import { parseHealthService } from '../../src/client/instance.js';
import { TokenBucket } from '../../src/client/token-bucket.js';
import { entry } from './fake-consul.js';
import { sequence } from './make-instance.js';

test("blocking index: Consul's client rules", () => {
  assert.equal(nextBlockingIndex(0, '17'), 17, 'first answer');
  assert.equal(nextBlockingIndex(17, '17'), 17, 'timed out, nothing changed');
  assert.equal(nextBlockingIndex(17, '25'), 25, 'moved on');
  assert.equal(nextBlockingIndex(17, '9'), 0, 'went backwards: restart');
  assert.equal(nextBlockingIndex(17, '0'), 1, 'zero: block on 1 rather than busy-loop');
  assert.equal(nextBlockingIndex(0, null), 1, 'no header');
  assert.equal(nextBlockingIndex(5, 'abc'), 1, 'garbage');
  assert.equal(nextBlockingIndex(5, '-3'), 1, 'negative');
});

test('backoff: doubling ceilings with equal jitter, bounded, reset', () => {
  const low = new Backoff({ initialMs: 100, maxMs: 1000, random: sequence(0) });
  assert.deepEqual(
    Array.from({ length: 7 }, () => low.next()),
    [50, 100, 200, 400, 500, 500, 500],
  );
  const high = new Backoff({ initialMs: 100, maxMs: 1000, random: sequence(1) });
  assert.deepEqual(
    Array.from({ length: 6 }, () => high.next()),
    [100, 200, 400, 800, 1000, 1000],
  );
  high.reset();
  assert.equal(high.next(), 100);
  // Thousands of failures never overflow the ceiling.
  const many = new Backoff({ initialMs: 1, maxMs: 30_000, random: sequence(1) });
  for (let i = 0; i < 5000; i++) many.next();
  assert.equal(many.next(), 30_000);
  assert.throws(
    () => new Backoff({ initialMs: 0 }),
    /'initialMs' must be a positive number: current value is 0/,
  );
  assert.throws(() => new Backoff({ initialMs: 10, maxMs: 5 }), /'maxMs' \(5\)/);
});

test('token bucket: a burst passes at once, then one per interval', () => {
  const bucket = new TokenBucket({ burst: 2, intervalMs: 1000 });
  assert.equal(bucket.take(0), 0);
  assert.equal(bucket.take(0), 0);
  assert.equal(bucket.take(0), 1000, 'third at once: wait a full interval');
  // The caller waited 1000 ms; the reservation is paid, the next waits another interval.
  assert.equal(bucket.take(1000), 1000);
  assert.equal(bucket.take(2000 + 500), 500);
  // A long quiet spell refills to the burst, not beyond.
  assert.equal(bucket.take(60_000), 0);
  assert.equal(bucket.take(60_000), 0);
  assert.equal(bucket.take(60_000), 1000);
  const off = new TokenBucket({ burst: 1, intervalMs: 0 });
  for (let i = 0; i < 10; i++) assert.equal(off.take(0), 0);
  assert.throws(() => new TokenBucket({ burst: 0, intervalMs: 1 }), /'burst'.*current value is 0/);
});

test('health-service parsing: address fallback, weights, worst check wins, sorted by id', () => {
  const body = [
    entry('n2', 's', {
      address: '10.0.0.9',
      weights: { Passing: 5, Warning: 2 },
      checks: ['passing', 'warning'],
    }),
    entry('n1', 's', { tags: ['v1'], meta: { z: '1', a: '2' } }),
    entry('n3', 's', { checks: ['warning', 'critical'] }),
    { ...(entry('n4', 's') as object), Checks: null },
  ];
  const parsed = parseHealthService(JSON.parse(JSON.stringify(body)));
  assert.deepEqual(
    parsed.map((i) => [i.id, i.address, i.health, i.weight]),
    [
      ['n1/s', '10.0.0.2', 'passing', 1],
      ['n2/s', '10.0.0.9', 'warning', 2],
      ['n4/s', '10.0.0.2', 'passing', 1],
    ],
  );
  assert.deepEqual(parsed[0]!.tags, ['v1']);
  assert.deepEqual(Object.keys(parsed[0]!.meta), ['a', 'z']);
  // Weights missing (older agents): Consul's default of 1.
  const noWeights = entry('n5', 's') as { Service: Record<string, unknown> };
  delete noWeights.Service.Weights;
  assert.equal(parseHealthService([noWeights])[0]!.weight, 1);
  assert.throws(() => parseHealthService({}), /JSON array/);
  const badPort = entry('n6', 's', { port: 70_000 });
  assert.throws(() => parseHealthService([badPort]), /Service.Port.*70000/);
});
