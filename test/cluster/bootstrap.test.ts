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
