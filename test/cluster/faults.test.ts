import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type AgentProcess, assertAllPresent, Cluster, waitFor, withTimeout } from './harness.js';

// Crash and freeze faults on real processes: SIGKILL loses the process (and its unsynced
// writes), SIGSTOP freezes it with its sockets open. In both, no acknowledged write may be lost.

const SMALL_SNAPSHOTS = ['-raft-snapshot-threshold', '200', '-raft-trailing-logs', '50'];

async function countKeys(a: AgentProcess, prefix: string, stale: boolean): Promise<number> {
  const r = await a.http('GET', `/v1/kv/${prefix}?keys${stale ? '&stale' : ''}`);
  return r.status === 404 ? 0 : (JSON.parse(r.text) as string[]).length;
}

test('faults: SIGKILL the leader under load; a new leader takes over, nothing acknowledged is lost, the old one catches up', {
  timeout: 180_000,
}, async () => {
  const c = await Cluster.bootstrap(3, SMALL_SNAPSHOTS);
  try {
    const load = c.load('kill', () => c.agents);
    await waitFor(() => load.acked.size >= 100, 30_000, 'writes before the crash');
    const leader = await c.waitForLeader();
    const killedAt = Date.now();
    await leader.stop('SIGKILL');
    const next = await c.waitForLeader(20_000);
    assert.notEqual(next, leader);
    const failover = Date.now() - killedAt;
    // Elections take 10-20 ticks of 50 ms; a few election timeouts is the bound.
    assert.ok(failover < 10_000, `new leader after ${failover} ms`);

    // Writes go on; enough of them that the dead server's log is behind the leader's snapshot.
    const before = load.acked.size;
    await waitFor(() => load.acked.size >= before + 400, 60_000, 'writes after the crash');

    // Restart: it is far behind (200-entry snapshots, 50 trailing entries), so it gets a snapshot.
    await leader.start();
    await waitFor(
      async () => (await countKeys(leader, 'kill', true)) >= before + 400,
      30_000,
      'the restarted server to catch up',
    );
    assert.ok(
      leader.lines.some((l) => l.msg === 'installed a snapshot from the leader'),
      'caught up through a snapshot',
    );
    await load.stop();
    for (const a of c.agents) await assertAllPresent(a, load.acked, 'kill');
  } finally {
    await c.close();
  }
});

test('faults: a follower restarted after a short outage catches up from the log', {
  timeout: 120_000,
}, async () => {
  const c = await Cluster.bootstrap(3);
  try {
    const leader = await c.waitForLeader();
    const follower = c.agents.find((a) => a !== leader)!;
    const load = c.load('short', () => [leader]);
    await waitFor(() => load.acked.size >= 30, 30_000, 'writes before the crash');
    await follower.stop('SIGKILL');
    const mark = load.acked.size;
    await waitFor(() => load.acked.size >= mark + 30, 30_000, 'writes during the outage');
    await follower.start();
    await load.stop();
    await waitFor(
      async () => (await countKeys(follower, 'short', true)) === load.acked.size,
      30_000,
      'the follower to catch up',
    );
    assert.ok(
      !follower.lines.some((l) => l.msg === 'installed a snapshot from the leader'),
      'no snapshot needed',
    );
    await assertAllPresent(follower, load.acked, 'short');
  } finally {
    await c.close();
  }
});

test('faults: SIGSTOP the leader; the rest elect a new one; on SIGCONT it steps down and its pending writes end cleanly', {
  timeout: 180_000,
}, async (t) => {
  const c = await Cluster.bootstrap(3);
  // Set on success and in `finally`, and bounded in time, so a failing test ends its clients too.
  let stop = false;
  const end = Date.now() + 170_000;
  try {
    const old = await c.waitForLeader();
    const others = c.agents.filter((a) => a !== old);
    // Writes aimed only at the leader, so some are mid-flight when it freezes.
    const outcomes: { key: string; ok: boolean; ms: number; refusal?: string }[] = [];
    const clients = [0, 1, 2, 3].map(async (w) => {
      for (let i = 0; !stop && Date.now() < end; i++) {
        const key = `stop/w${w}-${i}`;
        const began = Date.now();
        try {
          const r = await old.http('PUT', `/v1/kv/${key}`, 'x', 60_000);
          const ok = r.status === 200 && r.text === 'true';
          outcomes.push({
            key,
            ok,
            ms: Date.now() - began,
            ...(ok ? {} : { refusal: `${r.status} ${r.text}` }),
          });
        } catch (err) {
          outcomes.push({ key, ok: false, ms: Date.now() - began, refusal: String(err) });
        }
      }
    });
    await waitFor(() => outcomes.length >= 40, 30_000, 'writes before the freeze');
    old.signal('SIGSTOP');
    const frozenAt = Date.now();
    const next = await c.waitForLeader(20_000, others, old);
    assert.ok(others.includes(next));
    // The new leader serves writes while the old one is frozen.
    const r = await next.http('PUT', '/v1/kv/stop/during', 'yes');
    assert.equal(r.text, 'true');
    assert.ok(Date.now() - frozenAt < 20_000);

    // The clients keep writing to the old leader through the thaw, so writes it takes while it
    // still believes it leads meet the new term; they stop once it follows the new leader.
    old.signal('SIGCONT');
    await waitFor(
      async () => (await old.json<string>('GET', '/v1/status/leader')) === next.serverAddress,
      20_000,
      'the old leader to follow the new one',
    );
    stop = true;
    // Every request to the old leader ends (acknowledged or refused) within its hold time.
    await withTimeout(Promise.all(clients), 30_000, 'requests to the thawed leader to finish');
    // A refusal is one of the clear, retryable answers: never a hang or a half-done write.
    const refusals = outcomes.flatMap((o) => (o.refusal === undefined ? [] : [o.refusal]));
    for (const refusal of refusals) {
      assert.match(
        refusal,
        /^(500 (No cluster leader|a new leader replaced the entry; retry|state replaced by a snapshot.*|.*timed out.*)|429 .*)$/,
        'a refused write gets a clear error',
      );
    }
    const status = await old.json<{ Stats: { raft: { state: string } } }>('GET', '/v1/agent/self');
    assert.equal(status.Stats.raft.state, 'follower');
    // Acknowledged writes survived; refused ones may or may not have happened, but never half.
    const acked = new Map(outcomes.filter((o) => o.ok).map((o) => [o.key, 'x']));
    t.diagnostic(
      `writes to the frozen leader: ${acked.size} acknowledged, ${outcomes.length - acked.size} refused, slowest ${Math.max(...outcomes.map((o) => o.ms))} ms`,
    );
    assert.ok(acked.size >= 40);
    for (const a of c.agents) await assertAllPresent(a, acked, 'stop');
  } finally {
    stop = true;
    for (const a of c.agents) a.signal('SIGCONT');
    await c.close();
  }
});
