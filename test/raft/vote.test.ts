import assert from 'node:assert/strict';
import { test } from 'node:test';
import { all, Cluster, ELECTION_TICKS, is, type Message, T } from './harness.js';

/**
 * A cluster whose logs all end at index 4, term 2 (bootstrap, n1's no-op, 'a', 'b'), and whose
 * follower n2 has stopped hearing from the leader, so it will consider a vote request.
 */
function clusterWithLogAt4Term2(): Cluster {
  const c = new Cluster();
  c.elect('n1');
  c.propose('n1', 'a', 'b');
  c.deliverAll();
  assert.deepEqual(c.logTerms('n2'), [1, 2, 2, 2]);
  c.tick('n2', ELECTION_TICKS); // n2's leader lease (thesis §4.2.3) lapses; it does not campaign yet
  return c;
}

function voteRequest(lastIndex: number, lastTerm: number): Message {
  return { type: T.Vote, from: 'n3', to: 'n2', term: 3, index: lastIndex, logTerm: lastTerm };
}

// §5.4.1: a voter refuses a candidate whose log is less up-to-date than its own: compare the
// last entries' terms first; only with equal last terms does the longer log win.
test('vote: a stale log is refused (last term first, then length)', () => {
  const cases: { lastIndex: number; lastTerm: number; granted: boolean; why: string }[] = [
    { lastIndex: 4, lastTerm: 2, granted: true, why: 'same last term, same length' },
    { lastIndex: 5, lastTerm: 2, granted: true, why: 'same last term, longer' },
    { lastIndex: 3, lastTerm: 2, granted: false, why: 'same last term, shorter' },
    { lastIndex: 2, lastTerm: 3, granted: true, why: 'newer last term wins though shorter' },
    { lastIndex: 9, lastTerm: 1, granted: false, why: 'older last term loses though longer' },
  ];
  for (const { lastIndex, lastTerm, granted, why } of cases) {
    const c = clusterWithLogAt4Term2();
    c.inject(voteRequest(lastIndex, lastTerm));
    c.deliver(is.to('n2'));
    const [resp] = c.take(all(is.from('n2'), is.type(T.VoteResp)));
    assert.ok(resp, why);
    assert.equal(!resp.reject, granted, why);
    assert.equal(c.status('n2').vote, granted ? 'n3' : '', why);
  }
});

// The same rule in a run: a follower that missed a committed entry cannot become leader,
// so the entry survives the leader's crash.
test('vote: a follower that missed entries loses; an up-to-date one wins', () => {
  const c = new Cluster();
  c.elect('n1');
  c.propose('n1', 'a');
  c.deliverAll({ drop: is.to('n3') });
  assert.equal(c.status('n1').commit, 3, "'a' is committed by n1 and n2, n3 missed it");
  c.crash('n1');

  c.tick('n2', ELECTION_TICKS); // n2's leader lease lapses, so it will consider n3's request
  c.tickUntilCampaign('n3');
  c.deliverAll();
  const answers = c.sent.filter(all(is.from('n2'), is.to('n3'), is.type(T.PreVoteResp, T.VoteResp)));
  assert.ok(answers.length > 0 && answers.every((m) => m.reject), 'n2 refuses n3: its log lacks index 3');
  assert.notEqual(c.status('n3').role, 'leader');
  assert.equal(c.status('n3').term, 2, 'a refused pre-vote leaves every term unchanged');

  c.elect('n2');
  const votes = c.sent.filter(all(is.from('n3'), is.to('n2'), is.type(T.VoteResp)));
  assert.ok(votes.length > 0 && votes.every((m) => !m.reject), 'n3 votes for the more up-to-date n2');
  assert.deepEqual(c.appliedData('n3'), ['a']);
  assert.deepEqual(c.violations, []);
});

// §5.2: "each server will vote for at most one candidate in a given term, on a
// first-come-first-served basis" — and Figure 2: votedFor is persistent state, so a restart
// does not free the vote. Pre-vote is off so both candidates reach term 2.
test('vote: one vote per term, kept across a restart', () => {
  const c = new Cluster({ options: { preVote: false } });
  c.tickUntilCampaign('n1');
  c.tickUntilCampaign('n2');
  assert.equal(c.status('n1').term, 2);
  assert.equal(c.status('n2').term, 2);

  c.deliver(all(is.from('n1'), is.to('n3')));
  assert.equal(c.status('n3').vote, 'n1');
  assert.deepEqual(c.disk('n3').hardState, { term: 2, vote: 'n1', commit: 1 });

  c.crash('n3');
  c.restart('n3');
  c.deliver(all(is.from('n2'), is.to('n3')));
  const answers = c.take(all(is.from('n3'), is.type(T.VoteResp)));
  assert.deepEqual(
    answers.map((m) => [m.to, m.reject ?? false]),
    [
      ['n1', false],
      ['n2', true],
    ],
    'n3 granted n1 first, then refused n2 in the same term (even after restarting)',
  );

  // A repeated request from the candidate it voted for is granted again (the answer may have been lost).
  c.inject({ type: T.Vote, from: 'n1', to: 'n3', term: 2, index: 1, logTerm: 1 });
  c.deliver(is.to('n3'));
  const [again] = c.take(all(is.from('n3'), is.type(T.VoteResp)));
  assert.equal(again?.reject, undefined);
  assert.deepEqual(c.violations, []);
});

// Figure 2: "Respond to RPCs only after updating stable storage". The Ready that carries a
// granted VoteResp must carry the HardState recording that vote, so the shell persists it first.
test('vote: the vote is in the same Ready as the VoteResp that reveals it', () => {
  const c = new Cluster();
  c.elect('n1');
  for (const id of ['n2', 'n3']) {
    const rd = c.readies(id).find((r) => r.messages.some(all(is.type(T.VoteResp), is.to('n1'))));
    assert.ok(rd, `${id} answered n1's vote request`);
    assert.deepEqual(rd.hardState, { term: 2, vote: 'n1', commit: 1 });
    assert.equal(c.disk(id).hardState.vote, 'n1');
  }
  // The harness checks the same rule on every message it releases (and for appends acknowledged).
  assert.deepEqual(c.violations, []);
});
