import assert from 'node:assert/strict';
import { test } from 'node:test';
import { all, Cluster, is, type Message, T } from './harness.js';

/** n3 misses ten commands while down; n1 snapshots and compacts them away; n3 comes back. */
function farBehindFollower(): { c: Cluster; snapMsg: Message } {
  const c = new Cluster();
  c.elect('n1');
  c.crash('n3');
  for (let i = 1; i <= 10; i++) {
    c.propose('n1', `w${i}`);
    c.deliverAll();
  }
  const snap = c.snapshot('n1');
  assert.equal(snap.meta.index, 12);
  assert.equal(c.node('n1').logView().offsetIndex, 12, 'the leader no longer has entries 1..12');

  c.restart('n3');
  c.tick('n1');
  const delivered = c.deliverAll();
  const snaps = delivered.filter(all(is.type(T.Snap), is.to('n3')));
  assert.equal(snaps.length, 1, 'n3 gets exactly one snapshot');
  return { c, snapMsg: snaps[0]! };
}

// §7: when the leader has discarded the entries a follower needs, it sends its snapshot; the
// follower replaces its log and state machine with it, then follows with ordinary appends.
test('snapshot: a far-behind follower restores from the leader snapshot, then appends resume', () => {
  const { c } = farBehindFollower();
  const restored = c.readies('n3').filter((rd) => rd.snapshot);
  assert.deepEqual(
    restored.map((rd) => rd.snapshot?.meta.index),
    [12],
  );
  assert.equal(c.disk('n3').snapshot?.meta.index, 12, 'the snapshot was persisted');
  assert.deepEqual(c.appliedEntries('n3'), c.appliedEntries('n1'));
  assert.equal(c.status('n1').progress.n3?.state, 'replicate');

  const before = c.delivered.length;
  c.propose('n1', 'after');
  c.deliverAll();
  const toN3 = c.delivered.slice(before).filter(is.to('n3'));
  assert.ok(toN3.length > 0 && toN3.every(is.type(T.App)), 'then plain appends');
  assert.equal(c.appliedData('n3').at(-1), 'after');
  assert.deepEqual(c.logTerms('n3'), [2], 'n3 holds only entry 13 after its snapshot at 12');
  assert.deepEqual(c.violations, []);
});

// §7 / etcd-io/raft: a snapshot at or below the follower's commit index (say, a delayed
// duplicate) is stale: it is ignored, and the follower reports its commit index instead.
test('snapshot: a stale snapshot is ignored by a follower that committed past it', () => {
  const { c, snapMsg } = farBehindFollower();
  c.propose('n1', 'after');
  c.deliverAll();
  assert.equal(c.status('n3').commit, 13);
  const appliedBefore = c.appliedEntries('n3');
  const readiesBefore = c.readies('n3').length;

  c.inject(snapMsg); // a delayed duplicate
  c.deliver(is.to('n3'));
  const newReadies = c.readies('n3').slice(readiesBefore);
  assert.ok(
    newReadies.every((rd) => rd.snapshot === undefined),
    'nothing restored',
  );
  assert.deepEqual(
    c.queue.filter(is.from('n3')).map((m) => [m.type, m.index, m.reject ?? false]),
    [[T.AppResp, 13, false]],
  );
  assert.deepEqual(c.appliedEntries('n3'), appliedBefore);
  assert.equal(c.node('n3').logView().lastIndex, 13);
  c.deliverAll();
  assert.deepEqual(c.violations, []);
});
