import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { silentLogger } from '../../src/server/logger.js';
import { RetryableError } from '../../src/server/raft-host.js';
import { ConclaveServer } from '../../src/server/server.js';
import { StoreError, StoreErrorCode, utf8 } from '../../src/store/index.js';
import { PeerTransport } from '../../src/transport/peer-transport.js';

// ConclaveServer in one process, over loopback: forwarded writes and their results, the
// leader's lease clock, and bounded "no leader" failures.

const TICK_MS = 20;

async function startServers(n: number, holdTimeoutMs = 3000): Promise<ConclaveServer[]> {
  const servers = Array.from(
    { length: n },
    (_, i) =>
      new ConclaveServer({
        nodeId: randomUUID(),
        nodeName: `s${i + 1}`,
        dataDir: null,
        bindHost: '127.0.0.1',
        serverPort: 0,
        bootstrap: n,
        retryJoin: [],
        log: silentLogger,
        tickMs: TICK_MS,
        holdTimeoutMs,
        joinIntervalMs: 100,
      }),
  );
  for (const s of servers) await s.start();
  for (const s of servers.slice(1)) await s.joinAddress(servers[0]!.serverAddress);
  await waitFor(() => servers.every((s) => s.leaderId() !== ''), 10_000, 'a leader');
  return servers;
}

async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const leaderOf = (servers: ConclaveServer[]) => servers.find((s) => s.isLeader())!;

test('server: a follower forwards writes to the leader and gets the store result back, errors included', async () => {
  const servers = await startServers(3);
  try {
    const follower = servers.find((s) => !s.isLeader())!;
    const put = await follower.write({ type: 'put', key: utf8('a'), value: utf8('1') });
    assert.equal(put.type, 'put');
    // A failed compare-and-set comes back as a StoreError with its code, across the wire.
    const cas = await follower.write({
      type: 'consulTxn',
      ops: [{ verb: 'cas', key: utf8('a'), value: utf8('2'), index: 999 }],
    });
    assert.equal(cas.type, 'error');
    assert.ok(cas.type === 'error' && cas.error instanceof StoreError);
    assert.equal(cas.type === 'error' && cas.error.code, StoreErrorCode.CasFailed);
    // Every server reads its own write back after a read barrier.
    for (const s of servers) {
      await s.readBarrier();
      assert.equal(new TextDecoder().decode(s.store.get(utf8('a'))?.value), '1');
    }
  } finally {
    for (const s of servers) await s.stop();
  }
});

test('server: a write forwarded by a follower is applied there before it returns (read-your-writes)', async () => {
  const servers = await startServers(3);
  try {
    for (const follower of servers.filter((s) => !s.isLeader())) {
      for (let i = 0; i < 20; i++) {
        const key = utf8(`ryw/${follower.id}/${i}`);
        const put = await follower.write({ type: 'put', key, value: utf8(String(i)) });
        assert.equal(put.type, 'put');
        // No read barrier: the follower's own store must already hold what it acknowledged,
        // as an etcd member's serializable read would.
        assert.equal(new TextDecoder().decode(follower.store.get(key)?.value), String(i));
      }
    }
  } finally {
    for (const s of servers) await s.stop();
  }
});

test('server: the leader expires leases on its clock, and a new leader grants a full TTL first', async () => {
  const servers = await startServers(3);
  try {
    const leader = leaderOf(servers);
    const grant = await leader.write({ type: 'leaseGrant', id: 0, ttlMs: 300 });
    assert.ok(grant.type === 'leaseGrant');
    await leader.write({ type: 'put', key: utf8('ephemeral'), value: utf8('x'), lease: grant.id });
    const began = Date.now();
    await waitFor(() => servers.every((s) => s.store.get(utf8('ephemeral')) === null), 5000, 'expiry');
    assert.ok(Date.now() - began >= 250, 'not expired before its TTL');
    assert.equal(leader.store.lease(grant.id), null);

    // A lease granted just before the leader dies survives the election by a full TTL.
    const long = await leader.write({ type: 'leaseGrant', id: 0, ttlMs: 1500 });
    assert.ok(long.type === 'leaseGrant');
    await leader.stop();
    const rest = servers.filter((s) => s !== leader);
    await waitFor(() => rest.some((s) => s.isLeader()), 10_000, 'a new leader');
    const electedAt = Date.now();
    // The grant is there to expire (else the wait below would pass at once).
    await waitFor(() => rest.every((s) => s.store.lease(long.id) !== null), 5000, 'the grant applied');
    await waitFor(
      () => rest.every((s) => s.store.lease(long.id) === null),
      10_000,
      'expiry under the new leader',
    );
    assert.ok(Date.now() - electedAt >= 1200, `expired ${Date.now() - electedAt} ms after the election`);
  } finally {
    for (const s of servers) await s.stop();
  }
});

test('server: with no quorum, writes and reads fail with "no leader" within the hold time', async () => {
  const servers = await startServers(3, 800);
  try {
    const survivor = servers.find((s) => !s.isLeader())!;
    for (const s of servers) if (s !== survivor) await s.stop();
    const began = Date.now();
    await assert.rejects(
      survivor.write({ type: 'put', key: utf8('k'), value: utf8('v') }),
      (err: unknown) => {
        assert.ok(err instanceof RetryableError, String(err));
        return true;
      },
    );
    await assert.rejects(survivor.readBarrier(), (err: unknown) => {
      assert.ok(err instanceof RetryableError);
      assert.equal(err.code, 'no-leader');
      return true;
    });
    // Bounded: the hold time (0.8 s) per call, plus the time for the follower to notice.
    assert.ok(Date.now() - began < 15_000, `took ${Date.now() - began} ms`);
    await survivor.readBarrier('stale');
  } finally {
    for (const s of servers) await s.stop();
  }
});

test('server: the leader keeps servers in the catalog with a steady serfHealth check; a dead one turns critical', async () => {
  const servers = await startServers(3);
  try {
    const leader = leaderOf(servers);
    const names = servers.map((s) => s.self().name);
    await waitFor(
      () => names.every((n) => leader.store.catalog.check(n, 'serfHealth')?.status === 'passing'),
      10_000,
      'every server registered and passing',
    );
    const indexes = names.map((n) => leader.store.catalog.check(n, 'serfHealth')!.modifyIndex);
    // Several check-quorum rounds: a healthy server's check must not flap (each flap is a write).
    await new Promise((r) => setTimeout(r, 2500));
    assert.deepEqual(
      names.map((n) => leader.store.catalog.check(n, 'serfHealth')!.modifyIndex),
      indexes,
      'no catalog writes while every server is healthy',
    );
    const victim = servers.find((s) => s !== leader)!;
    await victim.stop();
    await waitFor(
      () => leader.store.catalog.check(victim.self().name, 'serfHealth')?.status === 'critical',
      15_000,
      'the stopped server to turn critical',
    );
  } finally {
    for (const s of servers) await s.stop();
  }
});

test('server: a peer that does not name the cluster may discover and join, but not write, remove or transfer', async () => {
  const servers = await startServers(1);
  const stranger = new PeerTransport({
    nodeId: 'stranger',
    clusterId: '',
    host: '127.0.0.1',
    port: 0,
    onRaftMessage: () => {},
  });
  try {
    const leader = servers[0]!;
    const ask = async (body: unknown) =>
      (await stranger.requestAt(leader.serverAddress, body, 5000)).body as {
        ok: boolean;
        error?: { message: string };
      };
    const discovered = await ask({ kind: 'servers' });
    assert.equal(discovered.ok, true);
    for (const body of [
      { kind: 'write', command: { type: 'put', key: utf8('x'), value: utf8('1') } },
      { kind: 'remove', id: leader.id },
      { kind: 'transfer', id: leader.id },
    ]) {
      const answer = await ask(body);
      assert.equal(answer.ok, false, body.kind);
      assert.match(answer.error?.message ?? '', /^refused: /);
    }
    assert.equal(leader.store.get(utf8('x')), null);
    assert.equal(leader.isLeader(), true);
  } finally {
    await stranger.close();
    for (const s of servers) await s.stop();
  }
});
