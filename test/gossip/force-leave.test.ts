import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GossipSim } from './sim.js';

/** Consul's force-leave: a failed member is turned into a left one, everywhere. */

function allSee(sim: GossipSim, subject: string, status: string): boolean {
  return sim.viewsOf(subject).every((s) => s === status);
}

function checkedSim(seed: number, members: number): GossipSim {
  const sim = new GossipSim({ seed, members });
  sim.checkEvery = 500;
  return sim;
}

test('force-leave: a failed member becomes left on every member, without a failed report after', () => {
  const sim = checkedSim(51, 20);
  sim.runFor(3_000);
  sim.crash('m3');
  assert.notEqual(
    sim.runUntilTrue(() => allSee(sim, 'm3', 'dead'), 60_000),
    null,
  );
  const incarnation = sim.node('m0').member('m3')!.incarnation;
  assert.equal(sim.node('m0').forceLeave('m3'), 'left');
  assert.equal(sim.node('m0').member('m3')?.status, 'left');
  const took = sim.runUntilTrue(() => allSee(sim, 'm3', 'left'), 10_000);
  assert.notEqual(took, null, 'the force-leave spread');
  assert.ok(took! < 5_000, `spread in ${took} ms: gossip, not a timer`);
  assert.equal(sim.firstSeen.left.get('m3')?.size, 19, 'every other member reported m3 left');
  for (const name of sim.running())
    if (name !== 'm3') assert.equal(sim.node(name).member('m3')?.incarnation, incarnation);
  // Asking again is harmless.
  assert.equal(sim.node('m1').forceLeave('m3'), 'left');
  sim.runFor(2_000);
  assert.ok(allSee(sim, 'm3', 'left'));
});

test('force-leave refuses unknown names, alive members and the member itself', () => {
  const sim = checkedSim(52, 5);
  sim.runFor(2_000);
  const node = sim.node('m0');
  assert.equal(node.forceLeave('nobody'), 'unknown');
  assert.equal(node.forceLeave('m1'), 'alive');
  assert.equal(node.member('m1')?.status, 'alive');
  assert.equal(node.forceLeave('m0'), 'self');
  assert.equal(node.member('m0')?.status, 'alive');
  sim.runFor(2_000);
  assert.ok(allSee(sim, 'm1', 'alive'));
});

test('force-leave of a suspect member: left everywhere, its suspicion cleared', () => {
  const sim = checkedSim(53, 12);
  sim.runFor(3_000);
  sim.crash('m7');
  const observer = (): string | undefined =>
    sim.running().find((name) => sim.node(name).member('m7')?.status === 'suspect');
  assert.notEqual(
    sim.runUntilTrue(() => observer() !== undefined, 20_000),
    null,
  );
  const by = observer()!;
  assert.equal(sim.node(by).forceLeave('m7'), 'left');
  sim.node(by).assertConsistent();
  assert.notEqual(
    sim.runUntilTrue(() => allSee(sim, 'm7', 'left'), 10_000),
    null,
  );
  assert.equal(sim.firstSeen.failed.get('m7'), undefined, 'nobody declared m7 failed');
});

// A member force-left while it was only cut off hears of its "leave" and refutes it (SWIM §4.2).
test('force-leave of a member that is in fact running: it refutes and is alive again', () => {
  const sim = checkedSim(54, 10);
  sim.runFor(3_000);
  sim.pause('m4');
  assert.notEqual(
    sim.runUntilTrue(() => allSee(sim, 'm4', 'dead'), 120_000),
    null,
  );
  assert.equal(sim.node('m0').forceLeave('m4'), 'left');
  assert.notEqual(
    sim.runUntilTrue(() => allSee(sim, 'm4', 'left'), 10_000),
    null,
  );
  sim.resume('m4');
  assert.notEqual(
    sim.runUntilTrue(() => allSee(sim, 'm4', 'alive'), 60_000),
    null,
  );
  assert.equal(sim.node('m4').member('m4')?.status, 'alive');
});

test('force-leave from a member that missed a refutation still turns the member left everywhere', () => {
  const sim = checkedSim(54, 8);
  sim.runFor(3_000);
  sim.crash('m5');
  assert.notEqual(
    sim.runUntilTrue(() => allSee(sim, 'm5', 'dead'), 60_000),
    null,
  );
  // Every member but m0 heard m5 refute a suspicion before it died: they hold a higher
  // incarnation than the one m0's force-leave will carry.
  for (const name of sim.running()) {
    if (name === 'm0' || name === 'm5') continue;
    (sim.node(name) as unknown as { members: { get(n: string): { incarnation: number } } }).members.get(
      'm5',
    ).incarnation += 1;
  }
  assert.equal(sim.node('m0').forceLeave('m5'), 'left');
  assert.notEqual(
    sim.runUntilTrue(() => allSee(sim, 'm5', 'left'), 10_000),
    null,
    'left everywhere',
  );
});

test('a late leave taken by a member that holds M failed does not turn a running M left elsewhere', () => {
  const sim = checkedSim(55, 8);
  sim.runFor(3_000);
  type Internals = {
    self: { incarnation: number };
    members: { get(n: string): { incarnation: number }; setStatus(r: unknown, s: string, now: number): void };
    applyUpdates(updates: unknown[], now: number): void;
  };
  const inside = (name: string) => sim.node(name) as unknown as Internals;
  // m5 is alive at incarnation k+1 everywhere...
  inside('m5').self.incarnation += 1;
  for (const name of sim.running()) if (name !== 'm5') inside(name).members.get('m5').incarnation += 1;
  const current = inside('m0').members.get('m5').incarnation;
  // ...but m0 alone holds it failed, and an old leave of m5 at incarnation k reaches m0.
  inside('m0').members.setStatus(inside('m0').members.get('m5'), 'dead', sim.now);
  inside('m0').applyUpdates([{ kind: 'dead', name: 'm5', incarnation: current - 1, from: 'm5' }], sim.now);
  assert.equal(sim.node('m0').member('m5')?.status, 'left');
  sim.runFor(3_000);
  const reportedLeft = [...(sim.firstSeen.left.get('m5')?.keys() ?? [])].filter((name) => name !== 'm0');
  assert.deepEqual(reportedLeft, [], 'no member that saw m5 alive took the old leave');
});
