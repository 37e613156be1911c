import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { Etcd3 } from 'etcd3';
import { ETCDCTL, etcdctl, hasEtcdctl, skipUnless } from '../interop/tools.js';
import {
  Child,
  type EtcdMember,
  leaderOf,
  type Msg,
  type ServiceClients,
  serviceClients,
  settled,
  startEtcdCluster,
  unary,
  waitFor,
} from './service-clients.js';

// etcd's v3lock and v3election services (raw gRPC, our .proto files), the etcd3 npm client's
// lock and election recipes (built on KV, Lease and Watch), and etcdctl's lock and elect,
// against in-process servers: one alone, and a three-server cluster where contenders talk to
// different members (writes forwarded to the leader, waits on a follower's own store).

const b = (s: string) => Buffer.from(s);
const str = (v: unknown) => Buffer.from(v as Uint8Array).toString();

async function grant(member: EtcdMember, ttlMs = 30_000): Promise<number> {
  const r = await member.server.write({ type: 'leaseGrant', id: 0, ttlMs });
  assert.equal(r.type, 'leaseGrant');
  return r.type === 'leaseGrant' ? r.id : 0;
}

async function revoke(member: EtcdMember, id: number): Promise<void> {
  const r = await member.server.write({ type: 'leaseRevoke', id });
  assert.equal(r.type, 'leaseRevoke');
}

async function keysUnder(c: ServiceClients, prefix: string): Promise<string[]> {
  const end = b(prefix);
  end[end.length - 1]! += 1;
  const r = await unary(c.kv, 'Range', { key: b(prefix), range_end: end });
  return r.kvs.map((kv: Msg) => str(kv.key));
}

function assertEtcdError(err: unknown, code: grpc.status, text: string): true {
  const e = err as grpc.ServiceError;
  assert.equal(e.details, text);
  assert.equal(e.code, code, `status of "${text}"`);
  return true;
}

describe('one server', () => {
  let member: EtcdMember;
  let c: ServiceClients;
  before(async () => {
    [member] = (await startEtcdCluster(1)) as [EtcdMember];
    c = serviceClients(member.endpoint);
  });
  after(async () => {
    c?.close();
    await member?.stop();
  });

  test('Lock: key <name>/<lease hex> on the lease; waiters queue by create revision; Unlock hands over', async () => {
    const [l1, l2, l3] = [await grant(member), await grant(member), await grant(member)];
    const first = await unary(c.lock, 'Lock', { name: b('q'), lease: String(l1) });
    assert.equal(str(first.key), `q/${l1.toString(16)}`);
    const kv = member.server.store.get(first.key);
    assert.equal(Number(first.header.revision), kv?.createRevision, 'the header of the txn that put the key');
    assert.equal(kv?.lease, l1);
    assert.equal(str(kv?.value), '');

    const second = unary(c.lock, 'Lock', { name: b('q'), lease: String(l2) });
    const third = unary(c.lock, 'Lock', { name: b('q'), lease: String(l3) });
    assert.equal(await settled(second, 200), false, 'second waits while the first holds');
    assert.deepEqual(
      await keysUnder(c, 'q/'),
      [l1, l2, l3].map((l) => `q/${l.toString(16)}`),
    );

    // The same lease locks again: its key is reused, and it already holds the lock.
    const again = await unary(c.lock, 'Lock', { name: b('q'), lease: String(l1) });
    assert.equal(str(again.key), str(first.key));

    const unlocked = await unary(c.lock, 'Unlock', { key: first.key });
    assert.ok(Number(unlocked.header.revision) > Number(first.header.revision));
    const got2 = await second;
    assert.equal(str(got2.key), `q/${l2.toString(16)}`);
    assert.equal(await settled(third, 100), false, 'third still waits for the second');
    await unary(c.lock, 'Unlock', { key: got2.key });
    assert.equal(str((await third).key), `q/${l3.toString(16)}`);
    await unary(c.lock, 'Unlock', { key: b(`q/${l3.toString(16)}`) });
    assert.deepEqual(await keysUnder(c, 'q/'), []);
  });

  test('Lock: a missing lease fails with etcd text; lease 0 gets a fresh 60 s session lease', async () => {
    await assert.rejects(unary(c.lock, 'Lock', { name: b('m'), lease: '987654' }), (err) =>
      assertEtcdError(err, grpc.status.UNKNOWN, 'etcdserver: requested lease not found'),
    );
    const r = await unary(c.lock, 'Lock', { name: b('zero'), lease: '0' });
    const kv = member.server.store.get(r.key);
    assert.ok(kv && kv.lease !== 0);
    const lease = member.server.store.lease(kv.lease);
    assert.equal(lease?.ttlMs, 60_000);
    assert.equal(str(r.key), `zero/${kv.lease.toString(16)}`);
    await unary(c.lock, 'Unlock', { key: r.key });
  });

  test('Lock: cancelling the call stops the wait and deletes the waiter key (as etcd); the holder keeps it', async () => {
    const [holder, waiter] = [await grant(member), await grant(member)];
    const held = await unary(c.lock, 'Lock', { name: b('cx'), lease: String(holder) });
    let call: grpc.ClientUnaryCall | undefined;
    const waiting = unary(
      c.lock,
      'Lock',
      { name: b('cx'), lease: String(waiter) },
      { started: (x) => (call = x) },
    );
    await waitFor(async () => (await keysUnder(c, 'cx/')).length === 2, 5000, 'the waiter key');
    call!.cancel();
    await assert.rejects(waiting, (err) => (err as grpc.ServiceError).code === grpc.status.CANCELLED);
    await waitFor(async () => (await keysUnder(c, 'cx/')).length === 1, 5000, 'the waiter key removed');
    assert.deepEqual(await keysUnder(c, 'cx/'), [str(held.key)]);
    assert.equal(member.server.store.status().watchers, 0, 'no store watch left behind');
    await unary(c.lock, 'Unlock', { key: held.key });
  });

  test('Lock: the waiter lease expiring (or revoked) fails the wait with "mutex: session is expired"', async () => {
    const holder = await grant(member);
    const waiter = await grant(member, 400);
    const held = await unary(c.lock, 'Lock', { name: b('exp'), lease: String(holder) });
    const began = Date.now();
    await assert.rejects(unary(c.lock, 'Lock', { name: b('exp'), lease: String(waiter) }), (err) =>
      assertEtcdError(err, grpc.status.UNKNOWN, 'mutex: session is expired'),
    );
    assert.ok(Date.now() - began < 5000);
    // A holder whose lease goes away releases the lock to the next waiter.
    const next = await grant(member);
    const waiting = unary(c.lock, 'Lock', { name: b('exp'), lease: String(next) });
    assert.equal(await settled(waiting, 100), false);
    await revoke(member, holder);
    assert.equal(str((await waiting).key), `exp/${next.toString(16)}`);
    assert.equal(member.server.store.get(held.key), null);
  });

  test('Election: Campaign, Leader, Proclaim, Observe, Resign, with etcd error texts', async () => {
    await assert.rejects(unary(c.election, 'Leader', { name: b('el') }), (err) =>
      assertEtcdError(err, grpc.status.UNKNOWN, 'election: no leader'),
    );
    const [l1, l2] = [await grant(member), await grant(member)];
    const observed: string[] = [];
    const observe = (c.election as unknown as { Observe(r: Msg): grpc.ClientReadableStream<Msg> }).Observe({
      name: b('el'),
    });
    observe.on('data', (m: Msg) => observed.push(`${str(m.kv.key)}=${str(m.kv.value)}`));
    observe.on('error', () => {});

    const won = await unary(c.election, 'Campaign', { name: b('el'), lease: String(l1), value: b('one') });
    const key1 = `el/${l1.toString(16)}`;
    assert.equal(str(won.leader.name), 'el');
    assert.equal(str(won.leader.key), key1);
    assert.equal(won.leader.lease, String(l1));
    assert.equal(won.leader.rev, String(member.server.store.get(b(key1))?.createRevision));
    assert.equal(won.header.revision, won.leader.rev);

    const second = unary(c.election, 'Campaign', { name: b('el'), lease: String(l2), value: b('two') });
    assert.equal(await settled(second, 150), false, 'the second candidate waits');
    const leader = await unary(c.election, 'Leader', { name: b('el') });
    assert.equal(str(leader.kv.key), key1);
    assert.equal(str(leader.kv.value), 'one');

    await unary(c.election, 'Proclaim', { leader: won.leader, value: b('one-b') });
    assert.equal(str((await unary(c.election, 'Leader', { name: b('el') })).kv.value), 'one-b');
    // A stale LeaderKey (other create revision) is not the leader.
    await assert.rejects(
      unary(c.election, 'Proclaim', {
        leader: { ...won.leader, rev: String(Number(won.leader.rev) - 1) },
        value: b('x'),
      }),
      (err) => assertEtcdError(err, grpc.status.UNKNOWN, 'election: not leader'),
    );
    await assert.rejects(unary(c.election, 'Proclaim', { value: b('x') }), (err) =>
      assertEtcdError(err, grpc.status.UNKNOWN, '"leader" field must be provided'),
    );
    await assert.rejects(unary(c.election, 'Resign', {}), (err) =>
      assertEtcdError(err, grpc.status.UNKNOWN, '"leader" field must be provided'),
    );

    await unary(c.election, 'Resign', { leader: won.leader });
    const won2 = await second;
    assert.equal(str(won2.leader.key), `el/${l2.toString(16)}`);
    // Resigning again with the old key changes nothing and is no error (etcd).
    await unary(c.election, 'Resign', { leader: won.leader });
    assert.equal(str((await unary(c.election, 'Leader', { name: b('el') })).kv.value), 'two');

    await waitFor(() => observed.length >= 3, 5000, 'observed leaders');
    assert.deepEqual(observed, [`${key1}=one`, `${key1}=one-b`, `el/${l2.toString(16)}=two`]);
    observe.cancel();
    await unary(c.election, 'Resign', { leader: won2.leader });
    await assert.rejects(unary(c.election, 'Leader', { name: b('el') }), /election: no leader/);
  });

  test('Election: Observe with no leader waits for one; a re-campaign with a new value proclaims it', async () => {
    const observed: string[] = [];
    const observe = (c.election as unknown as { Observe(r: Msg): grpc.ClientReadableStream<Msg> }).Observe({
      name: b('late'),
    });
    observe.on('data', (m: Msg) => observed.push(str(m.kv.value)));
    observe.on('error', () => {});
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(observed, []);
    const lease = await grant(member);
    const first = await unary(c.election, 'Campaign', {
      name: b('late'),
      lease: String(lease),
      value: b('a'),
    });
    const again = await unary(c.election, 'Campaign', {
      name: b('late'),
      lease: String(lease),
      value: b('b'),
    });
    assert.equal(again.leader.rev, first.leader.rev, 'the same candidate key');
    await waitFor(() => observed.length >= 2, 5000, 'observed values');
    assert.deepEqual(observed, ['a', 'b']);
    observe.cancel();
    await unary(c.election, 'Resign', { leader: again.leader });
  });

  test('Election: a cancelled Campaign deletes its key; a revoked lease fails the wait', async () => {
    const [l1, l2, l3] = [await grant(member), await grant(member), await grant(member)];
    const won = await unary(c.election, 'Campaign', { name: b('cc'), lease: String(l1), value: b('1') });
    let call: grpc.ClientUnaryCall | undefined;
    const waiting = unary(
      c.election,
      'Campaign',
      { name: b('cc'), lease: String(l2), value: b('2') },
      {
        started: (x) => (call = x),
      },
    );
    await waitFor(async () => (await keysUnder(c, 'cc/')).length === 2, 5000, 'the candidate key');
    call!.cancel();
    await assert.rejects(waiting, (err) => (err as grpc.ServiceError).code === grpc.status.CANCELLED);
    await waitFor(async () => (await keysUnder(c, 'cc/')).length === 1, 5000, 'the candidate key removed');

    const doomed = unary(c.election, 'Campaign', { name: b('cc'), lease: String(l3), value: b('3') });
    assert.equal(await settled(doomed, 100), false);
    await revoke(member, l3);
    await assert.rejects(doomed, (err) =>
      assertEtcdError(err, grpc.status.UNKNOWN, 'etcdserver: requested lease not found'),
    );
    await unary(c.election, 'Resign', { leader: won.leader });
  });
});

describe('three servers', () => {
  let members: EtcdMember[];
  before(async () => {
    members = await startEtcdCluster(3);
  });
  after(async () => {
    for (const m of members ?? []) await m.stop();
  });

  test('Lock and Campaign wait on a follower and wake when another member releases', async () => {
    const leader = leaderOf(members);
    const [f1, f2] = members.filter((m) => m !== leader) as [EtcdMember, EtcdMember];
    const [c0, c1, c2] = [
      serviceClients(leader.endpoint),
      serviceClients(f1.endpoint),
      serviceClients(f2.endpoint),
    ];
    try {
      const [l1, l2] = [await grant(leader), await grant(leader)];
      const held = await unary(c1.lock, 'Lock', { name: b('x'), lease: String(l1) });
      const waiting = unary(c2.lock, 'Lock', { name: b('x'), lease: String(l2) });
      assert.equal(await settled(waiting, 200), false);
      await unary(c0.lock, 'Unlock', { key: held.key });
      assert.equal(str((await waiting).key), `x/${l2.toString(16)}`);

      const won = await unary(c2.election, 'Campaign', { name: b('e'), lease: String(l1), value: b('a') });
      const next = unary(c1.election, 'Campaign', { name: b('e'), lease: String(l2), value: b('b') });
      assert.equal(await settled(next, 200), false);
      // Linearizable Leader on every member right after the campaign.
      for (const c of [c0, c1, c2])
        assert.equal(str((await unary(c.election, 'Leader', { name: b('e') })).kv.value), 'a');
      await unary(c0.election, 'Resign', { leader: won.leader });
      assert.equal(str((await next).leader.key), `e/${l2.toString(16)}`);
    } finally {
      for (const c of [c0, c1, c2]) c.close();
    }
  });

  test('etcd3 npm client: lock() and election() recipes over KV, Lease and Watch', async () => {
    const clients = members.map((m) => new Etcd3({ hosts: [`http://${m.endpoint}`] }));
    try {
      const [a, bClient, cClient] = clients as [Etcd3, Etcd3, Etcd3];
      // lock(): a try-lock on one key with a kept-alive lease.
      const held = await a.lock('npm-lock').ttl(5).acquire();
      await assert.rejects(bClient.lock('npm-lock').ttl(5).acquire(), /Failed to acquire a lock/);
      await held.release();
      const second = await bClient.lock('npm-lock').ttl(5).acquire();
      await second.release();

      // election(): campaign, observe, leader, proclaim, resign.
      const electionA = a.election('npm-election', 5);
      const electionB = bClient.election('npm-election', 5);
      const observer = await cClient.election('npm-election', 5).observe();
      const seen: (string | undefined)[] = [];
      observer.on('change', (v) => seen.push(v));
      const campaignA = electionA.campaign('alpha');
      await campaignA.wait();
      const campaignB = electionB.campaign('beta');
      let bElected = false;
      campaignB.on('elected', () => {
        bElected = true;
      });
      await waitFor(
        async () => (await cClient.election('npm-election').leader()) === 'alpha',
        5000,
        'alpha leads',
      );
      await campaignA.proclaim('alpha-2');
      await waitFor(() => seen.includes('alpha-2'), 5000, 'the observer sees the proclamation');
      assert.equal(bElected, false);
      await campaignA.resign();
      await campaignB.wait();
      await waitFor(() => seen.includes('beta'), 5000, 'the observer sees the new leader');
      assert.equal(await a.election('npm-election').leader(), 'beta');
      await campaignB.resign();
      await observer.cancel();
    } finally {
      for (const client of clients) client.close();
    }
  });

  test('etcdctl lock: holds and prints the key; a second contender acquires once the first is killed', {
    skip: skipUnless(hasEtcdctl(), 'etcdctl (Debian etcd-client)'),
    timeout: 60_000,
  }, async () => {
    const env = { ETCDCTL_API: '3' };
    const args = (i: number) => [
      '--endpoints',
      members[i]!.endpoint,
      '--dial-timeout',
      '5s',
      'lock',
      '--ttl=2',
      'ctl-lock',
    ];
    const first = new Child(ETCDCTL, args(0), env);
    let second: Child | undefined;
    try {
      const [key1] = await first.waitForLines(1, 15_000, 'the first etcdctl lock');
      assert.match(key1!, /^ctl-lock\/[0-9a-f]+$/);
      second = new Child(ETCDCTL, args(1), env);
      await waitFor(
        () => members[0]!.server.store.list(b('ctl-lock/')).length === 2,
        10_000,
        'the second contender queued',
      );
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(second.lines.length, 0, 'the second contender waits');
      await first.kill('SIGKILL');
      // Its session lease (2 s) expires; the leader deletes the key; the waiter wakes.
      const [key2] = await second.waitForLines(1, 20_000, 'the second etcdctl lock');
      assert.match(key2!, /^ctl-lock\/[0-9a-f]+$/);
      assert.notEqual(key2, key1);
      // exec form: runs the command while holding the lock, then releases it.
      await second.kill('SIGINT');
      const exec = await etcdctl(
        [members[2]!.endpoint],
        ['lock', 'ctl-lock', '--', 'sh', '-c', 'echo "held $ETCD_LOCK_KEY"'],
      );
      assert.equal(exec.code, 0, exec.stderr);
      assert.match(exec.stdout, /^held ctl-lock\/[0-9a-f]+$/m);
    } finally {
      await first.kill();
      await second?.kill();
    }
  });

  test('etcdctl elect: a candidate leads and prints its proposal; elect -l observes the leader', {
    skip: skipUnless(hasEtcdctl(), 'etcdctl (Debian etcd-client)'),
    timeout: 60_000,
  }, async () => {
    const env = { ETCDCTL_API: '3' };
    const base = (i: number) => ['--endpoints', members[i]!.endpoint, '--dial-timeout', '5s', 'elect'];
    const listener = new Child(ETCDCTL, [...base(2), '-l', 'ctl-elect'], env);
    const alpha = new Child(ETCDCTL, [...base(0), 'ctl-elect', 'alpha'], env);
    let beta: Child | undefined;
    try {
      // A candidate prints the leader key and its proposal once elected.
      const [keyLine, value] = await alpha.waitForLines(2, 15_000, 'alpha elected');
      assert.match(keyLine!, /^ctl-elect\/[0-9a-f]+$/);
      assert.equal(value, 'alpha');
      await listener.waitForLines(2, 15_000, 'the observer');
      assert.equal(listener.lines[1], 'alpha');
      beta = new Child(ETCDCTL, [...base(1), 'ctl-elect', 'beta'], env);
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(beta.lines.length, 0, 'beta waits while alpha leads');
      // SIGINT: etcdctl resigns and closes its session, so beta takes over at once.
      await alpha.kill('SIGINT');
      const [, betaValue] = await beta.waitForLines(2, 15_000, 'beta elected');
      assert.equal(betaValue, 'beta');
      await waitFor(() => listener.lines.includes('beta'), 10_000, 'the observer sees beta');
    } finally {
      await alpha.kill();
      await beta?.kill();
      await listener.kill();
    }
  });
});
