import assert from 'node:assert/strict';
import { test } from 'node:test';
import { addressOf, GossipSim, memberName } from './sim.js';

/** Every running member sees `subject` in `status` (and `subject` itself is not asked). */
function allSee(sim: GossipSim, subject: string, status: string): boolean {
  return sim.viewsOf(subject).every((s) => s === status);
}

/** A simulator that cross-checks every member's bookkeeping every 500 steps. */
function checkedSim(options: ConstructorParameters<typeof GossipSim>[0]): GossipSim {
  const sim = new GossipSim(options);
  sim.checkEvery = 500;
  return sim;
}

function seedMessage(seed: number): string {
  return `seed ${seed}`;
}

// memberlist Join: push-pull with a seed, then gossip spreads the newcomer (SWIM §4.1).
test('join: 30 members joining through one seed converge on one alive view', () => {
  for (const seed of [1, 2]) {
    const sim = checkedSim({ seed, members: 30, start: 'join' });
    const took = sim.runUntilTrue(
      () => sim.running().every((name) => sim.node(name).activeCount === 30),
      30_000,
    );
    assert.notEqual(took, null, seedMessage(seed));
    for (let i = 0; i < 30; i++) assert.ok(allSee(sim, memberName(i), 'alive'), seedMessage(seed));
    assert.equal(sim.falsePositiveEvents('suspect'), 0, seedMessage(seed));
  }
});

// SWIM §3.1 + §4.2: a crashed member is suspected, then declared failed by every member.
test('failure detection: a crashed member is declared failed by everyone', () => {
  for (const lifeguard of [true, false]) {
    const sim = checkedSim({ seed: 7, members: 50, config: { lifeguard } });
    sim.runFor(5_000);
    sim.crash('m3');
    const at = sim.now;
    const took = sim.runUntilTrue(() => sim.spreadTime('failed', 'm3', at) !== null, 60_000);
    assert.notEqual(took, null, `lifeguard ${lifeguard}`);
    assert.ok(allSee(sim, 'm3', 'dead'));
    assert.equal(sim.falsePositiveEvents('failed'), 0);
    // No member is still probing it (invariant in the core: dead members are never probed).
    const pings = sim.traffic.byType.ping ?? 0;
    sim.runFor(5_000);
    assert.ok((sim.traffic.byType.ping ?? 0) > pings);
  }
});

// SWIM §4.2: a paused (SIGSTOP) member is suspected; resumed in time, it refutes with a higher
// incarnation and everyone takes it back as alive.
test('pause then resume: suspected, then refuted with a higher incarnation', () => {
  const sim = checkedSim({ seed: 11, members: 20 });
  sim.runFor(3_000);
  sim.pause('m5');
  const suspected = sim.runUntilTrue(() => sim.viewsOf('m5').some((s) => s === 'suspect'), 20_000);
  assert.notEqual(suspected, null);
  sim.runFor(1_000);
  assert.ok(!sim.viewsOf('m5').includes('dead'), 'resumed before anyone declared it dead');
  sim.resume('m5');
  const back = sim.runUntilTrue(() => allSee(sim, 'm5', 'alive'), 20_000);
  assert.notEqual(back, null);
  assert.ok(sim.node('m5').incarnation >= 2);
  for (const name of sim.running())
    if (name !== 'm5') assert.equal(sim.node(name).member('m5')?.incarnation, sim.node('m5').incarnation);
});

test('pause too long: declared failed; on resume it refutes and rejoins', () => {
  const sim = checkedSim({ seed: 12, members: 20 });
  sim.runFor(3_000);
  sim.pause('m6');
  assert.notEqual(
    sim.runUntilTrue(() => allSee(sim, 'm6', 'dead'), 120_000),
    null,
  );
  sim.resume('m6');
  const back = sim.runUntilTrue(() => allSee(sim, 'm6', 'alive'), 60_000);
  assert.notEqual(back, null);
  assert.ok(sim.firstSeen.join.get('m6')!.size >= 19, 'others report it joining again');
});

// Serf: leave is reported as 'left', a crash as 'failed'.
test('leave vs fail: a leaving member is left everywhere, a crashed one failed', () => {
  const sim = checkedSim({ seed: 21, members: 40 });
  sim.runFor(3_000);
  sim.leave('m1');
  sim.crash('m2');
  const at = sim.now;
  assert.notEqual(
    sim.runUntilTrue(() => allSee(sim, 'm1', 'left') && allSee(sim, 'm2', 'dead'), 60_000),
    null,
  );
  assert.equal(sim.firstSeen.failed.get('m1'), undefined, 'nobody reported m1 failed');
  assert.equal(sim.firstSeen.left.get('m2'), undefined, 'nobody reported m2 left');
  const leftSpread = sim.spreadTime('left', 'm1', at)!;
  assert.ok(leftSpread < 3_000, `left spread in ${leftSpread} ms: gossip, not failure detection`);
});

// memberlist: a restarted member learns it is held dead and refutes with a higher incarnation.
test('rejoin: a crashed member restarted with incarnation 1 comes back with a higher one', () => {
  const sim = checkedSim({ seed: 31, members: 20 });
  sim.runFor(3_000);
  sim.crash('m4');
  assert.notEqual(
    sim.runUntilTrue(() => allSee(sim, 'm4', 'dead'), 60_000),
    null,
  );
  const deadIncarnation = sim.node('m0').member('m4')!.incarnation;
  const node = sim.addMember('m4', [addressOf('m0')]);
  assert.equal(node.incarnation, 1);
  assert.notEqual(
    sim.runUntilTrue(() => allSee(sim, 'm4', 'alive'), 30_000),
    null,
  );
  assert.ok(node.incarnation > deadIncarnation);
  assert.equal(node.activeCount, 20, 'the restarted member knows everyone again');
});

// Partitions: each side declares the other dead; after healing, reconnect and push-pull merge.
test('partition heal: both sides declare each other failed, then merge back', () => {
  const sim = checkedSim({ seed: 41, members: 20, config: { reconnectIntervalMs: 10_000 } });
  sim.runFor(3_000);
  const left = Array.from({ length: 10 }, (_, i) => memberName(i));
  const right = Array.from({ length: 10 }, (_, i) => memberName(i + 10));
  sim.partition([left, right]);
  assert.notEqual(
    sim.runUntilTrue(
      () => left.every((a) => right.every((b) => sim.node(a).member(b)?.status === 'dead')),
      120_000,
    ),
    null,
  );
  assert.ok(left.every((a) => left.every((b) => sim.node(a).member(b)?.status === 'alive')));
  sim.heal();
  const healed = sim.runUntilTrue(
    () => sim.running().every((name) => sim.node(name).activeCount === 20),
    120_000,
  );
  assert.notEqual(healed, null);
  for (const name of sim.running()) assert.ok(allSee(sim, name, 'alive'));
});

test('packet loss: 10% loss, no member declared failed, a crash still detected', () => {
  const sim = checkedSim({ seed: 51, members: 30, lossRate: 0.1 });
  sim.runFor(30_000);
  assert.equal(sim.falsePositiveEvents('failed'), 0);
  sim.crash('m9');
  const at = sim.now;
  assert.notEqual(
    sim.runUntilTrue(() => sim.spreadTime('failed', 'm9', at) !== null, 60_000),
    null,
  );
});

// Determinism (DESIGN.md principle 2): a seed replays exactly; another seed differs.
test('determinism: same seed, same trace', () => {
  const run = (seed: number) => {
    const sim = checkedSim({ seed, members: 25, lossRate: 0.05, start: 'join' });
    sim.runFor(5_000);
    sim.crash('m3');
    sim.slow('m4', 300);
    sim.pause('m5');
    sim.runFor(10_000);
    sim.resume('m5');
    sim.runFor(10_000);
    return { trace: sim.trace, messages: sim.traffic.messages, bytes: sim.traffic.bytes };
  };
  const a = run(99);
  assert.deepEqual(run(99), a);
  assert.notDeepEqual(run(100), a);
});
