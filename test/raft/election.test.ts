import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Cluster, ELECTION_TICKS, is, T } from './harness.js';

// §5.2: a candidate that collects votes from a majority becomes leader, and (§8) appends a
// no-op of its term, which commits everywhere.
test('election: a single candidate wins and commits its no-op', () => {
  const c = new Cluster();
  c.elect('n1');

  assert.equal(c.status('n1').role, 'leader');
  assert.equal(c.status('n1').term, 2);
  for (const id of ['n2', 'n3']) {
    assert.equal(c.status(id).role, 'follower');
    assert.equal(c.status(id).leader, 'n1');
    assert.equal(c.status(id).term, 2);
  }
  for (const id of c.ids) {
    assert.deepEqual(c.appliedEntries(id), [
      { index: 1, term: 1, value: 'bootstrap' },
      { index: 2, term: 2, value: '' },
    ]);
  }
  assert.deepEqual(c.violations, []);
});

/** Tick every node in lockstep until a leader emerges; return who won, in which term, after how many ticks. */
function firstElection(seed: number): {
  leader: string;
  term: number;
  ticks: number;
  firstCampaignTick: number;
} {
  const c = new Cluster({ ids: ['n1', 'n2', 'n3', 'n4', 'n5'], seed });
  let firstCampaignTick = 0;
  for (let tick = 1; tick <= 20 * ELECTION_TICKS; tick++) {
    c.tickAll(1);
    if (firstCampaignTick === 0 && c.sent.some(is.type(T.PreVote, T.Vote))) firstCampaignTick = tick;
    const leader = c.leader();
    if (leader !== '') {
      assert.deepEqual(c.violations, []);
      return { leader, term: c.status(leader).term, ticks: tick, firstCampaignTick };
    }
  }
  throw new Error(`seed ${seed}: no leader after ${20 * ELECTION_TICKS} ticks`);
}

// §5.2: election timeouts are chosen at random from [T, 2T) so that split votes are rare;
// the core draws from the shell's seeded generator, so a seed replays the same election.
test('election: randomized timeouts, same seed gives the same result', () => {
  const winners = new Set<string>();
  for (let seed = 1; seed <= 12; seed++) {
    const first = firstElection(seed);
    assert.deepEqual(firstElection(seed), first, `seed ${seed} replays identically`);
    assert.ok(first.firstCampaignTick >= ELECTION_TICKS, `seed ${seed}: no campaign before the timeout`);
    assert.ok(first.firstCampaignTick < 2 * ELECTION_TICKS, `seed ${seed}: someone campaigns before 2T`);
    winners.add(first.leader);
  }
  assert.ok(winners.size > 1, `different seeds elect different servers (got ${[...winners].join(',')})`);
});

// Thesis §9.6: a pre-candidate first asks whether it could win, in the prospective term,
// without anyone (itself included) changing term; only with a majority of pre-votes does it
// start the real election.
test('election: pre-vote, then vote', () => {
  const c = new Cluster();
  c.tickUntilCampaign('n1');

  assert.equal(c.status('n1').role, 'pre-candidate');
  assert.equal(c.status('n1').term, 1, 'a pre-candidate keeps its term');
  assert.deepEqual(
    c.queue.map((m) => [m.type, m.to, m.term]),
    [
      [T.PreVote, 'n2', 2],
      [T.PreVote, 'n3', 2],
    ],
  );

  c.deliver(is.type(T.PreVote));
  for (const id of ['n2', 'n3']) {
    assert.equal(c.status(id).term, 1, `${id} grants a pre-vote without changing term`);
    assert.equal(c.status(id).vote, '', `${id} records no vote for a pre-vote`);
  }
  assert.deepEqual(c.readies('n2').at(-1)?.hardState, undefined, 'nothing to persist for a pre-vote');

  c.deliver(is.type(T.PreVoteResp));
  assert.equal(c.status('n1').role, 'candidate');
  assert.equal(c.status('n1').term, 2);
  assert.equal(c.status('n1').vote, 'n1');
  assert.ok(c.queue.filter(is.from('n1')).every(is.type(T.Vote)));

  c.deliverAll();
  assert.equal(c.leader(), 'n1');
  assert.equal(c.status('n1').term, 2);
  assert.deepEqual(c.violations, []);
});

// §5.1: "If a server receives a request or response with a higher term, it updates its term
// and reverts to follower." Shown with pre-vote and check-quorum off — the plain protocol, in
// which a partitioned server's inflated term disrupts a healthy leader when it returns.
test('election: a higher-term message makes the leader step down', () => {
  const c = new Cluster({ options: { preVote: false, checkQuorum: false } });
  c.elect('n1');
  c.isolate('n3');
  for (let i = 0; i < 3; i++) {
    c.tickUntilCampaign('n3');
    c.deliverAll();
  }
  assert.equal(c.status('n3').term, 5, 'n3 campaigned in terms 3, 4 and 5 alone');
  assert.equal(c.status('n1').role, 'leader');

  c.heal();
  c.tickUntilCampaign('n3'); // its Vote for term 6 reaches the leader
  const toLeader = c.deliver(is.to('n1'));
  assert.ok(toLeader.some(is.type(T.Vote)));
  assert.equal(c.status('n1').role, 'follower');
  assert.equal(c.status('n1').term, 6);

  c.deliverAll();
  assert.deepEqual(c.violations, []);
});
