import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { InjectedBugs } from '../../src/raft/node.js';
import { all, any, Cluster, is, type Message, T } from './harness.js';

/*
 * Figure 8 of the Raft paper (§5.4.2), step by step. Our logs start with the bootstrap entry at
 * index 1, term 1 (the paper's index 1), and every new leader appends a no-op; the paper's
 * "entry of term 2 at index 2" is here S1's no-op (index 2) followed by its command 'x-term-2'
 * (index 3). Appends carry at most 4 bytes of commands, so an 8-byte command travels alone:
 * that lets S1 hand S3 its old entries without its new one, as in the figure.
 */

const S = ['s1', 's2', 's3', 's4', 's5'];

/** Steps (a) to (c). Returns the cluster with S1 (leader in term 4) just crashed. */
function figure8UpToC(bugs: InjectedBugs): Cluster {
  const c = new Cluster({ ids: S, options: { maxAppendBytes: 4, bugs } });

  // (a) S1 is leader in term 2 and replicates its entries to S2 only.
  const s1ReachesOnlyS2 = all(is.from('s1'), is.type(T.App), is.to('s3', 's4', 's5'));
  c.elect('s1', { drop: s1ReachesOnlyS2 });
  c.propose('s1', 'x-term-2');
  c.deliverAll({ drop: s1ReachesOnlyS2 });
  assert.deepEqual(c.logTerms('s2'), [1, 2, 2]);
  assert.equal(c.status('s1').commit, 1);
  c.crash('s1');

  // (b) S5 is elected in term 3 with votes from S3, S4 and itself (S2's log is newer than its),
  //     and accepts a different entry at index 3 — which reaches no one else.
  const s5ReachesNoOne = all(is.from('s5'), is.type(T.App));
  c.elect('s5', { drop: s5ReachesNoOne });
  assert.equal(c.status('s5').term, 3);
  assert.ok(
    c.sent.some((m) => m.type === T.VoteResp && m.from === 's2' && m.to === 's5' && m.reject),
    'S2 refused S5',
  );
  c.propose('s5', 'y-term-3');
  c.deliverAll({ drop: s5ReachesNoOne });
  assert.deepEqual(c.logTerms('s5'), [1, 3, 3]);
  c.crash('s5');

  // (c) S1 restarts, is elected in term 4, and replicates its term-2 entries to S3: now they
  //     are stored on a majority (S1, S2, S3). Its own term-4 no-op reaches only S2, whose
  //     acknowledgement is delayed until S3 has index 3. Then S1 crashes before any message
  //     announcing a commit leaves it.
  c.restart('s1');
  const s3WouldStoreTerm4 = (m: Message): boolean =>
    m.to === 's3' && is.carriesTerm(4)(m) && c.node('s3').logView().term(m.index!) === m.logTerm;
  const phaseC = all(
    is.from('s1'),
    any(
      all(is.type(T.App), is.to('s4', 's5')),
      s3WouldStoreTerm4,
      (m) => (m.commit ?? 0) > 1, // S1 "crashes" before telling anyone it committed anything
    ),
  );
  c.elect('s1', { drop: phaseC, hold: all(is.from('s2'), is.type(T.AppResp)) });
  assert.equal(c.status('s1').term, 4);
  assert.deepEqual(c.logTerms('s3'), [1, 2, 2], 'index 3 is on S1, S2 and S3: a majority');
  c.deliverAll({ drop: phaseC }); // S2's acknowledgement of index 4 arrives
  assert.deepEqual(c.logTerms('s1'), [1, 2, 2, 4]);
  assert.deepEqual(c.logTerms('s2'), [1, 2, 2, 4]);
  assert.deepEqual(c.logTerms('s3'), [1, 2, 2]);
  assert.deepEqual(c.logTerms('s4'), [1]);
  return c;
}

/** Step (d): S5 restarts and is elected in term 5 with votes from S3 and S4, then replicates. */
function figure8D(c: Cluster): void {
  c.crash('s1');
  c.restart('s5');
  c.elect('s5');
  assert.equal(c.status('s5').term, 5);
}

test('figure 8: an old-term entry on a majority is not committed by counting replicas', () => {
  const c = figure8UpToC({});
  assert.equal(c.status('s1').commit, 1, "S1 does not commit index 3: it is from term 2, not S1's term 4");
  assert.deepEqual(c.appliedData('s1'), []);

  figure8D(c);
  // S5 overwrites index 2 and 3 everywhere it reaches — legitimately, nothing there was committed.
  assert.deepEqual(c.logValues('s3'), ['bootstrap', '', 'y-term-3', '']);
  assert.deepEqual(c.logTerms('s2'), [1, 3, 3, 5]);

  c.restart('s1');
  c.tick('s5');
  c.deliverAll();
  for (const id of S) {
    assert.deepEqual(c.logTerms(id), [1, 3, 3, 5], `${id}'s log`);
    assert.deepEqual(c.appliedData(id), ['y-term-3'], `${id} applied`);
  }
  assert.deepEqual(c.violations, []);
});

test('figure 8 with commitOldTermByCount: two servers apply different entries at one index', () => {
  const c = figure8UpToC({ commitOldTermByCount: true });
  assert.equal(c.status('s1').commit, 3, 'the buggy S1 commits index 3 because three servers store it');
  assert.deepEqual(c.appliedData('s1'), ['x-term-2']);

  figure8D(c);
  assert.deepEqual(c.appliedData('s5'), ['y-term-3']);
  assert.deepEqual(c.violations, [
    "index 2: s1 applied t2 '', s5 applied t3 ''",
    "index 3: s1 applied t2 'x-term-2', s5 applied t3 'y-term-3'",
  ]);

  // S1 can never catch up either: it answers from its commit index 3 (a committed prefix must
  // match any leader's), the leader believes it, and S1 keeps 'x-term-2' at index 3 forever.
  c.restart('s1');
  c.tick('s5');
  c.tick('s5');
  c.deliverAll();
  assert.deepEqual(c.logValues('s1'), ['bootstrap', '', 'x-term-2', '']);
  assert.notDeepEqual(c.logTerms('s1'), c.logTerms('s5'));
});

// Figure 8 (e): had S1 replicated an entry of its own term to a majority before crashing,
// that entry — and the term-2 entries before it — would be committed, and S5 could not win.
test('figure 8 (e): once an entry of the current term is on a majority, S5 cannot be elected', () => {
  const c = new Cluster({ ids: S, options: { maxAppendBytes: 4 } });
  const s1ReachesOnlyS2 = all(is.from('s1'), is.type(T.App), is.to('s3', 's4', 's5'));
  c.elect('s1', { drop: s1ReachesOnlyS2 });
  c.propose('s1', 'x-term-2');
  c.deliverAll({ drop: s1ReachesOnlyS2 });
  c.crash('s1');
  const s5ReachesNoOne = all(is.from('s5'), is.type(T.App));
  c.elect('s5', { drop: s5ReachesNoOne });
  c.propose('s5', 'y-term-3');
  c.deliverAll({ drop: s5ReachesNoOne });
  c.crash('s5');

  c.restart('s1');
  c.elect('s1', { drop: all(is.from('s1'), is.to('s4', 's5')) });
  assert.equal(c.status('s1').commit, 4, 'index 4 (term 4) on S1, S2, S3 commits 2..4');
  c.crash('s1');
  c.restart('s5');
  assert.throws(() => c.elect('s5'), /not leader/);
  c.elect('s3');
  for (const id of ['s2', 's3', 's4', 's5']) assert.deepEqual(c.appliedData(id), ['x-term-2'], id);
  assert.deepEqual(c.violations, []);
});
