import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { InjectedBugs } from '../../src/raft/node.js';
import { all, Cluster, ELECTION_TICKS, is, T } from './harness.js';

/** Whether `id` sent a PreVote or Vote since message number `since`. */
const campaigned = (c: Cluster, id: string, since = 0): boolean =>
  c.sent.slice(since).some(all(is.from(id), is.type(T.PreVote, T.Vote)));

// Thesis §4.2.1: a new server first joins as a non-voting learner and catches up, so adding it
// does not stall commits; learners receive the log but never count toward a quorum or campaign.
test('membership: a learner catches up, never counts toward quorum, then is promoted', () => {
  const c = new Cluster({ ids: ['n1', 'n2', 'n3', 'n4'], voters: ['n1', 'n2', 'n3'] });
  c.elect('n1');
  c.propose('n1', 'a', 'b');
  c.deliverAll();

  assert.ok(c.node('n1').proposeConfChange({ type: 'addLearner', node: 'n4' }).ok);
  c.deliverAll();
  assert.deepEqual(c.status('n1').config, { voters: ['n1', 'n2', 'n3'], learners: ['n4'] });
  assert.deepEqual(c.appliedEntries('n4'), c.appliedEntries('n1'), 'n4 caught up');
  c.tick('n4', 3 * ELECTION_TICKS);
  assert.ok(!campaigned(c, 'n4'), 'a learner never campaigns');

  // One voter of three down: the leader and n2 still make a quorum.
  c.crash('n3');
  const c1 = c.propose('n1', 'c');
  c.deliverAll();
  assert.ok(c1.ok && c.status('n1').commit === c1.index);

  // Two voters down: the learner acknowledges, but n1 + n4 is not a majority of {n1, n2, n3}.
  c.crash('n2');
  const d = c.propose('n1', 'd');
  c.deliverAll();
  assert.ok(d.ok);
  assert.equal(c.status('n1').progress.n4?.match, d.index, 'n4 has d');
  assert.equal(c.status('n1').commit, c1.index, 'd is not committed');

  c.restart('n2');
  c.tick('n1');
  c.deliverAll();
  assert.equal(c.status('n1').commit, d.index, 'with n2 back, d commits');

  assert.ok(c.node('n1').proposeConfChange({ type: 'promoteLearner', node: 'n4' }).ok);
  c.deliverAll();
  assert.deepEqual(c.status('n1').config, { voters: ['n1', 'n2', 'n3', 'n4'], learners: [] });
  assert.deepEqual(c.status('n4').config, { voters: ['n1', 'n2', 'n3', 'n4'], learners: [] });
  assert.deepEqual(c.appliedData('n4'), ['a', 'b', 'c', 'd']);
  assert.deepEqual(c.violations, []);
});

// Thesis §4.1: a configuration takes effect as soon as its entry is in the log, so the leader
// stops replicating to a removed voter at once and the majority shrinks. The removed server
// may never learn of its removal (§4.2.3): it times out and pre-votes, but cannot disrupt —
// the others are in their leader lease, and its log lacks the removal entry anyway.
test('membership: remove a voter', () => {
  const c = new Cluster();
  c.elect('n1');
  const removal = c.node('n1').proposeConfChange({ type: 'removeNode', node: 'n3' });
  assert.ok(removal.ok);
  c.deliverAll();
  assert.deepEqual(c.status('n1').config, { voters: ['n1', 'n2'], learners: [] });
  assert.equal(c.status('n1').commit, removal.index, 'committed by n1 and n2');
  assert.ok(c.status('n3').lastIndex < removal.index, 'n3 never received its removal');

  const before = c.sent.length;
  for (let i = 0; i < 3 * ELECTION_TICKS; i++) {
    c.tick('n3');
    c.tick('n1');
    c.deliverAll();
  }
  assert.ok(campaigned(c, 'n3', before), 'n3 still believes it is a voter and pre-votes');
  assert.equal(c.status('n1').role, 'leader');
  assert.equal(c.status('n1').term, 2);

  const a = c.propose('n1', 'a');
  c.deliverAll();
  assert.ok(a.ok && c.status('n1').commit === a.index);
  assert.ok(!c.sent.slice(before).some(all(is.from('n1'), is.to('n3'))), 'the leader ignores n3');
  assert.deepEqual(c.appliedData('n2'), ['a']);
  assert.deepEqual(c.violations, []);
});

// Thesis §4.2.2: a leader that removes itself keeps leading (without counting itself) until
// the change commits, then steps down; the others elect a leader among themselves.
test('membership: a removed leader steps down once the removal commits', () => {
  const c = new Cluster();
  c.elect('n1');
  const r = c.node('n1').proposeConfChange({ type: 'removeNode', node: 'n1' });
  assert.ok(r.ok);
  c.deliverAll({ hold: is.type(T.AppResp) });
  assert.equal(c.status('n1').role, 'leader', 'still leading while the removal is uncommitted');
  assert.ok(c.status('n1').commit < r.index);

  c.deliverAll();
  assert.equal(c.status('n1').role, 'follower');
  assert.ok(c.status('n1').commit >= r.index);
  assert.deepEqual(c.status('n1').config, { voters: ['n2', 'n3'], learners: [] });

  c.elect('n2');
  const before = c.sent.length;
  c.tick('n1', 3 * ELECTION_TICKS);
  c.deliverAll();
  assert.ok(!campaigned(c, 'n1', before), 'n1 knows it is no longer a voter');
  assert.equal(c.leader(), 'n2');
  assert.deepEqual(c.violations, []);
});

// Thesis §4.1: single-server changes are safe only one at a time: a leader refuses a second
// change while one is uncommitted.
test('membership: a second change is refused while one is uncommitted', () => {
  const c = new Cluster({ ids: ['n1', 'n2', 'n3', 'n4', 'n5'], voters: ['n1', 'n2', 'n3'] });
  c.elect('n1');
  assert.ok(c.node('n1').proposeConfChange({ type: 'addLearner', node: 'n4' }).ok);
  const second = c.node('n1').proposeConfChange({ type: 'addLearner', node: 'n5' });
  assert.deepEqual(second, {
    ok: false,
    reason: 'busy',
    message: 'another configuration change is in progress',
  });
  c.deliverAll();
  assert.ok(c.node('n1').proposeConfChange({ type: 'addLearner', node: 'n5' }).ok, 'accepted once committed');
  c.deliverAll();
  assert.deepEqual(c.status('n1').config.learners, ['n4', 'n5']);
});

// Ongaro's 2015 erratum to thesis §4.1: a leader may not append a configuration entry until
// it has committed an entry of its own term.
test('membership: a new leader refuses a change until its no-op commits', () => {
  const c = new Cluster({ ids: ['n1', 'n2', 'n3', 'n4'], voters: ['n1', 'n2', 'n3'] });
  c.elect('n1', { hold: is.type(T.AppResp) });
  assert.deepEqual(c.node('n1').proposeConfChange({ type: 'addLearner', node: 'n4' }), {
    ok: false,
    reason: 'busy',
    message: 'leader has not yet committed an entry of its term',
  });
  c.deliverAll();
  assert.ok(c.node('n1').proposeConfChange({ type: 'addLearner', node: 'n4' }).ok);
});

/*
 * The scenario from Ongaro's raft-dev post "bug in single-server membership changes" (2015):
 *   1. S1 (leader of {S1..S4}) starts adding S5; only S5 gets the entry.
 *   2. S2 is elected by S2, S3, S4 (their configuration is still {S1..S4}) and removes S4;
 *      only S3 gets that entry, which is a majority of {S1, S2, S3}: committed.
 *   3. S1 is elected by S1, S4, S5 — a majority of {S1..S5} — and overwrites S2's entries.
 * Our leaders' no-ops shift indexes by one: S1's change is index 3, S2's no-op and removal 3, 4.
 */
function erratumScenario(bugs: InjectedBugs): { c: Cluster; removal: ReturnType<Cluster['propose']> } {
  const c = new Cluster({
    ids: ['s1', 's2', 's3', 's4', 's5'],
    voters: ['s1', 's2', 's3', 's4'],
    options: { bugs },
  });
  c.elect('s1');

  // 1. S1 adds S5; the entry reaches S5 only.
  assert.ok(c.node('s1').proposeConfChange({ type: 'addVoter', node: 's5' }).ok);
  c.deliverAll({ drop: all(is.from('s1'), is.type(T.App), is.to('s2', 's3', 's4')) });
  assert.deepEqual(c.status('s5').config.voters, ['s1', 's2', 's3', 's4', 's5']);
  assert.deepEqual(c.status('s2').config.voters, ['s1', 's2', 's3', 's4']);

  // 2. S2 is elected by S2, S3, S4 in term 3; its entries reach S3 only.
  c.partition(['s1', 's5'], ['s2', 's3', 's4']);
  const s2ReachesOnlyS3 = all(is.from('s2'), is.type(T.App), is.to('s4'));
  c.elect('s2', { drop: s2ReachesOnlyS3 });
  assert.equal(c.status('s2').term, 3);
  const removal = c.node('s2').proposeConfChange({ type: 'removeNode', node: 's4' });
  c.deliverAll({ drop: s2ReachesOnlyS3 });

  // 3. S1 is elected by S1, S4, S5 in term 4 and commits its log.
  c.partition(['s2', 's3'], ['s1', 's4', 's5']);
  c.elect('s1');
  assert.equal(c.status('s1').term, 4);
  assert.deepEqual(c.status('s1').config.voters, ['s1', 's2', 's3', 's4', 's5']);
  assert.deepEqual(c.appliedEntries('s1').slice(2), [
    { index: 3, term: 2, value: 'conf:addVoter s5' },
    { index: 4, term: 4, value: '' },
  ]);
  return { c, removal };
}

test('membership: the 2015 single-server change erratum scenario is safe', () => {
  const { c, removal } = erratumScenario({});
  assert.deepEqual(removal, {
    ok: false,
    reason: 'busy',
    message: 'leader has not yet committed an entry of its term',
  });
  assert.deepEqual(c.appliedEntries('s2').length, 2, 'S2 committed nothing in term 3');

  c.heal();
  c.tick('s1');
  c.deliverAll();
  for (const id of c.ids) assert.deepEqual(c.appliedEntries(id), c.appliedEntries('s1'), id);
  assert.deepEqual(c.status('s2').config.voters, ['s1', 's2', 's3', 's4', 's5']);
  assert.deepEqual(c.violations, []);
});

test('membership: with skipConfChangeErratum the erratum scenario commits two entries at one index', () => {
  const { c, removal } = erratumScenario({ skipConfChangeErratum: true });
  assert.ok(removal.ok, 'the buggy S2 appends the removal before committing its no-op');
  assert.deepEqual(c.appliedEntries('s2').slice(2), [
    { index: 3, term: 3, value: '' },
    { index: 4, term: 3, value: 'conf:removeNode s4' },
  ]);
  assert.deepEqual(c.violations, [
    "index 3: s2 applied t3 '', s1 applied t2 'conf:addVoter s5'",
    "index 4: s2 applied t3 'conf:removeNode s4', s1 applied t4 ''",
  ]);
});
