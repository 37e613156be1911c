import assert from 'node:assert/strict';
import { test } from 'node:test';
import { all, Cluster, ELECTION_TICKS, is, T } from './harness.js';

// Thesis §3.10: the leader stops accepting proposals, brings the target's log up to date,
// then sends it TimeoutNow; the target campaigns at once — a real vote, no pre-vote, flagged so
// that voters in their leader lease still answer — and wins.
test('transfer: a lagging target is caught up, then TimeoutNow makes it leader', () => {
  const c = new Cluster();
  c.elect('n1');
  c.propose('n1', 'a', 'b');
  c.deliverAll({ drop: is.to('n3') });
  assert.equal(c.status('n3').lastIndex, 2, 'n3 lags: it misses a and b');

  assert.deepEqual(c.node('n1').transferLeadership('n3'), { ok: true, message: 'transfer started' });
  assert.deepEqual(c.propose('n1', 'refused'), {
    ok: false,
    reason: 'transferring',
    message: 'leadership transfer in progress',
  });
  c.flush('n1');
  assert.ok(!c.queue.some(is.type(T.TimeoutNow)), 'no TimeoutNow before n3 is caught up');

  const delivered = c.deliverAll();
  const caughtUp = delivered.findIndex(
    all(is.type(T.AppResp), is.from('n3'), (m) => m.index === 4 && !m.reject),
  );
  const timeoutNow = delivered.findIndex(all(is.type(T.TimeoutNow), is.to('n3')));
  assert.ok(caughtUp >= 0 && timeoutNow > caughtUp, 'TimeoutNow follows the catch-up');
  const campaign = delivered.filter(all(is.from('n3'), is.type(T.PreVote, T.Vote)));
  assert.ok(campaign.length > 0 && campaign.every((m) => m.type === T.Vote && m.transfer === true));

  assert.equal(c.leader(), 'n3');
  assert.equal(c.status('n3').term, 3);
  assert.equal(c.status('n1').role, 'follower');
  assert.ok(c.propose('n3', 'c').ok);
  c.deliverAll();
  assert.deepEqual(c.appliedData('n1'), ['a', 'b', 'c']);
  assert.deepEqual(c.violations, []);
});

// Thesis §3.10: "If the transfer does not complete within an election timeout, the prior
// leader aborts the transfer and resumes accepting client requests."
test('transfer: a transfer to a dead node times out after an election timeout; the leader keeps leading', () => {
  const c = new Cluster();
  c.elect('n1');
  c.crash('n3');
  assert.ok(c.node('n1').transferLeadership('n3').ok);

  for (let t = 1; t < ELECTION_TICKS; t++) {
    c.tick('n1');
    c.deliverAll();
    assert.equal(c.status('n1').leadTransferee, 'n3', `still transferring after ${t} ticks`);
    assert.equal(c.propose('n1', 'x').ok, false);
  }
  c.tick('n1');
  c.deliverAll();
  assert.equal(c.status('n1').leadTransferee, '', 'aborted after one election timeout');
  assert.equal(c.status('n1').role, 'leader');
  assert.ok(c.propose('n1', 'x').ok);
  c.deliverAll();
  assert.deepEqual(c.appliedData('n2'), ['x']);
});
