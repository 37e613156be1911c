import assert from 'node:assert/strict';
import { mock, test } from 'node:test';
import { type Message, MessageType } from '../../src/raft/types.js';
import { CommitNotices } from '../../src/server/commit-notices.js';

const notice = (to: string, commit: number, term = 2): Message => ({
  type: MessageType.App,
  from: 'n1',
  to,
  term,
  index: commit,
  logTerm: term,
  entries: [],
  commit,
  commitOnly: true,
});
const append = (to: string, commit: number, term = 2): Message => {
  const { commitOnly: _, ...m } = notice(to, commit, term);
  return { ...m, entries: [{ term, index: commit + 1, type: 0, data: new Uint8Array([1]) }] };
};
const heartbeat = (to: string, commit: number): Message => ({
  type: MessageType.Heartbeat,
  from: 'n1',
  to,
  term: 2,
  commit,
  readSeq: 7,
});

function withTimers(body: (sent: Message[], notices: CommitNotices) => void): void {
  mock.timers.enable({ apis: ['setTimeout'] });
  try {
    const sent: Message[] = [];
    body(sent, new CommitNotices((m) => sent.push(m), 2));
  } finally {
    mock.timers.reset();
  }
}

test('a commit notice nothing supersedes goes out once the hold time has passed', () => {
  withTimers((sent, notices) => {
    notices.send(notice('n2', 5));
    notices.send(notice('n3', 5));
    assert.equal(sent.length, 0);
    mock.timers.tick(2);
    assert.deepEqual(
      sent.map((m) => [m.to, m.commit]),
      [
        ['n2', 5],
        ['n3', 5],
      ],
    );
    assert.equal(notices.heldCount, 0);
  });
});

test('the next append to that follower replaces its notice; other followers keep theirs', () => {
  withTimers((sent, notices) => {
    notices.send(notice('n2', 5));
    notices.send(notice('n3', 5));
    notices.send(append('n2', 5));
    assert.deepEqual(
      sent.map((m) => [m.to, m.entries?.length]),
      [['n2', 1]],
    );
    mock.timers.tick(2);
    assert.deepEqual(
      sent.map((m) => [m.to, m.commitOnly ?? false]),
      [
        ['n2', false],
        ['n3', true],
      ],
    );
  });
});

test('a message with a lower commit index, or of another term, does not replace a notice', () => {
  withTimers((sent, notices) => {
    notices.send(notice('n2', 5));
    // A heartbeat's commit is capped at the follower's match, which may lag.
    notices.send(heartbeat('n2', 4));
    notices.send(notice('n3', 5, 2));
    notices.send(append('n3', 6, 3));
    mock.timers.tick(2);
    assert.deepEqual(
      sent.map((m) => [m.to, m.type, m.commit]),
      [
        ['n2', MessageType.Heartbeat, 4],
        ['n3', MessageType.App, 6],
        ['n2', MessageType.App, 5],
        ['n3', MessageType.App, 5],
      ],
    );
  });
});

test('a newer notice replaces an older one; a heartbeat that carries its commit replaces it', () => {
  withTimers((sent, notices) => {
    notices.send(notice('n2', 5));
    notices.send(notice('n2', 6));
    notices.send(notice('n3', 6));
    notices.send(heartbeat('n3', 6));
    mock.timers.tick(2);
    assert.deepEqual(
      sent.map((m) => [m.to, m.type, m.commit]),
      [
        ['n3', MessageType.Heartbeat, 6],
        ['n2', MessageType.App, 6],
      ],
    );
  });
});

test('a zero hold time sends at once', () => {
  const sent: Message[] = [];
  new CommitNotices((m) => sent.push(m), 0).send(notice('n2', 5));
  assert.equal(sent.length, 1);
});

test('flushTo sends the notice held for one follower now, and keeps the others held', () => {
  withTimers((sent, notices) => {
    notices.send(notice('n2', 5));
    notices.send(notice('n3', 5));
    notices.flushTo('n2');
    assert.deepEqual(
      sent.map((m) => m.to),
      ['n2'],
    );
    notices.flushTo('n2'); // nothing held for it any more
    assert.equal(sent.length, 1);
    mock.timers.tick(2);
    assert.deepEqual(
      sent.map((m) => m.to),
      ['n2', 'n3'],
    );
    notices.flushTo('n3');
    assert.equal(sent.length, 2);
  });
});
