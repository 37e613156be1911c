import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { BroadcastQueue } from '../../src/gossip/broadcast-queue.js';
import {
  defaultConfig,
  pushPullIntervalMs,
  retransmitLimit,
  suspicionTimeoutMinMs,
} from '../../src/gossip/config.js';
import { ProbeOrder } from '../../src/gossip/probe-order.js';
import { encodedSize, valueSize } from '../../src/gossip/size.js';
import { Suspicion, suspicionTimeoutMs } from '../../src/gossip/suspicion.js';
import type { GossipMessage, MemberMeta, Update } from '../../src/gossip/types.js';
import { parseMessage } from '../../src/gossip/validate.js';
import { Prng } from '../sim/prng.js';

const meta: MemberMeta = {
  role: 'server',
  datacenter: 'dc1',
  ports: { rpc: 8300, http: 8500 },
  version: '0.1.0',
  tags: { zone: 'a', 'é∂': 'ünïcode ✓ 😀' },
};

// Lifeguard LHA-Suspicion with memberlist's formula: max with no confirmations, min with k.
test('suspicion timeout shrinks from max to min as confirmations arrive', () => {
  assert.equal(suspicionTimeoutMs(0, 3, 2000, 30000), 30000);
  assert.equal(suspicionTimeoutMs(3, 3, 2000, 30000), 2000);
  const one = suspicionTimeoutMs(1, 3, 2000, 30000);
  const two = suspicionTimeoutMs(2, 3, 2000, 30000);
  assert.ok(30000 > one && one > two && two > 2000, `${one} ${two}`);
  assert.equal(one, Math.floor(30000 - (28000 * Math.log(2)) / Math.log(4)));
  assert.equal(suspicionTimeoutMs(0, 0, 2000, 30000), 2000, 'k = 0: SWIM fixed timeout');

  const s = new Suspicion(5, 1000, 2, 4000, 24000, 'a');
  assert.equal(s.deadlineMs(), 25000);
  assert.equal(s.confirm('a'), false, 'the starter does not confirm itself');
  assert.equal(s.confirm('b'), true);
  assert.equal(s.confirm('b'), false, 'one confirmation per member');
  assert.equal(s.confirm('c'), true);
  assert.equal(s.confirm('d'), false, 'no more than k');
  assert.equal(s.deadlineMs(), 5000);
});

test('memberlist formulas: retransmit limit, suspicion minimum, push-pull scaling', () => {
  assert.equal(retransmitLimit(4, 1), 4);
  assert.equal(retransmitLimit(4, 9), 4);
  assert.equal(retransmitLimit(4, 10), 8);
  assert.equal(retransmitLimit(4, 1000), 16);
  assert.equal(suspicionTimeoutMinMs(defaultConfig, 5), 4000);
  assert.equal(suspicionTimeoutMinMs(defaultConfig, 100), 8000);
  assert.equal(suspicionTimeoutMinMs(defaultConfig, 1000), 12000);
  assert.equal(pushPullIntervalMs(defaultConfig, 32), 30000);
  assert.equal(pushPullIntervalMs(defaultConfig, 64), 60000);
  assert.equal(pushPullIntervalMs(defaultConfig, 1000), 180000);
});

const alive = (name: string, incarnation = 1): Update => ({
  kind: 'alive',
  name,
  address: `${name}:8301`,
  incarnation,
  meta,
});

/** The updates one take hands out. */
function take(q: BroadcastQueue, budget: number, limit: number, exclude?: string): Update[] {
  const out: Update[] = [];
  q.take(out, budget, limit, exclude);
  return out;
}

// SWIM §4.1 / memberlist TransmitLimitedQueue.
test('broadcast queue: newest and least transmitted first, limit, replacement, budget', () => {
  const q = new BroadcastQueue();
  q.enqueue(alive('a'));
  q.enqueue(alive('b'));
  q.enqueue(alive('c'));
  const first = take(q, 10_000, 2).map((u) => u.name);
  assert.deepEqual(first, ['c', 'b', 'a']);
  q.enqueue(alive('d'));
  assert.deepEqual(
    take(q, 10_000, 2).map((u) => u.name),
    ['d', 'c', 'b', 'a'],
  );
  assert.equal(q.length, 1, 'a, b, c reached the limit of 2');
  q.enqueue(alive('d', 7));
  assert.equal(q.length, 1, 'a newer update about d replaces the old one');
  assert.equal(q.pending('d')?.incarnation, 7);

  const one = valueSize(alive('x'));
  for (const name of ['p', 'q', 'r']) q.enqueue(alive(name));
  const taken = take(q, 2 * one, 10);
  assert.equal(taken.length, 2, 'only what fits the budget');
  assert.ok(!take(q, 10_000, 10, 'd').some((u) => u.name === 'd'), 'exclude');
  assert.equal(q.pending('d')?.incarnation, 7, 'the excluded one stays queued');
});

test('probe order: every member once per pass, reshuffled, dead ones skipped, removed ones dropped', () => {
  const rng = new Prng(3);
  const order = new ProbeOrder(() => rng.float());
  const names = ['a', 'b', 'c', 'd', 'e'];
  for (const n of names) order.insert(n);
  const present = new Set(names);
  const passes: string[][] = [];
  for (let pass = 0; pass < 4; pass++) {
    const seen: string[] = [];
    for (let i = 0; i < names.length; i++)
      seen.push(
        order.next(
          () => true,
          (n) => present.has(n),
        )!,
      );
    assert.deepEqual([...seen].sort(), names);
    passes.push(seen);
  }
  assert.ok(new Set(passes.map((p) => p.join())).size > 1, 'reshuffled between passes');
  present.delete('c');
  for (let i = 0; i < 20; i++) {
    const next = order.next(
      (n) => n !== 'a',
      (n) => present.has(n),
    );
    assert.ok(next !== 'a' && next !== undefined);
  }
  assert.equal(order.length, 4, 'removed member dropped at the reshuffle');
  assert.equal(
    order.next(
      () => false,
      () => true,
    ),
    undefined,
  );
});

const packr = new Packr({ useRecords: false });

test('encodedSize matches msgpackr (useRecords: false) byte for byte', () => {
  const messages: GossipMessage[] = [
    { type: 'ping', seq: 1, from: 'a', target: 'b', updates: [] },
    {
      type: 'ping',
      seq: 70000,
      from: 'node-with-a-long-name-over-32-chars',
      target: 'b',
      updates: [alive('z', 300)],
    },
    {
      type: 'ping-req',
      seq: 0xffffffff,
      from: 'a',
      target: 'b',
      targetAddress: '10.0.0.2:8301',
      nack: true,
      updates: Array.from({ length: 20 }, (_, i) => alive(`n${i}`, i * 1000)),
    },
    {
      type: 'ack',
      seq: 200,
      from: 'b',
      updates: [{ kind: 'suspect', name: 'c', incarnation: 2 ** 40, from: 'b' }],
    },
    {
      type: 'push-pull',
      from: 'a',
      join: true,
      reply: false,
      members: [{ name: 'a', address: 'x'.repeat(300), incarnation: 1, status: 'left', meta }],
    },
  ];
  for (const m of messages) assert.equal(encodedSize(m), packr.pack(m).length, m.type);
  fc.assert(
    fc.property(
      fc.string({ unit: 'binary', maxLength: 400 }),
      fc.nat({ max: Number.MAX_SAFE_INTEGER }),
      fc.integer({ min: -(2 ** 40), max: 2 ** 40 }),
      (text, n, i) => {
        const value = { text, n, i, list: [text, n, i, true, null] };
        return valueSize(value) === packr.pack(value).length;
      },
    ),
    { numRuns: 300 },
  );
});

// DESIGN.md principle 5: hostile input is rejected with a reason, never thrown.
test('parseMessage rejects malformed input and copies what it accepts', () => {
  const bad: unknown[] = [
    null,
    42,
    'ping',
    [],
    { type: 'ping' },
    { type: 'ping', seq: -1, from: 'a', target: 'b', updates: [] },
    { type: 'ping', seq: 1.5, from: 'a', target: 'b', updates: [] },
    { type: 'ping', seq: 1, from: '', target: 'b', updates: [] },
    { type: 'ping', seq: 1, from: 'a', target: 'b', updates: {} },
    { type: 'ping', seq: 1, from: 'a', target: 'b', updates: [{ kind: 'alive', name: 'x' }] },
    { type: 'gossip', from: 'a', updates: [{ ...alive('x'), meta: { ...meta, role: 'king' } }] },
    { type: 'gossip', from: 'a', updates: [{ ...alive('x'), meta: { ...meta, ports: { a: 70000 } } }] },
    { type: 'gossip', from: 'a', updates: [{ ...alive('x'), meta: JSON.parse('{"__proto__":1}') }] },
    { type: 'gossip', from: 'a'.repeat(300), updates: [] },
    { type: 'gossip', from: 'a', updates: Array.from({ length: 600 }, () => alive('x')) },
    { type: 'push-pull', from: 'a', join: 1, reply: false, members: [] },
    { type: 'push-pull', from: 'a', join: true, reply: false, members: [{ name: 'x', status: 'zombie' }] },
    { type: 'teleport', from: 'a' },
  ];
  for (const value of bad)
    assert.equal(parseMessage(value, 100).ok, false, JSON.stringify(value)?.slice(0, 80));
  const tags = JSON.parse('{"__proto__": "x"}') as Record<string, string>;
  assert.equal(
    parseMessage({ type: 'gossip', from: 'a', updates: [{ ...alive('x'), meta: { ...meta, tags } }] }, 9).ok,
    false,
  );
  const good = { type: 'gossip', from: 'a', updates: [alive('x')], extra: 'dropped' };
  const parsed = parseMessage(good, 100);
  assert.ok(parsed.ok);
  assert.deepEqual(parsed.value, { type: 'gossip', from: 'a', updates: [alive('x')] });
  fc.assert(
    fc.property(fc.anything(), (value) => {
      parseMessage(value, 100);
      parseMessage({ type: 'gossip', from: 'a', updates: [value] }, 100);
      return true;
    }),
    { numRuns: 500 },
  );
});
