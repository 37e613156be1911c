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

// Thesis §3.10: the leader stops taking client requests so the target's log stays as long as
// its own until the target's election. The abort timer used to run from the start of the
// transfer, so a target caught up late in that window got TimeoutNow just before the leader
// resumed writes; the target then campaigned with a log the others no longer found up to date,
// deposed the leader for nothing and lost. Its election gets a full election timeout.
test('transfer: a target caught up late still wins: the leader takes no writes for an election timeout after TimeoutNow', () => {
  const c = new Cluster();
  c.elect('n1');
  c.propose('n1', 'a');
  c.deliverAll({ drop: is.to('n3') });
  assert.ok(c.node('n1').transferLeadership('n3').ok);

  // n3 is slow: nothing reaches it until the last tick of the leader's election timeout.
  for (let t = 1; t < ELECTION_TICKS; t++) {
    c.tick('n1');
    c.deliverAll({ hold: is.to('n3') });
  }
  c.deliverAll({ hold: is.type(T.TimeoutNow) });
  assert.equal(
    c.queue.filter(all(is.type(T.TimeoutNow), is.to('n3'))).length,
    1,
    'caught up: TimeoutNow sent',
  );

  // The leader's election timeout (counted from the transfer's start) passes before n3 campaigns.
  c.tick('n1');
  c.deliverAll({ hold: is.to('n3') });
  assert.equal(c.status('n1').leadTransferee, 'n3', 'the transfer waits for the election TimeoutNow started');
  assert.equal(c.propose('n1', 'b').ok, false);

  c.deliverAll();
  assert.equal(c.leader(), 'n3');
  assert.ok(c.propose('n3', 'c').ok);
  c.deliverAll();
  assert.deepEqual(c.appliedData('n1'), ['a', 'c']);
  assert.deepEqual(c.violations, []);
});

test('transfer: a TimeoutNow that is lost still ends the transfer an election timeout later', () => {
  const c = new Cluster();
  c.elect('n1');
  assert.ok(c.node('n1').transferLeadership('n3').ok);
  c.deliverAll({ drop: is.type(T.TimeoutNow) });
  for (let t = 1; t < ELECTION_TICKS; t++) {
    c.tick('n1');
    c.deliverAll();
    assert.equal(c.status('n1').leadTransferee, 'n3', `still transferring after ${t} ticks`);
  }
  c.tick('n1');
  c.deliverAll();
  assert.equal(c.status('n1').leadTransferee, '', 'aborted after one election timeout');
  assert.equal(c.status('n1').role, 'leader');
  assert.ok(c.propose('n1', 'x').ok);
});
