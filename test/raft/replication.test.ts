import assert from 'node:assert/strict';
import { test } from 'node:test';
import { all, Cluster, is, type Message, T } from './harness.js';

const rejectedAppends = (msgs: Message[], from: string): number =>
  msgs.filter(all(is.from(from), is.type(T.AppResp), (m) => m.reject === true)).length;

function values(prefix: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix}${i + 1}`);
}

// §5.3 + thesis §5.3 / etcd-io/raft: when an append is rejected, the follower points the
// leader at the last index whose term is not newer than the probe's, and the leader skips a
// whole term at a time — one round trip per divergent term, not one per divergent entry.
test('replication: a diverged follower catches up with fast backtracking', () => {
  const c = new Cluster();
  c.elect('n1');
  c.isolate('n1');
  c.propose('n1', ...values('old', 30)); // indexes 3..32 in term 2: never leave n1
  c.deliverAll();

  c.elect('n2'); // term 3, no-op at 3
  c.propose('n2', ...values('new', 30)); // 4..33, committed by n2 and n3
  c.deliverAll();
  // n3 becomes leader in term 4 with every index up to 33, so it starts probing n1 at 33.
  c.crash('n2');
  c.restart('n2');
  c.elect('n3');
  assert.equal(c.status('n3').term, 4);

  c.heal();
  const before = c.delivered.length;
  c.tick('n3'); // heartbeat
  c.deliverAll();
  const rejections = rejectedAppends(c.delivered.slice(before), 'n1');
  // One rejection: n1's hint (index 32, term 2) lets n3 skip straight past all of term 3.
  assert.equal(rejections, 1, `${rejections} rejected appends for 30 divergent entries`);

  assert.deepEqual(c.logTerms('n1'), c.logTerms('n3'));
  assert.deepEqual(c.appliedData('n1'), values('new', 30));
  assert.deepEqual(c.violations, []);
});

// A follower that was down just lags: one rejection tells the leader where its log ends.
test('replication: a restarted lagging follower catches up in one probe', () => {
  const c = new Cluster();
  c.elect('n1');
  c.crash('n3');
  for (const v of values('w', 20)) {
    c.propose('n1', v);
    c.deliverAll();
  }
  c.restart('n3');
  const before = c.delivered.length;
  c.tick('n1');
  c.deliverAll();
  assert.ok(rejectedAppends(c.delivered.slice(before), 'n3') <= 1);
  assert.deepEqual(c.appliedData('n3'), values('w', 20));
  assert.deepEqual(c.violations, []);
});

// Figure 2, AppendEntries receiver step 3: "If an existing entry conflicts with a new one (same
// index but different terms), delete the existing entry and all that follow it" — only
// uncommitted entries can conflict (Log Matching + Leader Completeness).
test('replication: a conflicting uncommitted suffix is truncated and replaced', () => {
  const c = new Cluster();
  c.elect('n1');
  c.isolate('n1');
  c.propose('n1', 'x', 'y', 'z');
  c.deliverAll();
  assert.deepEqual(c.logValues('n1'), ['bootstrap', '', 'x', 'y', 'z']);
  assert.deepEqual(c.logTerms('n1'), [1, 2, 2, 2, 2]);

  c.elect('n2');
  c.propose('n2', 'p');
  c.deliverAll();
  c.heal();
  c.tick('n2');
  c.deliverAll();

  assert.equal(c.status('n1').role, 'follower', 'the old leader learned of term 3');
  assert.deepEqual(c.logValues('n1'), ['bootstrap', '', '', 'p']);
  assert.deepEqual(c.logTerms('n1'), [1, 2, 3, 3]);
  assert.deepEqual(
    c.disk('n1').entries.map((e) => e.term),
    [1, 2, 3, 3],
    'the disk was truncated too',
  );
  assert.deepEqual(c.appliedData('n1'), ['p'], "'x', 'y', 'z' were never applied");
  assert.deepEqual(c.violations, []);
});

/** Appends from `leader` to `follower` carrying entries that `leader` has not seen acknowledged. */
function unacknowledgedAppends(c: Cluster, leader: string, follower: string): number {
  let acked = 0;
  for (const m of c.delivered) {
    if (m.type === T.AppResp && m.from === follower && m.to === leader && !m.reject)
      acked = Math.max(acked, m.index ?? 0);
  }
  return c.sent.filter(
    (m) =>
      m.type === T.App && m.from === leader && m.to === follower && (m.entries?.at(-1)?.index ?? 0) > acked,
  ).length;
}

// Thesis §10.2.2 / etcd-io/raft's Inflights: in the replicate state the leader pipelines
// appends, but never more than maxInflightMessages unacknowledged ones to one follower.
test('replication: flow control keeps at most maxInflightMessages appends unacknowledged', () => {
  // maxAppendBytes 1: each one-byte command travels in its own append.
  const c = new Cluster({ options: { maxInflightMessages: 2, maxAppendBytes: 1 } });
  c.elect('n1');
  const toN3 = all(is.from('n1'), is.to('n3'), is.type(T.App), (m) => (m.entries?.length ?? 0) > 0);
  const sentBefore = c.sent.length;
  const lostToN3 = is.to('n3'); // n3 stops answering: every append to it is lost

  c.propose('n1', ...values('', 10));
  c.flush('n1');
  assert.equal(c.queue.filter(all(is.to('n2'), is.type(T.App))).length, 2, 'window of 2 to n2');
  assert.equal(c.queue.filter(toN3).length, 2, 'window of 2 to n3');

  let maxOutstanding = 0;
  for (let n = 0; c.queue.length > 0; n++) {
    assert.ok(n < 1000);
    c.deliverNext({ drop: lostToN3 });
    const outstanding = unacknowledgedAppends(c, 'n1', 'n2');
    assert.ok(outstanding <= 2, `after delivery ${n}: ${outstanding} appends unacknowledged by n2`);
    maxOutstanding = Math.max(maxOutstanding, outstanding);
  }
  assert.equal(maxOutstanding, 2, 'the window was used');
  assert.equal(c.status('n2').commit, 12, 'n2 got all ten');

  c.propose('n1', ...values('more', 5));
  c.deliverAll({ drop: lostToN3 });
  assert.equal(
    c.sent.slice(sentBefore).filter(toN3).length,
    2,
    'n3 never acknowledged: after two appends the leader sent it nothing more',
  );
  assert.deepEqual(c.violations, []);
});

// etcd-io/raft batches everything proposed between two Readys: the leader persists the
// entries in one write and sends them to each follower in one append.
test('replication: proposals made in one turn go out in one append', () => {
  const c = new Cluster();
  c.elect('n1');
  c.propose('n1', 'a');
  c.propose('n1', 'b');
  c.propose('n1', 'c');
  c.flush('n1');

  assert.deepEqual(
    c
      .readies('n1')
      .at(-1)
      ?.entries.map((e) => e.index),
    [3, 4, 5],
  );
  const appends = c.queue.filter(all(is.from('n1'), is.type(T.App)));
  assert.deepEqual(
    appends.map((m) => [m.to, m.entries?.map((e) => e.index)]),
    [
      ['n2', [3, 4, 5]],
      ['n3', [3, 4, 5]],
    ],
  );
  c.deliverAll();
  assert.deepEqual(c.appliedData('n3'), ['a', 'b', 'c']);
});

// A lone write in a steady cluster: the entry goes out and is acknowledged, then an empty
// append carries the new commit index. That one needs no answer (replicate state: nothing is in
// flight or paused), and followers give none; every follower still applies the entry.
test('replication: commit-only appends are not answered, and followers still apply', () => {
  const c = new Cluster();
  c.elect('n1');
  c.propose('n1', 'warm');
  c.deliverAll();
  const before = c.delivered.length;
  c.propose('n1', 'x');
  c.deliverAll();
  const msgs = c.delivered.slice(before);
  const appends = msgs.filter(all(is.from('n1'), is.type(T.App)));
  const commitOnly = appends.filter((m) => m.commitOnly === true);
  assert.equal(commitOnly.length, 2, 'one commit-only append per follower');
  assert.ok(commitOnly.every((m) => (m.entries?.length ?? 0) === 0));
  const answers = msgs.filter(is.type(T.AppResp));
  assert.equal(answers.length, 2, 'only the appends that carried the entry are answered');
  for (const id of ['n2', 'n3']) assert.deepEqual(c.appliedData(id), ['warm', 'x']);
  assert.deepEqual(c.violations, []);
});
