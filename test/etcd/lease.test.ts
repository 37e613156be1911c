import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { Etcd3, EtcdLeaseInvalidError } from 'etcd3';
import { KeepAliveBatcher } from '../../src/api/etcd/keepalive-batcher.js';
import { MIN_LEASE_TTL_SECONDS, minLeaseTtlSeconds } from '../../src/api/etcd/lease.js';
import type { ConclaveServer } from '../../src/server/server.js';
import { type EtcdTestServer, startEtcdTestServer } from './harness.js';
import { type RawClients, rawClients, StreamReader, text, unaryCall, waitFor } from './raw-client.js';

/** Count the leaseKeepAlive commands (and ids in them) a server proposes while `body` runs. */
async function countKeepAliveWrites(server: ConclaveServer, body: () => Promise<void>) {
  const original = server.write;
  const seen = { commands: 0, ids: 0 };
  server.write = (command) => {
    if (command.type === 'leaseKeepAlive') {
      seen.commands++;
      seen.ids += command.ids.length;
    }
    return original.call(server, command);
  };
  try {
    await body();
  } finally {
    server.write = original;
  }
  return seen;
}

describe('etcd Lease over gRPC', () => {
  let etcd: EtcdTestServer;
  let client: Etcd3;
  let raw: RawClients;

  before(async () => {
    etcd = await startEtcdTestServer();
    client = new Etcd3({ hosts: `http://${etcd.endpoint}` });
    raw = rawClients(etcd.endpoint);
  });

  after(async () => {
    client.close();
    raw.close();
    await etcd.close();
  });

  const grant = (request: Record<string, string>) => unaryCall(raw.lease, 'LeaseGrant', request);

  test("etcd's minimum TTL is ceil(1.5 election timeouts) in seconds: 2 s with default timing", () => {
    assert.equal(MIN_LEASE_TTL_SECONDS, 2);
    assert.equal(minLeaseTtlSeconds(100, 10), 2);
    assert.equal(minLeaseTtlSeconds(500, 10), 8);
  });

  test('grant: server-chosen and client-chosen ids, TTL raised to the minimum, etcd errors', async () => {
    const picked = await grant({ TTL: '30' });
    assert.notEqual(picked.ID, '0');
    assert.equal(picked.TTL, '30');
    assert.ok(Number(picked.header.revision) > 0);
    const low = await grant({ TTL: '1' });
    assert.equal(low.TTL, String(MIN_LEASE_TTL_SECONDS));
    const chosen = await grant({ TTL: '30', ID: '424242' });
    assert.equal(chosen.ID, '424242');
    await assert.rejects(grant({ TTL: '30', ID: '424242' }), {
      code: grpc.status.FAILED_PRECONDITION,
      details: 'etcdserver: lease already exists',
    });
    await assert.rejects(grant({ TTL: '9000000001' }), {
      code: grpc.status.OUT_OF_RANGE,
      details: 'etcdserver: too large lease TTL',
    });
    const lease = client.lease(30, { autoKeepAlive: false });
    assert.match(await lease.grant(), /^[1-9]\d*$/);
    await lease.revoke();
  });

  test('timetolive: remaining and granted TTL, attached keys on request, -1 when not found', async () => {
    const lease = client.lease(30, { autoKeepAlive: false });
    const id = await lease.grant();
    await lease.put('ttl/a').value('1');
    await lease.put('ttl/b').value('2');
    const withKeys = await client.leaseClient.leaseTimeToLive({ ID: id, keys: true });
    assert.equal(withKeys.ID, id);
    assert.equal(withKeys.grantedTTL, '30');
    assert.ok(Number(withKeys.TTL) >= 28 && Number(withKeys.TTL) <= 30, `TTL ${withKeys.TTL}`);
    assert.deepEqual(withKeys.keys.map(text).sort(), ['ttl/a', 'ttl/b']);
    const withoutKeys = await client.leaseClient.leaseTimeToLive({ ID: id });
    assert.deepEqual(withoutKeys.keys, []);
    const missing = await client.leaseClient.leaseTimeToLive({ ID: '987654' });
    assert.deepEqual([missing.ID, missing.TTL], ['987654', '-1']);
    await lease.revoke();
  });

  test('keep-alive stream: {ID, TTL} in request order, TTL 0 for a missing lease, OK on close', async () => {
    const a = await grant({ TTL: '20' });
    const c = await grant({ TTL: '40' });
    const stream = new StreamReader(raw.lease.LeaseKeepAlive());
    stream.write({ ID: a.ID });
    stream.write({ ID: '31337' });
    stream.write({ ID: c.ID });
    const answers = [await stream.next(), await stream.next(), await stream.next()];
    assert.deepEqual(
      answers.map((r) => [r.ID, r.TTL]),
      [
        [a.ID, '20'],
        ['31337', '0'],
        [c.ID, '40'],
      ],
    );
    assert.ok(answers.every((r) => Number(r.header.revision) > 0));
    const status = new Promise<grpc.StatusObject>((resolve) => stream.stream.on('status', resolve));
    stream.stream.end();
    assert.equal((await status).code, grpc.status.OK);

    // The etcd3 client's keepaliveOnce uses the same stream.
    const lease = client.lease(10, { autoKeepAlive: false });
    await lease.grant();
    assert.equal((await lease.keepaliveOnce()).TTL, '10');
    await lease.revoke();
  });

  test('keep-alives arriving together share one leaseKeepAlive command', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push((await grant({ TTL: '60' })).ID);
    const stream = new StreamReader(raw.lease.LeaseKeepAlive());
    const seen = await countKeepAliveWrites(etcd.server, async () => {
      for (const ID of ids) stream.write({ ID });
      for (const ID of ids) assert.equal((await stream.next()).ID, ID);
    });
    assert.equal(seen.ids, 20);
    // How many share a command depends on arrival timing; the batcher test below pins the rule.
    assert.ok(seen.commands < 20, `${seen.commands} commands for 20 keep-alives`);
    stream.cancel();
  });

  test('revoke deletes attached keys; a second revoke is "requested lease not found"', async () => {
    const lease = client.lease(30, { autoKeepAlive: false });
    const id = await lease.grant();
    await lease.put('rv/1').value('x');
    await client.put('rv/2').value('y').lease(id);
    assert.equal(await client.get('rv/1').string(), 'x');
    await lease.revoke();
    assert.equal(await client.get('rv/1').string(), null);
    assert.equal(await client.get('rv/2').string(), null);
    await assert.rejects(unaryCall(raw.lease, 'LeaseRevoke', { ID: id }), {
      code: grpc.status.NOT_FOUND,
      details: 'etcdserver: requested lease not found',
    });
    await assert.rejects(client.leaseClient.leaseRevoke({ ID: id }), EtcdLeaseInvalidError);
  });

  test('the leader expires a lease and its keys; keep-alives hold another past its TTL', async () => {
    const expiring = await grant({ TTL: '1' }); // raised to the 2 s minimum
    const kept = await grant({ TTL: '1' });
    await client.put('exp/gone').value('x').lease(expiring.ID);
    await client.put('exp/kept').value('y').lease(kept.ID);
    const stream = new StreamReader(raw.lease.LeaseKeepAlive());
    const started = Date.now();
    const keeper = setInterval(() => stream.write({ ID: kept.ID }), 400);
    try {
      await waitFor(
        () => etcd.server.store.get(Buffer.from('exp/gone')) === null,
        8000,
        'the lease to expire',
      );
      assert.ok(Date.now() - started >= 1500, 'not before its TTL');
      const gone = await client.leaseClient.leaseTimeToLive({ ID: expiring.ID });
      assert.equal(gone.TTL, '-1');
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal(await client.get('exp/kept').string(), 'y');
      const alive = await client.leaseClient.leaseTimeToLive({ ID: kept.ID });
      assert.ok(Number(alive.TTL) >= 1, `kept lease TTL ${alive.TTL}`);
    } finally {
      clearInterval(keeper);
      stream.cancel();
    }
  });

  test('leases lists every lease', async () => {
    const a = await grant({ TTL: '30' });
    const c = await grant({ TTL: '30' });
    const listed = (await client.leaseClient.leaseLeases()).leases.map((l) => l.ID);
    assert.ok(listed.includes(a.ID) && listed.includes(c.ID));
    await unaryCall(raw.lease, 'LeaseRevoke', { ID: a.ID });
    const after = (await client.leaseClient.leaseLeases()).leases.map((l) => l.ID);
    assert.ok(!after.includes(a.ID) && after.includes(c.ID));
  });
});

describe('KeepAliveBatcher', () => {
  test('one command per window; while it commits the next batch gathers; full batches go at once', async () => {
    const calls: number[][] = [];
    let release: () => void = () => {};
    const batcher = new KeepAliveBatcher({
      windowMs: 5,
      maxBatch: 4,
      renew: async (ids) => {
        calls.push(ids);
        await new Promise<void>((r) => {
          release = r;
        });
        return new Map(ids.filter((id) => id !== 99).map((id) => [id, id * 1000]));
      },
    });
    const first = [batcher.keepAlive(1), batcher.keepAlive(2), batcher.keepAlive(1)];
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(calls, [[1, 2]], 'one command for the window, duplicates merged');
    const second = [batcher.keepAlive(3), batcher.keepAlive(99)];
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(calls.length, 1, 'the next batch waits for the one in flight');
    release();
    assert.deepEqual(await Promise.all(first), [1000, 2000, 1000]);
    await waitFor(() => calls.length === 2, 1000, 'the second batch');
    assert.deepEqual(calls[1], [3, 99]);
    release();
    assert.deepEqual(await Promise.all(second), [3000, -1], 'a lease not found is -1');
    const full = [5, 6, 7, 8].map((id) => batcher.keepAlive(id));
    assert.deepEqual(calls[2], [5, 6, 7, 8], 'a full batch goes without waiting for the window');
    release();
    assert.deepEqual(await Promise.all(full), [5000, 6000, 7000, 8000]);
  });

  test('a failed command fails every keep-alive in its batch', async () => {
    const batcher = new KeepAliveBatcher({
      renew: async () => {
        throw new Error('no leader');
      },
    });
    const results = await Promise.allSettled([batcher.keepAlive(1), batcher.keepAlive(2)]);
    assert.deepEqual(
      results.map((r) => r.status),
      ['rejected', 'rejected'],
    );
  });
});
