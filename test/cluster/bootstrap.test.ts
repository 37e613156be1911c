import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Cluster, waitFor } from './harness.js';

// Real processes on loopback: -bootstrap-expect N servers find each other, bootstrap exactly
// one cluster, elect a leader, and every server serves writes and linearizable reads.
for (const n of [3, 5]) {
  test(`cluster: ${n} servers bootstrap, elect, write anywhere, read everywhere`, {
    timeout: 120_000,
  }, async () => {
    const c = await Cluster.bootstrap(n);
    try {
      const leader = await c.waitForLeader();
      const peers = await leader.json<string[]>('GET', '/v1/status/peers');
      assert.equal(peers.length, n);
      assert.deepEqual(new Set(peers), new Set(c.agents.map((a) => a.serverAddress)));

      // Exactly one bootstrap: every server logged the same cluster identity.
      const clusters = new Set(
        c.agents.flatMap((a) =>
          a.lines.filter((l) => l.msg === 'bootstrapped the cluster').map((l) => l.cluster),
        ),
      );
      assert.equal(clusters.size, 1, `one cluster id, got ${[...clusters].join(', ')}`);

      // Writes through every server (followers forward to the leader) ...
      for (const [i, a] of c.agents.entries()) {
        const r = await a.http('PUT', `/v1/kv/boot/k${i}`, `from-${a.name}`);
        assert.equal(r.text, 'true', `${a.name}: ${r.status} ${r.text}`);
      }
      // ... are read back from every server right away: default reads are linearizable (ReadIndex).
      for (const a of c.agents) {
        for (const [i, w] of c.agents.entries()) {
          const r = await a.http('GET', `/v1/kv/boot/k${i}?raw`);
          assert.equal(r.status, 200, `${a.name} reading k${i}`);
          assert.equal(r.text, `from-${w.name}`);
        }
        const list = await a.json<{ Key: string }[]>('GET', '/v1/kv/boot?recurse');
        assert.equal(list.length, n);
      }
      // Stale reads are served locally and converge.
      await waitFor(
        async () => {
          const all = await Promise.all(c.agents.map((a) => a.http('GET', `/v1/kv/boot/k0?raw&stale`)));
          return all.every((r) => r.text === `from-${c.agents[0]!.name}`);
        },
        5000,
        'stale reads to converge',
      );
    } finally {
      await c.close();
    }
  });
}

test('cluster: a whole-cluster restart from the data dirs never bootstraps again; without quorum, "No cluster leader"', {
  timeout: 120_000,
}, async () => {
  const c = await Cluster.bootstrap(3);
  try {
    const r = await c.agents[1]!.http('PUT', '/v1/kv/restart/k', 'kept');
    assert.equal(r.text, 'true');
    const clusterOf = (lines: { msg: string; cluster?: unknown }[]) =>
      lines.filter((l) => l.msg === 'bootstrapped the cluster').map((l) => l.cluster);
    const firstRun = c.agents.map((a) => clusterOf(a.lines));
    for (const a of c.agents) await a.stop('SIGKILL');
    for (const a of c.agents) a.lines.length = 0;
    await Promise.all(c.agents.map((a) => a.start()));
    await c.waitForLeader();
    for (const a of c.agents) {
      assert.deepEqual(clusterOf(a.lines), [], `${a.name} did not bootstrap again`);
      const got = await a.http('GET', '/v1/kv/restart/k?raw');
      assert.equal(got.text, 'kept');
    }
    assert.ok(firstRun.flat().length >= 1);

    // Two of three gone: the survivor answers Consul's "No cluster leader" within its hold time.
    const survivor = c.agents[0]!;
    for (const a of c.agents.slice(1)) await a.stop('SIGKILL');
    // (A write that reaches a leader before it notices the loss waits for its commit and times out.)
    await waitFor(
      async () => (await survivor.json<string>('GET', '/v1/status/leader')) === '',
      20_000,
      'no leader',
    );
    const began = Date.now();
    const w = await survivor.http('PUT', '/v1/kv/restart/k', 'nope', 30_000);
    assert.equal(w.status, 500);
    assert.equal(w.text, 'No cluster leader');
    const rd = await survivor.http('GET', '/v1/kv/restart/k', undefined, 30_000);
    assert.equal(rd.status, 500);
    assert.equal(rd.text, 'No cluster leader');
    assert.ok(Date.now() - began < 25_000, `answered after ${Date.now() - began} ms`);
    // A stale read still answers from local state.
    const stale = await survivor.http('GET', '/v1/kv/restart/k?raw&stale');
    assert.equal(stale.text, 'kept');
    // ... and says how old it may be: no known leader, last contact long ago (Consul's headers).
    assert.equal(stale.headers.get('X-Consul-KnownLeader'), 'false');
    assert.ok(
      Number(stale.headers.get('X-Consul-LastContact')) > 1000,
      stale.headers.get('X-Consul-LastContact') ?? '',
    );
    // So does a stale txn of reads only (Consul's Txn.Read), where a write would need a leader.
    const staleTxn = await survivor.http(
      'PUT',
      '/v1/txn?stale',
      JSON.stringify([{ KV: { Verb: 'get', Key: 'restart/k' } }]),
    );
    assert.equal(staleTxn.status, 200, staleTxn.text);
    const entry = (JSON.parse(staleTxn.text) as { Results: { KV: { Value: string } }[] }).Results[0]!.KV;
    assert.equal(Buffer.from(entry.Value, 'base64').toString(), 'kept');
    assert.equal(staleTxn.headers.get('X-Consul-KnownLeader'), 'false');
  } finally {
    await c.close();
  }
});
