import assert from 'node:assert/strict';
import { test } from 'node:test';
import { all, Cluster, ELECTION_TICKS, is, T } from './harness.js';

/** Tick the isolated leader alone until it is no longer leader; return how many ticks that took. */
function ticksUntilStepDown(c: Cluster, id: string, limit: number): number {
  for (let t = 1; t <= limit; t++) {
    c.tick(id);
    c.deliverAll();
    if (c.status(id).role !== 'leader') return t;
  }
  return Number.POSITIVE_INFINITY;
}

// Thesis §6.2 (check-quorum): a leader that has not heard from a majority within an election
// timeout steps down, so clients stop talking to it. The check runs every election timeout and
// the first one after the cut may still see the old acknowledgements: at most two timeouts.
test('check-quorum: a leader cut off from the majority steps down within two election timeouts', () => {
  const c = new Cluster({ ids: ['n1', 'n2', 'n3', 'n4', 'n5'] });
  c.elect('n1');
  c.partition(['n1', 'n2'], ['n3', 'n4', 'n5']);

  const ticks = ticksUntilStepDown(c, 'n1', 10 * ELECTION_TICKS);
  assert.ok(ticks <= 2 * ELECTION_TICKS, `stepped down after ${ticks} ticks`);
  assert.equal(c.status('n1').role, 'follower');
  assert.equal(c.status('n1').term, 2, 'stepping down does not change the term');

  c.elect('n3');
  assert.equal(c.status('n3').term, 3);
  assert.deepEqual(c.violations, []);
});

test('check-quorum: without it, a cut-off leader keeps believing it leads', () => {
  const c = new Cluster({ options: { checkQuorum: false } });
  c.elect('n1');
  c.isolate('n1');
  assert.equal(ticksUntilStepDown(c, 'n1', 10 * ELECTION_TICKS), Number.POSITIVE_INFINITY);
});

// Thesis §9.6 + §4.2.3: an isolated server keeps timing out, but as a pre-candidate it never
// raises its term; when it comes back, servers that hear from the leader ignore its pre-votes
// (leader lease), so the healthy leader stays.
test('check-quorum: a returning isolated node cannot disrupt a healthy leader', () => {
  const c = new Cluster();
  c.elect('n1');
  c.isolate('n3');
  c.tickAll(5 * ELECTION_TICKS);
  const preVotes = c.sent.filter(all(is.from('n3'), is.type(T.PreVote)));
  assert.ok(preVotes.length >= 3, `n3 kept pre-voting while isolated (${preVotes.length} requests)`);
  assert.ok(!c.sent.some(all(is.from('n3'), is.type(T.Vote))), 'but never started a real election');
  assert.equal(c.status('n3').term, 2, 'its term did not rise');

  c.heal();
  c.tickUntilCampaign('n3');
  const delivered = c.deliverAll();
  assert.ok(delivered.some(all(is.from('n3'), is.type(T.PreVote))), 'its pre-votes reach n1 and n2');
  assert.ok(!delivered.some(is.type(T.PreVoteResp)), 'which ignore them: they heard from n1 recently');

  c.tickAll(1);
  for (const id of c.ids) assert.equal(c.status(id).term, 2, `${id} is still in term 2`);
  assert.equal(c.status('n1').role, 'leader');
  assert.equal(c.status('n3').role, 'follower');
  assert.equal(c.status('n3').leader, 'n1');
  assert.deepEqual(c.violations, []);
});
