import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertAllPresent, Cluster, runConclave, waitFor } from './harness.js';

// Membership on real processes: a server joins as a non-voter and is promoted once caught up;
// a dead server is removed; leadership moves on request; a rolling restart (graceful leave,
// rejoin) of every server never fails a read.

test('membership: join a 4th server under load, remove a dead one, transfer leadership', {
  timeout: 180_000,
}, async () => {
  const c = await Cluster.bootstrap(3);
  try {
    const load = c.load('member');
    await waitFor(() => load.acked.size >= 30, 30_000, 'writes before the join');

    // A new server with only -retry-join: it finds the cluster and asks to be let in.
    const s4 = c.add('s4', ['-retry-join', c.agents[0]!.serverAddress]);
    await s4.start();
    await waitFor(async () => (await c.voters(c.agents[0]!)).includes(s4.id), 30_000, 's4 to become a voter');
    // It came in as a non-voter and got its vote only after catching up. (The two log lines
    // cannot be ordered reliably: the join handler logs after its change applies, and the
    // promotion may already have been logged by then. Raft's own tests check learners.)
    const logged = (msg: string) =>
      c.agents.some((a) => a.lines.some((l) => l.msg === msg && l.id === s4.id));
    assert.ok(logged('added a non-voting server'), 'the leader added s4 as a non-voter');
    // The promotion is logged once it commits and applies on the leader; s4 counts as a voter
    // wherever the change is merely appended (a configuration takes effect on append, §4.1).
    await waitFor(
      () => logged('promoted a caught-up server to voter'),
      10_000,
      'the leader to log the promotion',
    );
    const afterJoin = load.acked.size;
    await waitFor(() => load.acked.size >= afterJoin + 30, 30_000, 'writes after the join');

    // Remove a dead follower (not s4) with the operator command.
    let leader = await c.waitForLeader();
    const victim = c.agents.find((a) => a !== leader && a !== s4)!;
    await victim.stop('SIGKILL');
    const httpAddr = (a: typeof leader) => ['-http-addr', `127.0.0.1:${a.httpPort}`];
    const removed = await runConclave([
      'operator',
      'raft',
      'remove-peer',
      '-id',
      victim.id,
      ...httpAddr(leader),
    ]);
    assert.equal(removed.code, 0, removed.stderr);
    await waitFor(
      async () => !(await c.voters(leader)).includes(victim.id),
      20_000,
      'the victim to be removed',
    );
    assert.equal((await c.voters(leader)).length, 3);
    // Removing an unknown id is a clear 400, Consul's wording.
    const unknown = await leader.http('DELETE', '/v1/operator/raft/peer?id=nope');
    assert.equal(unknown.status, 400);
    assert.match(unknown.text, /not found in the Raft configuration/);

    // Hand leadership to a named voter (HTTP), then to whichever voter is best (the command
    // without -id), then back by name through a follower (the command with -id).
    const target = c.running().find((a) => a !== leader)!;
    const t = await leader.http('POST', `/v1/operator/raft/transfer-leader?id=${target.id}`);
    assert.equal(t.status, 200, t.text);
    assert.deepEqual(JSON.parse(t.text), { Success: true });
    leader = await c.waitForLeader(20_000, c.running());
    assert.equal(leader, target);
    const before = leader;
    const anyone = await runConclave(['operator', 'raft', 'transfer-leader', ...httpAddr(leader)]);
    assert.equal(anyone.code, 0, anyone.stderr);
    await waitFor(
      async () => (await c.waitForLeader(20_000, c.running())) !== before,
      20_000,
      'a new leader',
    );
    leader = await c.waitForLeader(20_000, c.running());
    const follower = c.running().find((a) => a !== leader)!;
    const named = await runConclave([
      'operator',
      'raft',
      'transfer-leader',
      '-id',
      before.id,
      ...httpAddr(follower),
    ]);
    assert.equal(named.code, 0, named.stderr);
    await waitFor(
      async () => (await c.waitForLeader(20_000, c.running())) === before,
      20_000,
      'the named leader',
    );
    leader = before;

    const mark = load.acked.size;
    await waitFor(() => load.acked.size >= mark + 30, 30_000, 'writes after the transfer');
    await load.stop();
    for (const a of c.running()) await assertAllPresent(a, load.acked, 'member');
  } finally {
    await c.close();
  }
});

test('membership: rolling restart of every server, one at a time, with no failed read', {
  timeout: 240_000,
}, async (t) => {
  const c = await Cluster.bootstrap(3);
  // Cleared on success and in `finally`, and bounded in time, so a failing test ends its reader.
  let reading = true;
  const end = Date.now() + 230_000;
  try {
    const available = new Set(c.agents);
    const first = await c.agents[0]!.http('PUT', '/v1/kv/roll/fixed', 'steady');
    assert.equal(first.text, 'true');
    let reads = 0;
    const readFailures: string[] = [];
    const reader = (async () => {
      for (let i = 0; reading && Date.now() < end; i++) {
        const pool = [...available];
        const a = pool[i % pool.length];
        if (!a) {
          await new Promise((r) => setTimeout(r, 50));
          continue;
        }
        try {
          const r = await a.http('GET', '/v1/kv/roll/fixed?raw', undefined, 20_000);
          if (r.status === 200 && r.text === 'steady') reads++;
          else readFailures.push(`${a.name}: ${r.status} ${r.text}`);
        } catch (err) {
          // A request already sent to a server that then left is not a failed read of the cluster.
          if (available.has(a)) readFailures.push(`${a.name}: ${String(err)}`);
        }
      }
    })();
    const load = c.load('roll', () => [...available]);

    for (const [i, a] of c.agents.entries()) {
      available.delete(a);
      await new Promise((r) => setTimeout(r, 300));
      // The first leaves through `conclave leave`, the others on SIGTERM.
      let code: number | null;
      if (i === 0) {
        const left = await runConclave(['leave', '-http-addr', `127.0.0.1:${a.httpPort}`]);
        assert.equal(left.code, 0, left.stderr);
        code = await a.waitForExit();
      } else {
        code = await a.stop('SIGTERM');
      }
      assert.equal(code, 0, `${a.name} exits 0 after a graceful leave`);
      const rest = c.agents.find((x) => x !== a)!;
      await waitFor(async () => !(await c.voters(rest)).includes(a.id), 10_000, `${a.name} to have left`);
      await a.start();
      await waitFor(async () => (await c.voters(rest)).length === 3, 30_000, `${a.name} to vote again`);
      await waitFor(
        async () => (await a.http('GET', '/v1/kv/roll/fixed?raw')).text === 'steady',
        20_000,
        'reads',
      );
      available.add(a);
    }
    reading = false;
    await reader;
    await load.stop();
    t.diagnostic(`${reads} reads, ${load.acked.size} writes acknowledged, ${load.failures} writes refused`);
    assert.deepEqual(readFailures, []);
    assert.ok(reads > 50);
    const leader = await c.waitForLeader();
    await assertAllPresent(leader, load.acked, 'roll');
  } finally {
    reading = false;
    await c.close();
  }
});
