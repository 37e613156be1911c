import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { InjectedBugs } from '../../src/raft/node.js';
import { all, Cluster, ELECTION_TICKS, is, T } from './harness.js';

// Thesis §6.4: the leader records its commit index as the read index, then confirms it is
// still leader with a round of heartbeats; only once a majority acknowledged that round may
// the read be served.
test('read index: the leader answers only after a majority acknowledged a heartbeat round', () => {
  const c = new Cluster();
  c.elect('n1');
  c.node('n1').readIndex('r1');
  c.flush('n1');
  assert.deepEqual(c.readStates('n1'), []);
  assert.deepEqual(
    c.queue.map((m) => [m.type, m.to, m.readSeq]),
    [
      [T.Heartbeat, 'n2', 1],
      [T.Heartbeat, 'n3', 1],
    ],
  );

  c.deliver(is.type(T.Heartbeat));
  assert.deepEqual(c.readStates('n1'), [], 'no answer while the acknowledgements are on the wire');

  c.deliver(all(is.type(T.HeartbeatResp), is.from('n2')));
  assert.deepEqual(c.readStates('n1'), [{ context: 'r1', index: 2 }], 'n1 + n2 are a majority');
});

// A leader that has lost the majority must not answer: it cannot know whether a newer leader
// committed writes it has not seen. When check-quorum makes it step down, the read fails.
test('read index: a leader cut off from the majority never answers, and fails the read when it steps down', () => {
  const c = new Cluster();
  c.elect('n1');
  c.isolate('n1');
  c.node('n1').readIndex('r1');
  for (let t = 0; t < 3 * ELECTION_TICKS && c.status('n1').role === 'leader'; t++) {
    c.tick('n1');
    c.deliverAll();
    assert.deepEqual(c.readStates('n1'), []);
  }
  assert.equal(c.status('n1').role, 'follower');
  assert.deepEqual(c.readStates('n1'), []);
  assert.deepEqual(c.readFailures('n1'), [{ context: 'r1', reason: 'not-leader' }]);
});

// Thesis §6.4: a follower asks the leader for the read index, then waits until it has applied
// that far — the leader's commit index, which may be ahead of the follower's own.
test("read index: a follower's forwarded read returns the leader's commit index", () => {
  const c = new Cluster();
  c.elect('n1');
  c.propose('n1', 'a');
  c.deliverAll({ drop: is.to('n2') });
  assert.equal(c.status('n1').commit, 3);
  assert.equal(c.status('n2').commit, 2, 'n2 has not heard of a yet');

  c.node('n2').readIndex('f1');
  const delivered = c.deliverAll();
  assert.ok(delivered.some(all(is.type(T.ReadIndex), is.from('n2'), is.to('n1'))));
  assert.ok(delivered.some(all(is.type(T.ReadIndexResp), is.from('n1'), is.to('n2'))));
  assert.deepEqual(c.readStates('n2'), [{ context: 'f1', index: 3 }]);
  assert.deepEqual(c.appliedData('n2'), ['a'], 'n2 may serve the read once it applied index 3');
});

// Thesis §6.4 step 1: a new leader does not know the commit index until it commits an entry
// of its own term (its no-op), so reads wait for that first.
test('read index: a new leader defers reads until its no-op is committed', () => {
  const c = new Cluster();
  c.elect('n1', { hold: is.type(T.AppResp) });
  assert.equal(c.status('n1').commit, 1, 'the no-op at index 2 is not committed yet');

  c.node('n1').readIndex('r1');
  c.flush('n1');
  assert.ok(!c.queue.some(is.type(T.Heartbeat)), 'no heartbeat round yet');
  c.deliverAll({ hold: is.type(T.AppResp) });
  assert.deepEqual(c.readStates('n1'), []);

  c.deliverAll();
  assert.deepEqual(c.readStates('n1'), [{ context: 'r1', index: 2 }]);
});

/** n1 is cut off as leader of term 2; n2 leads term 3 and commits 'w'; then n1 is asked for a read. */
function readAtOldLeader(bugs: InjectedBugs): { c: Cluster; writeIndex: number } {
  const c = new Cluster({ options: { bugs } });
  c.elect('n1');
  c.isolate('n1');
  c.elect('n2');
  const w = c.propose('n2', 'w');
  c.deliverAll();
  assert.ok(w.ok && c.status('n2').commit === w.index);
  assert.equal(c.status('n1').role, 'leader', 'n1 has not noticed yet');

  c.node('n1').readIndex('after-w');
  c.tick('n1');
  c.deliverAll();
  return { c, writeIndex: w.index };
}

test('read index: an isolated old leader does not answer a read that began after a newer write', () => {
  const { c } = readAtOldLeader({});
  assert.deepEqual(c.readStates('n1'), []);
  c.tick('n1', 2 * ELECTION_TICKS);
  c.deliverAll();
  assert.equal(c.status('n1').role, 'follower');
  assert.deepEqual(c.readStates('n1'), []);
  assert.deepEqual(c.readFailures('n1'), [{ context: 'after-w', reason: 'not-leader' }]);
});

test('read index: with readWithoutQuorumCheck an isolated old leader serves a stale read', () => {
  const { c, writeIndex } = readAtOldLeader({ readWithoutQuorumCheck: true });
  assert.deepEqual(
    c.readStates('n1'),
    [{ context: 'after-w', index: 2 }],
    'answered at once from its own commit index',
  );
  assert.ok(2 < writeIndex);
  assert.deepEqual(c.appliedData('n1'), [], "the state it serves from lacks 'w': a stale read");
  assert.deepEqual(c.appliedData('n2'), ['w']);
});

// Thesis §6.4.1: a lease lets the leader answer without a heartbeat round, but only until
// (start of its last majority-acknowledged heartbeat round) + election timeout — the earliest
// moment followers may elect someone else. A leader that relied on check-quorum alone would
// answer for up to two election timeouts after its last quorum contact (etcd-io/raft#166). Clocks here advance in
// perfect lockstep, so the RaftOptions doc's assumptions hold.
test('read index: lease reads stop before followers can elect a new leader', () => {
  // n3's longer timeout keeps n2 and n3 from splitting the vote.
  const c = new Cluster({ options: { readMode: 'lease' }, timeoutFractions: { n3: 0.9 } });
  c.elect('n1');
  c.tickAll(ELECTION_TICKS); // the check-quorum round ends; its heartbeats are acknowledged
  c.isolate('n1');

  let write: { index: number; round: number } | null = null;
  const staleReads: string[] = [];
  for (let round = 1; round <= 3 * ELECTION_TICKS; round++) {
    c.tickAll(1);
    const newLeader = ['n2', 'n3'].find((id) => c.status(id).role === 'leader');
    if (newLeader && !write) {
      const w = c.propose(newLeader, 'w');
      c.deliverAll();
      assert.ok(w.ok && c.status(newLeader).commit >= w.index);
      write = { index: w.index, round };
    }
    if (write && c.status('n1').role === 'leader') {
      c.node('n1').readIndex(`r${round}`);
      c.flush('n1');
      for (const rs of c.readStates('n1')) {
        if (rs.context === `r${round}` && rs.index < write.index) {
          staleReads.push(`round ${round}: n1 served index ${rs.index}; 'w' committed at ${write.index}`);
        }
      }
    }
  }
  assert.ok(write, 'n2 or n3 was elected and committed a write');
  assert.deepEqual(staleReads, []);
});

// Thesis §3.10: a transfer's target campaigns at once and voters grant it their vote inside
// the old leader's lease. Once the leader has sent TimeoutNow, a new leader may exist before the
// lease runs out, so the old leader must not answer reads from its lease any more (found by the
// simulator in lease mode: seed 29, 7 voters).
test('read index: a leader that sent TimeoutNow serves no more lease reads in its term', () => {
  const c = new Cluster({ options: { readMode: 'lease' } });
  c.elect('n1');
  c.tickAll(ELECTION_TICKS); // a majority-acknowledged heartbeat round: the lease is valid
  c.node('n1').readIndex('before');
  c.flush('n1');
  assert.ok(
    c.readStates('n1').some((rs) => rs.context === 'before'),
    'served from the lease before the transfer',
  );
  assert.equal(c.node('n1').transferLeadership('n2').ok, true);
  c.flush('n1');
  assert.ok(c.take(is.type(T.TimeoutNow)).length === 1, 'n2 was told to campaign');
  // TimeoutNow is lost: n1 still leads, but its lease no longer counts.
  c.node('n1').readIndex('after');
  c.flush('n1');
  assert.ok(!c.readStates('n1').some((rs) => rs.context === 'after'), 'not served without a heartbeat round');
  c.deliverAll();
  assert.ok(
    c.readStates('n1').some((rs) => rs.context === 'after'),
    'served once a majority answered',
  );
});

// A follower forwards a read to the server it believes leads; if that server is no longer
// leader when the request arrives, node.ts's stepFollower says "tell the reader to retry" but
// drops the request silently, and no ReadFailure (the 'dropped' reason is never produced)
// reaches the follower's reader: the read hangs until the shell times it out.
test('read index: a read forwarded to a server that is no longer leader fails back to the follower', () => {
  const c = new Cluster();
  c.elect('n1');
  c.node('n2').readIndex('f1');
  c.flush('n2');
  const [forwarded] = c.take(is.type(T.ReadIndex));
  assert.ok(forwarded);

  c.isolate('n1');
  c.tick('n1', 2 * ELECTION_TICKS);
  c.deliverAll();
  assert.equal(c.status('n1').role, 'follower', 'n1 stepped down (check-quorum), still in term 2');
  c.heal();
  c.inject(forwarded); // the forwarded read arrives late
  c.deliverAll();

  const outcome = [...c.readStates('n2'), ...c.readFailures('n2')].filter((r) => r.context === 'f1');
  assert.equal(outcome.length, 1, 'n2 learns that read f1 was answered or failed');
});
