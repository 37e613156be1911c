import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Packr } from 'msgpackr';
import { encodedSize } from '../../src/gossip/size.js';
import type { Update } from '../../src/gossip/types.js';
import { Harness, meta } from './harness.js';

/** Advance until `done` or `limitMs`; fails the test on the limit. */
function until(h: Harness, done: () => boolean, limitMs: number, what: string): void {
  const end = h.now + limitMs;
  while (!done()) {
    if (h.now >= end) assert.fail(`not within ${limitMs} ms: ${what}`);
    h.advance(10);
  }
}

// SWIM §3.1: a direct ping answered by an ack keeps everyone alive; nothing is suspected.
test('healthy members probe each other and suspect nobody', () => {
  const h = new Harness(['a', 'b', 'c', 'd']);
  h.advance(10_000);
  assert.ok(h.sentOfType('ping').length >= 30);
  assert.ok(h.sentOfType('ack').length >= 30);
  assert.equal(h.sentOfType('ping-req').length, 0);
  assert.deepEqual(
    h.events.filter((e) => e.event.type !== 'join'),
    [],
  );
  for (const name of ['a', 'b', 'c', 'd']) assert.equal(h.node(name).healthScore, 0);
});

/** Cut b off, let a suspect it, then wait until the suspect update's retransmissions are spent. */
function suspectAndExhaust(lifeguard: boolean): Harness {
  // A long fixed suspicion (k = 0 with four members) leaves time to watch the probes.
  const h = new Harness(['a', 'b', 'c', 'd'], { lifeguard, suspicionMult: 10 });
  h.drop = (m) => m.to === 'b' || m.from === 'b';
  until(h, () => h.node('a').member('b')?.status === 'suspect', 10_000, 'a suspects b');
  h.advance(2_000);
  // Now only a's pings to b and b's acks to a get through.
  h.drop = (m) =>
    !((m.from === 'a' && m.to === 'b' && m.message.type === 'ping') || (m.from === 'b' && m.to === 'a'));
  return h;
}

// Lifeguard buddy system: a suspect learns it on the very ping of a member that suspects it,
// refutes, and the refutation rides back on the ack.
test('buddy system: the ping to a suspect carries the suspicion, and the ack its refutation', () => {
  const h = suspectAndExhaust(true);
  const sentBefore = h.sent.length;
  until(h, () => h.node('a').member('b')?.status === 'alive', 6_000, 'b refuted to a');
  const ping = h.sent
    .slice(sentBefore)
    .find((s) => s.from === 'a' && s.to === 'b' && s.message.type === 'ping');
  assert.ok(ping && ping.message.type === 'ping');
  assert.deepEqual(ping.message.updates[0], { kind: 'suspect', name: 'b', incarnation: 1, from: 'a' });
  assert.equal(h.node('b').incarnation, 2, 'b refuted with a higher incarnation');
  assert.equal(h.node('b').stats.refutations, 1);
  assert.equal(h.node('a').member('b')?.incarnation, 2);
  assert.equal(h.eventsOf('a', 'alive').length, 1);
  assert.equal(h.eventsOf('a', 'failed').length, 0);
});

test('without Lifeguard (plain SWIM) the suspect never hears of it and is declared dead while acking', () => {
  const h = suspectAndExhaust(false);
  until(h, () => h.node('a').member('b')?.status === 'dead', 15_000, 'a declares b dead');
  assert.equal(h.node('b').incarnation, 1, 'b never refuted');
  assert.ok(
    h.sentOfType('ack').some((s) => s.from === 'b' && s.to === 'a'),
    'b kept answering',
  );
});

// SWIM §3.1 + Lifeguard LHA-Probe: helpers answer a ping-req with a nack when the target is
// silent, so the prober knows its own messages get through and keeps its health score.
test('ping-req relays send nacks; a prober that gets them keeps a clean health score', () => {
  const h = new Harness(['a', 'b', 'c', 'd']);
  h.drop = (m) => m.to === 'b';
  until(h, () => h.node('a').stats.probesFailed > 0, 10_000, 'a probes b and fails');
  const reqs = h.sentOfType('ping-req').filter((s) => s.from === 'a');
  assert.equal(reqs.length, 2, 'k = 3 but only c and d can help');
  assert.ok(reqs.every((s) => s.message.nack && s.message.target === 'b'));
  assert.equal(h.node('a').stats.nacksReceived, 2);
  assert.equal(h.node('a').healthScore, 0);
});

test('LHA-Probe: a member whose inbound traffic is lost raises its health score and slows its probes', () => {
  const h = new Harness(['a', 'b', 'c', 'd']);
  h.drop = (m) => m.to === 'a';
  h.advance(6_000);
  const score = h.node('a').healthScore;
  assert.ok(score >= 2, `score ${score}`);
  const pingTimes = () => h.sent.filter((s) => s.from === 'a' && s.message.type === 'ping').length;
  const before = pingTimes();
  h.advance(10_000);
  const slowed = pingTimes() - before;
  assert.ok(slowed <= 10_000 / 1000 / 2, `a still probed ${slowed} times in 10 s`);
  // Everyone holds a dead and a holds everyone dead: Serf's reconnect brings them together,
  // a refutes, and its successful probes bring its score back to 0.
  h.drop = () => false;
  h.advance(90_000);
  assert.equal(h.node('b').member('a')?.status, 'alive');
  assert.equal(h.node('a').healthScore, 0);
});

test('LHA-Probe off in plain SWIM: the score stays 0 and no nacks are asked for', () => {
  const h = new Harness(['a', 'b', 'c', 'd'], { lifeguard: false });
  h.drop = (m) => m.to === 'a';
  h.advance(6_000);
  assert.equal(h.node('a').healthScore, 0);
  assert.ok(h.sentOfType('ping-req').every((s) => !s.message.nack));
});

// SWIM §4.2: a member refutes any suspicion or death of itself with a higher incarnation,
// and its own incarnation never goes down.
test('refutation: own incarnation only grows, stale accusations are ignored', () => {
  const h = new Harness(['a', 'b']);
  const a = h.node('a');
  const say = (update: Update) => {
    a.receive('b', { type: 'gossip', from: 'b', updates: [update] });
    h.collect('a');
  };
  say({ kind: 'suspect', name: 'a', incarnation: 5, from: 'b' });
  assert.equal(a.incarnation, 6);
  assert.equal(a.healthScore, 1, 'having to refute counts against our health (Lifeguard)');
  say({ kind: 'suspect', name: 'a', incarnation: 3, from: 'b' });
  say({ kind: 'alive', name: 'a', address: 'a', incarnation: 4, meta });
  assert.equal(a.incarnation, 6, 'older news about us changes nothing');
  say({ kind: 'dead', name: 'a', incarnation: 9, from: 'b' });
  assert.equal(a.incarnation, 10);
  say({ kind: 'alive', name: 'a', address: 'elsewhere', incarnation: 10, meta });
  assert.equal(a.incarnation, 11, 'a conflicting claim on our name is refuted too');
  assert.equal(a.member('a')?.status, 'alive');
  assert.equal(a.stats.refutations, 3);
});

// memberlist/Serf: a graceful leave is a 'dead' from the member itself, recorded as 'left'.
test('leave is told apart from failure', () => {
  const h = new Harness(['a', 'b', 'c', 'd']);
  h.advance(2_000);
  h.node('a').leave();
  h.collect('a');
  until(h, () => h.node('a').leaveBroadcastDone(), 5_000, 'leave broadcast out');
  h.drop = (m) => m.to === 'a' || m.from === 'a' || m.to === 'd' || m.from === 'd';
  until(h, () => h.node('b').member('d')?.status === 'dead', 40_000, 'd declared failed');
  for (const observer of ['b', 'c']) {
    assert.equal(h.node(observer).member('a')?.status, 'left');
    assert.deepEqual(
      h.eventsOf(observer, 'left').map((e) => e.member.name),
      ['a'],
    );
    assert.ok(h.eventsOf(observer, 'failed').every((e) => e.member.name === 'd'));
  }
  assert.equal(h.eventsOf('b', 'failed').length, 1);
});

// Invariant: dead and left members are never probed (memberlist probe skips them).
test('dead and left members are never probed', () => {
  const h = new Harness(['a', 'b', 'c', 'd', 'e']);
  h.node('e').leave();
  h.collect('e');
  h.drop = (m) => m.to === 'd' || m.from === 'd';
  until(h, () => ['a', 'b', 'c'].every((n) => h.node(n).member('d')?.status === 'dead'), 60_000, 'd dead');
  const mark = h.sent.length;
  h.advance(20_000);
  const probes = h.sent
    .slice(mark)
    .filter((s) => s.from !== 'd' && (s.message.type === 'ping' || s.message.type === 'ping-req'));
  assert.ok(probes.length > 20);
  for (const s of probes) {
    assert.notEqual(s.to, 'd');
    assert.notEqual(s.to, 'e');
    if (s.message.type === 'ping-req') assert.ok(s.message.target !== 'd' && s.message.target !== 'e');
  }
});

const packr = new Packr({ useRecords: false });

// SWIM §4.1 piggybacking within memberlist's UDP budget.
test('every UDP message fits the 1400-byte budget however many updates are pending', () => {
  const h = new Harness(['a', 'b', 'c']);
  const a = h.node('a');
  const updates: Update[] = Array.from({ length: 300 }, (_, i) => ({
    kind: 'alive',
    name: `member-${i}-with-a-longer-name`,
    address: `10.0.${i >> 8}.${i & 255}:8301`,
    incarnation: 1,
    meta: { ...meta, tags: { rack: `r${i}`, zone: 'us-east-1a' } },
  }));
  for (let i = 0; i < updates.length; i += 10)
    a.receive('b', { type: 'gossip', from: 'b', updates: updates.slice(i, i + 10) });
  h.collect('a');
  assert.equal(a.activeCount, 303);
  h.advance(3_000);
  const udp = h.sent.filter((s) => s.transport === 'udp' && s.from === 'a');
  assert.ok(udp.length > 10);
  let full = 0;
  for (const s of udp) {
    const size = encodedSize(s.message);
    assert.equal(size, packr.pack(s.message).length);
    assert.ok(size <= 1400, `${s.message.type} of ${size} bytes`);
    if (size > 1200) full++;
  }
  assert.ok(full > 5, 'messages are filled up to the budget');
});

test('hostile packets are counted and dropped, never thrown', () => {
  const h = new Harness(['a', 'b']);
  const a = h.node('a');
  const junk: unknown[] = [
    undefined,
    0,
    'x',
    [],
    { type: 'ping' },
    { type: 'ack', seq: 'x', from: 'b', updates: [] },
  ];
  for (const value of junk) a.receive('b', value);
  assert.equal(a.stats.invalidMessages, junk.length);
  a.receive('b', { type: 'ping', seq: 1, from: 'b', target: 'not-a', updates: [] });
  assert.equal(a.stats.misdirectedPings, 1);
  assert.deepEqual(a.takeOutput().messages, [], 'a ping for another name is not answered');
});

test('options are checked up front with the offending value', () => {
  assert.throws(
    () => new Harness(['a'], { probeTimeoutMs: 2000 }),
    /'probeTimeoutMs' must be below probeIntervalMs \(1000\): current value is 2000/,
  );
  assert.throws(() => new Harness(['a'], { indirectChecks: -1 }), /'indirectChecks'.*current value is -1/);
  const h = new Harness(['a']);
  assert.throws(
    () => h.node('a').updateMeta({ ...meta, tags: { big: 'x'.repeat(600) } }),
    /gossip 'meta' is invalid: meta.tags.big is longer than 512/,
  );
  const tags = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${i}`, 'v'.repeat(10)]));
  assert.throws(() => h.node('a').updateMeta({ ...meta, tags }), /must encode to at most 512 bytes/);
});

test('metadata updates spread with a higher incarnation and raise update events', () => {
  const h = new Harness(['a', 'b', 'c']);
  h.node('a').updateMeta({ ...meta, tags: { version: '2' } });
  h.collect('a');
  h.advance(3_000);
  for (const observer of ['b', 'c']) {
    assert.deepEqual(h.node(observer).member('a')?.meta.tags, { version: '2' });
    assert.equal(h.eventsOf(observer, 'update').length, 1);
  }
  assert.equal(h.node('a').incarnation, 2);
});
