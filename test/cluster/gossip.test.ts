import assert from 'node:assert/strict';
import { test } from 'node:test';
import { freePorts } from '../ports.js';
import { type AgentProcess, Cluster, waitFor } from './harness.js';

// Gossip membership on real processes: 3 servers and 2 client agents in one LAN pool with an
// encryption key. A SIGKILLed client is marked failed by everyone and its serfHealth turns
// critical; a SIGSTOPped one is suspected, then failed, and refutes when it resumes; a leave is
// a leave, not a failure; an agent with another key never gets in.

const KEY = Buffer.alloc(32, 7).toString('base64');
const OTHER_KEY = Buffer.alloc(32, 9).toString('base64');

interface Member {
  Name: string;
  Status: number;
  Tags: { role: string };
}

const statusOf = async (via: AgentProcess, name: string) =>
  (await via.json<Member[]>('GET', '/v1/agent/members')).find((m) => m.Name === name)?.Status;

const serfHealth = async (via: AgentProcess, node: string) =>
  (await via.json<{ CheckID: string; Status: string }[]>('GET', `/v1/health/node/${node}`)).find(
    (c) => c.CheckID === 'serfHealth',
  )?.Status;

test('gossip: failure, suspicion and refutation, leave, and keys', { timeout: 240_000 }, async () => {
  const c = await Cluster.bootstrap(3, ['-encrypt', KEY]);
  try {
    const clients = [c.addClient('c1', ['-encrypt', KEY]), c.addClient('c2', ['-encrypt', KEY])];
    await Promise.all(clients.map((x) => x.start()));
    const [s1, s2, s3] = c.agents as [AgentProcess, AgentProcess, AgentProcess];
    // Everyone sees everyone alive; roles as Consul tags them.
    for (const via of [s1, s2, s3, clients[0]!, clients[1]!]) {
      await waitFor(
        async () =>
          (await via.json<Member[]>('GET', '/v1/agent/members')).filter((m) => m.Status === 1).length === 5,
        30_000,
        `${via.name} to see 5 alive members`,
      );
    }
    const members = await s2.json<Member[]>('GET', '/v1/agent/members');
    assert.deepEqual(members.map((m) => [m.Name, m.Tags.role]).sort(), [
      ['c1', 'node'],
      ['c2', 'node'],
      ['s1', 'consul'],
      ['s2', 'consul'],
      ['s3', 'consul'],
    ]);
    await waitFor(async () => (await serfHealth(s1, 'c1')) === 'passing', 20_000, 'c1 passing');

    // A session on c1's node (tied to its serfHealth, Consul's default) holds a lock.
    const session = JSON.parse(
      (
        await clients[0]!.http(
          'PUT',
          '/v1/session/create',
          JSON.stringify({ Name: 'c1-lock', LockDelay: '0s' }),
        )
      ).text,
    ) as { ID: string };
    assert.equal((await s1.http('PUT', `/v1/kv/gossip/lock?acquire=${session.ID}`, 'c1')).text, 'true');

    // SIGKILL: failed everywhere, serfHealth critical.
    await clients[0]!.stop('SIGKILL');
    for (const via of [s1, s2, clients[1]!])
      await waitFor(async () => (await statusOf(via, 'c1')) === 4, 60_000, `${via.name} to mark c1 failed`);
    await waitFor(
      async () => (await serfHealth(s2, 'c1')) === 'critical',
      20_000,
      "c1's serfHealth critical",
    );
    // ... which invalidates the session, releasing its lock.
    await waitFor(
      async () =>
        (await s3.json<{ Session?: string }[]>('GET', '/v1/kv/gossip/lock'))[0]?.Session === undefined,
      20_000,
      "the failed node's lock to be released",
    );
    assert.equal((await s3.http('GET', `/v1/session/info/${session.ID}`)).text.trim(), '[]');

    // SIGSTOP: failed in time; on SIGCONT it refutes and is alive (and passing) again.
    clients[1]!.signal('SIGSTOP');
    try {
      await waitFor(
        async () => (await statusOf(s1, 'c2')) === 4,
        60_000,
        'the paused c2 to be marked failed',
      );
    } finally {
      clients[1]!.signal('SIGCONT');
    }
    await waitFor(async () => (await statusOf(s1, 'c2')) === 1, 60_000, 'c2 alive again after SIGCONT');
    await waitFor(
      async () => (await serfHealth(s3, 'c2')) === 'passing',
      30_000,
      "c2's serfHealth passing again",
    );

    // An agent with another key cannot join: nobody ever sees it.
    const stranger = c.addClient('stranger', ['-encrypt', OTHER_KEY]);
    await stranger.start();
    await new Promise((r) => setTimeout(r, 4000));
    assert.equal(await statusOf(s1, 'stranger'), undefined);

    // A graceful leave is "left" (3), not "failed", and takes the node out of the catalog.
    assert.equal(await clients[1]!.stop('SIGTERM'), 0);
    await waitFor(async () => (await statusOf(s2, 'c2')) === 3, 30_000, 'c2 to be left');
    await waitFor(
      async () =>
        !(await s2.json<{ Node: string }[]>('GET', '/v1/catalog/nodes')).some((n) => n.Node === 'c2'),
      20_000,
      'c2 deregistered',
    );
  } finally {
    await c.close();
  }
});

test('gossip: servers given only gossip addresses (Consul-style -retry-join) find each other and bootstrap', {
  timeout: 120_000,
}, async () => {
  const c = new Cluster();
  try {
    const ports = await freePorts(3, { udp: true });
    const joins = ports.flatMap((p) => ['-retry-join', `127.0.0.1:${p}`]);
    for (let i = 0; i < 3; i++) {
      const a = c.add(`s${i + 1}`, ['-bootstrap-expect', '3', ...joins]);
      a.serfPort = ports[i]!;
    }
    await Promise.all(c.agents.map((a) => a.start()));
    const leader = await c.waitForLeader(30_000);
    await waitFor(async () => (await c.voters(leader)).length === 3, 30_000, 'three voters');
    assert.equal((await c.agents[2]!.http('PUT', '/v1/kv/found', 'yes')).text, 'true');
    assert.equal((await c.agents[0]!.http('GET', '/v1/kv/found?raw')).text, 'yes');
  } finally {
    await c.close();
  }
});
