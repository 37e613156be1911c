import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { type AgentProcess, Cluster, waitFor } from './harness.js';

// Consul's key rotation on real processes: 3 servers and a client encrypted with K1; through
// /v1/operator/keyring (asked of one agent, relayed to all) K2 is installed, put to use and K1
// removed. A server restarted with -encrypt K1 keeps the rotated keyring from its data dir; a new
// agent with only K2 joins, one with only K1 never gets in.

const K1 = Buffer.alloc(32, 11).toString('base64');
const K2 = Buffer.alloc(32, 12).toString('base64');

interface Member {
  Name: string;
  Status: number;
}

interface KeyringPool {
  WAN: boolean;
  Datacenter: string;
  Keys: Record<string, number>;
  PrimaryKeys: Record<string, number>;
  NumNodes: number;
}

const alive = async (via: AgentProcess): Promise<string[]> =>
  (await via.json<Member[]>('GET', '/v1/agent/members'))
    .filter((m) => m.Status === 1)
    .map((m) => m.Name)
    .sort();

async function keyring(via: AgentProcess, method: string, key: string): Promise<void> {
  const r = await via.http(method, '/v1/operator/keyring', JSON.stringify({ Key: key }));
  assert.equal(r.status, 200, `${method} keyring via ${via.name}: ${r.text}`);
}

test('keyring: rotate K1 to K2 everywhere; only K2 gets in afterwards', { timeout: 300_000 }, async () => {
  const c = await Cluster.bootstrap(3, ['-encrypt', K1]);
  try {
    const [s1, s2, s3] = c.agents as [AgentProcess, AgentProcess, AgentProcess];
    const c1 = c.addClient('c1', ['-encrypt', K1]);
    await c1.start();
    const everyone = ['c1', 's1', 's2', 's3'];
    for (const via of [s1, s2, s3, c1])
      await waitFor(
        async () => (await alive(via)).join() === everyone.join(),
        30_000,
        `${via.name} sees all`,
      );

    const list = async (via: AgentProcess) => {
      const pools = await via.json<KeyringPool[]>('GET', '/v1/operator/keyring');
      assert.equal(pools.length, 1);
      assert.equal(pools[0]!.WAN, false);
      assert.equal(pools[0]!.Datacenter, 'dc1');
      return pools[0]!;
    };
    const initial = await list(s2);
    assert.deepEqual([initial.Keys, initial.PrimaryKeys, initial.NumNodes], [{ [K1]: 4 }, { [K1]: 4 }, 4]);

    // Install through a server, switch through the client, remove through another server.
    await keyring(s1, 'POST', K2);
    let pool = await list(c1);
    assert.deepEqual(pool.Keys, { [K1]: 4, [K2]: 4 });
    assert.deepEqual(pool.PrimaryKeys, { [K1]: 4 });
    await keyring(c1, 'PUT', K2);
    assert.deepEqual((await list(s3)).PrimaryKeys, { [K2]: 4 });
    // The primary key cannot be removed: every node says why.
    const refused = await s3.http('DELETE', '/v1/operator/keyring', JSON.stringify({ Key: K2 }));
    assert.equal(refused.status, 500);
    assert.match(refused.text, /4\/4 nodes reported failure/);
    await keyring(s3, 'DELETE', K1);
    pool = await list(s1);
    assert.deepEqual(pool.Keys, { [K2]: 4 });
    assert.deepEqual(pool.PrimaryKeys, { [K2]: 4 });
    assert.equal(pool.NumNodes, 4);
    // Every agent keeps its keyring in its data dir (Consul's serf/local.keyring).
    for (const a of [s2, c1])
      assert.deepEqual(JSON.parse(readFileSync(join(a.dataDir, 'serf', 'local.keyring'), 'utf8')), [K2]);
    // The pool still works on K2 alone.
    await new Promise((r) => setTimeout(r, 3000));
    assert.deepEqual(await alive(s1), everyone);

    // A restart with -encrypt K1 still on its command line uses the keyring file (K2).
    await s2.stop('SIGKILL');
    await waitFor(async () => !(await alive(s1)).includes('s2'), 30_000, 's2 seen failed');
    await s2.start();
    await waitFor(async () => (await alive(s1)).includes('s2'), 30_000, 's2 back in the pool with K2');
    assert.ok(
      s2.lines.some((l) => /keyring file exists/.test(l.msg)),
      's2 warned that -encrypt was ignored',
    );

    // A newcomer with only K2 joins; one with only K1 does not.
    const c2 = c.addClient('c2', ['-encrypt', K2]);
    const c3 = c.addClient('c3', ['-encrypt', K1]);
    await Promise.all([c2.start(), c3.start()]);
    await waitFor(async () => (await alive(s1)).includes('c2'), 30_000, 'c2 (K2) joined');
    await waitFor(async () => (await alive(c2)).length === 5, 30_000, 'c2 sees the whole pool');
    await new Promise((r) => setTimeout(r, 5000));
    assert.ok(!(await alive(s1)).includes('c3'), 'c3 (K1) must not get in');
    assert.deepEqual(await alive(c3), ['c3'], 'c3 sees nobody');
    // The list counts the newcomer, not the outsider.
    assert.deepEqual((await list(s1)).Keys, { [K2]: 5 });
  } finally {
    await c.close();
  }
});
