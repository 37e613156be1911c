import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import Consul from 'consul';
import { Cluster, waitFor } from '../cluster/harness.js';

// The `consul` npm client, unmodified, against a 3-server cluster: KV, sessions with
// acquire/release, a blocking watch, status; then the leader dies under a blocking query.

let cluster: Cluster;

before(async () => {
  cluster = await Cluster.bootstrap(3);
});

after(async () => {
  await cluster?.close();
});

const clientFor = (i: number) => new Consul({ host: '127.0.0.1', port: cluster.agents[i]!.httpPort });

test('consul npm: kv get/set/keys/del, sessions, acquire/release, status', { timeout: 60_000 }, async () => {
  const a = clientFor(0);
  const b = clientFor(1);
  assert.equal(await a.kv.set('npm/one', 'first'), true);
  assert.equal(await a.kv.set({ key: 'npm/two', value: 'second', flags: 3 }), true);
  const one = (await b.kv.get('npm/one')) as { Value: string; ModifyIndex: number };
  assert.equal(one.Value, 'first');
  assert.deepEqual(await b.kv.keys('npm/'), ['npm/one', 'npm/two']);
  const all = (await b.kv.get({ key: 'npm/', recurse: true })) as { Key: string; Flags: number }[];
  assert.deepEqual(
    all.map((e) => [e.Key, e.Flags]),
    [
      ['npm/one', 0],
      ['npm/two', 3],
    ],
  );
  // cas on a stale index fails, on the current one succeeds. (The client turns Consul's `false`
  // body into undefined, against real Consul too.)
  assert.notEqual(await a.kv.set({ key: 'npm/one', value: 'x', cas: one.ModifyIndex + 100 }), true);
  assert.equal(await a.kv.set({ key: 'npm/one', value: 'x', cas: one.ModifyIndex }), true);

  const s1 = (await a.session.create({ name: 'npm-holder', ttl: '15s' })) as { ID: string };
  const s2 = (await b.session.create({ name: 'npm-waiter' })) as { ID: string };
  assert.equal(await a.kv.set({ key: 'npm/lock', value: 'me', acquire: s1.ID }), true);
  assert.notEqual(await b.kv.set({ key: 'npm/lock', value: 'you', acquire: s2.ID }), true);
  const renewed = (await a.session.renew(s1.ID)) as { ID: string }[];
  assert.equal(renewed[0]!.ID, s1.ID);
  const info = (await b.session.info(s1.ID)) as { Name: string } | undefined;
  assert.equal(info?.Name, 'npm-holder');
  assert.equal(await a.kv.set({ key: 'npm/lock', value: 'me', release: s1.ID }), true);
  assert.equal(await b.kv.set({ key: 'npm/lock', value: 'you', acquire: s2.ID }), true);
  await a.session.destroy(s1.ID);
  await b.session.destroy(s2.ID);

  assert.equal(await a.kv.del({ key: 'npm/', recurse: true }), true);
  assert.equal(await b.kv.get('npm/one'), undefined);
  const leader = await cluster.waitForLeader();
  assert.equal(await a.status.leader(), leader.serverAddress);
  assert.equal(((await a.status.peers()) as string[]).length, 3);
});

test('consul npm: a blocking watch sees writes made through another server', {
  timeout: 60_000,
}, async () => {
  const a = clientFor(0);
  const b = clientFor(2);
  await a.kv.set('watch/k', 'v0');
  const seen: string[] = [];
  const watch = a.watch({ method: a.kv.get, options: { key: 'watch/k', wait: '5s' } as never });
  watch.on('change', (data: { Value?: string } | undefined) => {
    if (data?.Value) seen.push(data.Value);
  });
  watch.on('error', () => {});
  try {
    await waitFor(() => seen.includes('v0'), 10_000, 'the first answer');
    await b.kv.set('watch/k', 'v1');
    await b.kv.set('watch/k', 'v2');
    await waitFor(() => seen.includes('v2'), 10_000, 'the watch to see v2');
  } finally {
    watch.end();
  }
});

test('consul npm: the leader dies under a blocking query; it ends and a retry elsewhere works', {
  timeout: 90_000,
}, async () => {
  const leader = await cluster.waitForLeader();
  const leaderIndex = cluster.agents.indexOf(leader);
  const onLeader = clientFor(leaderIndex);
  await onLeader.kv.set('dying/k', 'before');
  const first = (await onLeader.kv.get('dying/k')) as { ModifyIndex: number };
  const blocking = onLeader.kv.get({ key: 'dying/k', index: first.ModifyIndex, wait: '60s' } as never).then(
    () => 'returned',
    () => 'errored',
  );
  await new Promise((r) => setTimeout(r, 300));
  await leader.stop('SIGKILL');
  const outcome = await Promise.race([
    blocking,
    new Promise((r) => setTimeout(() => r('still blocked'), 20_000)),
  ]);
  assert.notEqual(outcome, 'still blocked');
  // Retry against a surviving server: it answers once a new leader is elected.
  const survivor = cluster.agents.find((a) => a !== leader)!;
  await cluster.waitForLeader(20_000, cluster.running());
  const retry = clientFor(cluster.agents.indexOf(survivor));
  const value = (await retry.kv.get('dying/k')) as { Value: string };
  assert.equal(value.Value, 'before');
  await leader.start();
});
