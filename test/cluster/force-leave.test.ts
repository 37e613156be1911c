import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { AgentProcess, Cluster, runConclave, waitFor } from './harness.js';

// `conclave join`, `members` and `force-leave` on real processes: a client started alone joins
// the pool through one server's gossip address; a SIGKILLed client, force-left, is left
// everywhere and leaves the catalog; a SIGKILLed server, force-left through a client, also
// leaves the Raft configuration; an alive member or an unknown name is refused.

interface Member {
  Name: string;
  Status: number;
}

const statusOf = async (via: AgentProcess, name: string) =>
  (await via.json<Member[]>('GET', '/v1/agent/members')).find((m) => m.Name === name)?.Status;

test('join, members and force-leave', { timeout: 300_000 }, async () => {
  const c = await Cluster.bootstrap(3);
  try {
    const [s1, s2, s3] = c.agents as [AgentProcess, AgentProcess, AgentProcess];
    const c1 = c.addClient('c1');
    await c1.start();
    // A client that knows no server: `conclave join` through s1's gossip address.
    const c2 = new AgentProcess('c2', join(c.rootDir, 'c2'), [], 'client');
    c.clients.push(c2);
    await c2.start();
    const joined = await runConclave([
      'join',
      `127.0.0.1:${s1.serfPort}`,
      '-http-addr',
      `127.0.0.1:${c2.httpPort}`,
    ]);
    assert.equal(joined.code, 0, joined.stderr);
    assert.match(joined.stdout, /Successfully joined cluster by contacting 1 nodes/);
    const bad = await runConclave(['join', '127.0.0.1:1', '-http-addr', `127.0.0.1:${c2.httpPort}`]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /Failed to join 127\.0\.0\.1:1/);
    for (const via of [s1, s3, c1, c2])
      await waitFor(
        async () =>
          (await via.json<Member[]>('GET', '/v1/agent/members')).filter((m) => m.Status === 1).length === 5,
        30_000,
        `${via.name} to see 5 alive members`,
      );
    const table = await runConclave(['members', '-http-addr', `127.0.0.1:${c2.httpPort}`]);
    assert.equal(table.code, 0, table.stderr);
    const lines = table.stdout.trim().split('\n');
    assert.match(lines[0]!, /^Node\s+Address\s+Status\s+Type\s+Build\s+Protocol\s+DC$/);
    assert.deepEqual(
      lines.slice(1).map((l) => l.split(/\s+/).filter((_, i) => i !== 1 && i !== 4)),
      [
        ['c1', 'alive', 'client', '2', 'dc1'],
        ['c2', 'alive', 'client', '2', 'dc1'],
        ['s1', 'alive', 'server', '2', 'dc1'],
        ['s2', 'alive', 'server', '2', 'dc1'],
        ['s3', 'alive', 'server', '2', 'dc1'],
      ],
    );
    const detailed = await runConclave(['members', '-detailed', '-http-addr', `127.0.0.1:${c2.httpPort}`]);
    assert.match(detailed.stdout, /^s1\s+\S+\s+alive\s+.*role=consul/m);

    // Refused: an alive member, an unknown name.
    const alive = await s1.http('PUT', '/v1/agent/force-leave/c1');
    assert.equal(alive.status, 500);
    assert.match(alive.text, /alive/);
    const unknown = await s1.http('PUT', '/v1/agent/force-leave/nobody');
    assert.equal(unknown.status, 500);
    assert.match(unknown.text, /No node found with name 'nobody'/);

    // A dead client, force-left (GET, as python-consul sends it): left everywhere, out of the catalog.
    await c1.stop('SIGKILL');
    await waitFor(async () => (await statusOf(s2, 'c1')) === 4, 60_000, 'c1 failed on s2');
    const forced = await s2.http('GET', '/v1/agent/force-leave/c1');
    assert.equal(forced.status, 200, forced.text);
    for (const via of [s1, s2, s3, c2])
      await waitFor(async () => (await statusOf(via, 'c1')) === 3, 20_000, `c1 left on ${via.name}`);
    await waitFor(
      async () => (await s1.http('GET', '/v1/catalog/node/c1')).text.trim() === 'null',
      30_000,
      'c1 deregistered from the catalog',
    );

    // A dead server, force-left through a client with the CLI: left, and out of the Raft configuration.
    const leader = await c.waitForLeader();
    const victim = [s1, s2, s3].find((s) => s !== leader)!;
    const others = [s1, s2, s3].filter((s) => s !== victim);
    await victim.stop('SIGKILL');
    await waitFor(async () => (await statusOf(c2, victim.name)) === 4, 60_000, `${victim.name} failed on c2`);
    const cli = await runConclave(['force-leave', victim.name, '-http-addr', `127.0.0.1:${c2.httpPort}`]);
    assert.equal(cli.code, 0, cli.stderr);
    for (const via of [...others, c2])
      await waitFor(async () => (await statusOf(via, victim.name)) === 3, 20_000, `${victim.name} left`);
    await waitFor(
      async () => !(await c.voters(others[0]!)).includes(victim.id),
      30_000,
      `${victim.name} out of the Raft configuration`,
    );
  } finally {
    await c.close();
  }
});
