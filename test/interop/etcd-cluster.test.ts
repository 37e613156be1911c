import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Etcd3 } from 'etcd3';
import { Cluster } from '../cluster/harness.js';
import { etcdctl, hasEtcdctl, hasPythonModule, run, SYSTEM_PYTHON, skipUnless } from './tools.js';

// Real, unmodified etcd clients against a 3-server Conclave cluster: etcdctl (Debian
// etcd-client), python3-etcd3 (Debian) and the etcd3 npm package, each talking to different
// members, so followers forward writes and serve linearizable reads.

let cluster: Cluster;
let endpoints: string[];

before(async () => {
  cluster = await Cluster.bootstrap(3);
  endpoints = cluster.agents.map((a) => a.etcdEndpoint);
});

after(async () => {
  await cluster?.close();
});

const at = (i: number) => [endpoints[i % endpoints.length]!];

test('etcdctl: put/get/del with prefix, revisions, value-only output, txn, compaction, status', {
  skip: skipUnless(hasEtcdctl(), 'etcdctl (Debian etcd-client)'),
  timeout: 120_000,
}, async () => {
  const ok = async (i: number, args: string[], input?: string) => {
    const r = await etcdctl(at(i), args, input);
    assert.equal(r.code, 0, `etcdctl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  assert.equal((await ok(0, ['put', 'ctl/a', '1'])).trim(), 'OK');
  assert.equal((await ok(1, ['put', 'ctl/b', '2'])).trim(), 'OK');
  assert.equal((await ok(2, ['put', 'other', 'x'])).trim(), 'OK');
  // Read on a different member than the write: linearizable by default.
  assert.equal(await ok(2, ['get', 'ctl/a']), 'ctl/a\n1\n');
  assert.equal(await ok(0, ['get', 'ctl/', '--prefix', '--print-value-only']), '1\n2\n');
  assert.equal(await ok(1, ['get', 'ctl/', '--prefix', '--keys-only']), 'ctl/a\n\nctl/b\n\n');

  // History: overwrite, then read the old revision.
  const first = JSON.parse(await ok(0, ['get', 'ctl/a', '-w', 'json'])) as {
    kvs: { mod_revision: number }[];
  };
  const rev = first.kvs[0]!.mod_revision;
  await ok(1, ['put', 'ctl/a', '1b']);
  assert.equal(await ok(2, ['get', 'ctl/a', '--print-value-only']), '1b\n');
  assert.equal(await ok(2, ['get', 'ctl/a', '--print-value-only', `--rev=${rev}`]), '1\n');

  // Interactive txn through stdin: compares, blank line, success ops, blank line, failure ops.
  const txn = await ok(0, ['txn'], 'value("ctl/a") = "1b"\n\nput ctl/c 3\n\nput ctl/c never\n\n');
  assert.match(txn, /^SUCCESS/);
  assert.equal(await ok(1, ['get', 'ctl/c', '--print-value-only']), '3\n');
  const failed = await ok(2, ['txn'], 'value("ctl/a") = "nope"\n\nput ctl/c never\n\nget ctl/c\n\n');
  assert.match(failed, /^FAILURE/);
  assert.match(failed, /ctl\/c\n3/);

  // Deletes by prefix report the count.
  assert.equal((await ok(1, ['del', 'ctl/', '--prefix'])).trim(), '3');
  assert.equal(await ok(0, ['get', 'ctl/', '--prefix']), '');

  // Compaction: old revisions become unreadable with etcd's error text.
  const now = JSON.parse(await ok(0, ['get', 'other', '-w', 'json'])) as { header: { revision: number } };
  await ok(0, ['compaction', String(now.header.revision)]);
  const compacted = await etcdctl(at(1), ['get', 'other', `--rev=${rev}`]);
  assert.notEqual(compacted.code, 0);
  assert.match(compacted.stderr, /required revision has been compacted/);

  // Endpoint status and health on every member.
  const status = JSON.parse(
    await ok(0, ['endpoint', 'status', '--cluster=false', '-w', 'json']),
  ) as unknown[];
  assert.equal(status.length, 1);
  const health = await etcdctl(endpoints, ['endpoint', 'health']);
  assert.equal(health.code, 0, health.stderr);
  assert.equal((health.stdout + health.stderr).match(/is healthy/g)?.length, 3);
});

test('python3-etcd3: get/put/prefix/delete/transaction', {
  skip: skipUnless(hasPythonModule('etcd3'), 'python3-etcd3 (Debian)'),
  timeout: 60_000,
}, async () => {
  const [host, port] = endpoints[1]!.split(':');
  const script = `
import etcd3, json, sys
c = etcd3.client(host=${JSON.stringify(host)}, port=${Number(port)}, timeout=10)
c.put('py/a', 'alpha')
c.put('py/b', 'beta')
value, meta = c.get('py/a')
out = {'a': value.decode(), 'mod': meta.mod_revision}
out['prefix'] = sorted(v.decode() for v, m in c.get_prefix('py/'))
ok, _ = c.transaction(
    compare=[c.transactions.value('py/a') == 'alpha'],
    success=[c.transactions.put('py/c', 'gamma')],
    failure=[])
out['txn'] = ok
out['c'] = c.get('py/c')[0].decode()
out['deleted'] = c.delete('py/b')
out['after'] = c.get('py/b')[0]
c.delete_prefix('py/')
out['empty'] = len(list(c.get_prefix('py/')))
print(json.dumps(out))
`;
  const r = await run(SYSTEM_PYTHON, ['-c', script], { timeoutMs: 45_000 });
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as Record<string, unknown>;
  assert.equal(out.a, 'alpha');
  assert.deepEqual(out.prefix, ['alpha', 'beta']);
  assert.equal(out.txn, true);
  assert.equal(out.c, 'gamma');
  assert.equal(out.deleted, true);
  assert.equal(out.after, null);
  assert.equal(out.empty, 0);
});

test('etcd3 (npm): KV and transactions against every member', { timeout: 60_000 }, async () => {
  const clients = endpoints.map((e) => new Etcd3({ hosts: e }));
  try {
    await clients[0]!.put('npm/x').value('1');
    for (const c of clients) assert.equal(await c.get('npm/x').string(), '1');
    const r = await clients[1]!
      .if('npm/x', 'Value', '==', '1')
      .then(clients[1]!.put('npm/y').value('2'))
      .else(clients[1]!.put('npm/y').value('never'))
      .commit();
    assert.equal(r.succeeded, true);
    assert.deepEqual(await clients[2]!.getAll().prefix('npm/').strings(), { 'npm/x': '1', 'npm/y': '2' });
    assert.equal(
      await clients[2]!
        .delete()
        .prefix('npm/')
        .then((d) => Number(d.deleted)),
      2,
    );
  } finally {
    for (const c of clients) c.close();
  }
});

test('etcd3 (npm): a member serves its own writes to serializable reads at once', {
  timeout: 60_000,
}, async () => {
  // An etcd member answers a write only once it applied it, so a serializable (member-local)
  // read right after sees it, even on a follower that forwarded the write.
  const clients = endpoints.map((e) => new Etcd3({ hosts: e }));
  try {
    for (const [m, c] of clients.entries()) {
      for (let i = 0; i < 20; i++) {
        await c.put(`ryw/${m}`).value(String(i));
        assert.equal(await c.get(`ryw/${m}`).serializable(true).string(), String(i));
      }
    }
    await clients[0]!.delete().prefix('ryw/');
  } finally {
    for (const c of clients) c.close();
  }
});

test('etcdctl: watch on one member sees writes through others; leases across members', {
  skip: skipUnless(hasEtcdctl(), 'etcdctl (Debian etcd-client)'),
  timeout: 120_000,
}, async () => {
  const { spawn } = await import('node:child_process');
  const watcher = spawn('etcdctl', ['--endpoints', endpoints[1]!, 'watch', '--prev-kv', 'cw/'], {
    env: { ...process.env, ETCDCTL_API: '3' },
  });
  let out = '';
  watcher.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  try {
    // etcdctl watch takes a moment to open its stream: keep writing until the first event shows.
    for (let i = 0; i < 50 && !out.includes('cw/'); i++) {
      await etcdctl(at(2), ['put', 'cw/', 'v1']);
      await new Promise((r) => setTimeout(r, 200));
    }
    await etcdctl(at(0), ['put', 'cw/', 'v2']);
    await etcdctl(at(2), ['del', 'cw/']);
    const end = Date.now() + 10_000;
    while (!out.includes('DELETE') && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    assert.match(out, /PUT\ncw\/\nv1\ncw\/\nv2\n/, 'the second put carries the first as prev-kv');
    assert.match(out, /DELETE\ncw\/\nv2\ncw\/\n/);
  } finally {
    watcher.kill();
  }

  const granted = await etcdctl(at(0), ['lease', 'grant', '30']);
  const id = /lease ([0-9a-f]+) granted/.exec(granted.stdout)?.[1];
  assert.ok(id, granted.stdout + granted.stderr);
  assert.equal((await etcdctl(at(1), ['put', `--lease=${id}`, 'cl/k', 'v'])).code, 0);
  assert.match(
    (await etcdctl(at(2), ['lease', 'keep-alive', '--once', id])).stdout,
    /keepalived with TTL\(30\)/,
  );
  assert.match(
    (await etcdctl(at(1), ['lease', 'timetolive', '--keys', id])).stdout,
    /attached keys\(\[cl\/k\]\)/,
  );
  assert.match((await etcdctl(at(2), ['lease', 'revoke', id])).stdout, /revoked/);
  for (const i of [0, 1, 2]) assert.equal((await etcdctl(at(i), ['get', 'cl/k'])).stdout, '');
});

test('python3-etcd3: watch, lease, lock', {
  skip: skipUnless(hasPythonModule('etcd3'), 'python3-etcd3 (Debian)'),
  timeout: 60_000,
}, async () => {
  const [h0, p0] = endpoints[0]!.split(':');
  const [h2, p2] = endpoints[2]!.split(':');
  const script = `
import etcd3, json, threading, time
a = etcd3.client(host=${JSON.stringify(h0)}, port=${Number(p0)}, timeout=10)
b = etcd3.client(host=${JSON.stringify(h2)}, port=${Number(p2)}, timeout=10)
out = {}
events, cancel = a.watch_prefix('pw/')
def writer():
    time.sleep(0.5)
    b.put('pw/x', '1')
    b.delete('pw/x')
threading.Thread(target=writer).start()
seen = []
for ev in events:
    seen.append(type(ev).__name__)
    if len(seen) == 2:
        cancel()
out['events'] = seen
lease = a.lease(20)
b.put('pl/k', 'v', lease=lease)
out['ttl'] = lease.remaining_ttl
out['refreshed'] = lease.refresh()[0].TTL
out['keys'] = [k.decode() for k in lease.keys]
lease.revoke()
out['after_revoke'] = b.get('pl/k')[0]
# Debian's python3-etcd3 0.12 cannot wait on a contended lock (its retry callback no longer
# matches tenacity's signature), so contention is checked through the lock key instead.
l1 = a.lock('pylock', ttl=10)
l2 = b.lock('pylock', ttl=10)
out['l1'] = l1.acquire(timeout=5)
out['l1_held'] = l1.is_acquired()
out['holder_seen_by_b'] = b.get('/locks/pylock')[0] == l1.uuid
out['l2_held'] = l2.is_acquired()
l1.release()
out['l2_after'] = l2.acquire(timeout=5)
l2.release()
print(json.dumps(out))
`;
  const r = await run(SYSTEM_PYTHON, ['-c', script], { timeoutMs: 45_000 });
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as Record<string, unknown>;
  assert.deepEqual(out.events, ['PutEvent', 'DeleteEvent']);
  assert.ok((out.ttl as number) > 15 && (out.ttl as number) <= 20);
  assert.equal(out.refreshed, 20);
  assert.deepEqual(out.keys, ['pl/k']);
  assert.equal(out.after_revoke, null);
  assert.equal(out.l1, true);
  assert.equal(out.l1_held, true);
  assert.equal(out.holder_seen_by_b, true);
  assert.equal(out.l2_held, false);
  assert.equal(out.l2_after, true);
});

test('etcdctl: lock and elect with two contenders on different members; member list', {
  skip: skipUnless(hasEtcdctl(), 'etcdctl (Debian etcd-client)'),
  timeout: 120_000,
}, async () => {
  const { spawn } = await import('node:child_process');
  const env = { ...process.env, ETCDCTL_API: '3' };
  const holder = (endpoint: string, args: string[]) => {
    const child = spawn('etcdctl', ['--endpoints', endpoint, ...args], { env });
    const state = { out: '', child };
    child.stdout.on('data', (d: Buffer) => {
      state.out += d.toString();
    });
    return state;
  };
  const until = async (cond: () => boolean, what: string) => {
    const end = Date.now() + 20_000;
    while (!cond()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  // Lock: the first contender holds it (prints its key); the second waits until the first dies.
  const first = holder(endpoints[0]!, ['lock', 'ctl-lock']);
  await until(() => first.out.includes('ctl-lock/'), 'the first lock holder');
  const second = holder(endpoints[1]!, ['lock', 'ctl-lock']);
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(second.out, '', 'the second contender waits');
  first.child.kill('SIGINT');
  await until(() => second.out.includes('ctl-lock/'), 'the second to acquire after the first left');
  second.child.kill('SIGINT');

  // Election: the first campaigner leads; an observer on a third member sees the leader's value.
  const leader = holder(endpoints[1]!, ['elect', 'ctl-elect', 'alpha']);
  await until(() => leader.out.includes('alpha'), 'alpha to lead');
  const observer = holder(endpoints[2]!, ['elect', '-l', 'ctl-elect']);
  await until(() => observer.out.includes('alpha'), 'the observer to see alpha');
  const challenger = holder(endpoints[0]!, ['elect', 'ctl-elect', 'beta']);
  await new Promise((r) => setTimeout(r, 1000));
  assert.equal(challenger.out, '', 'beta waits while alpha leads');
  leader.child.kill('SIGINT');
  await until(() => challenger.out.includes('beta'), 'beta to lead after alpha resigned');
  await until(() => observer.out.includes('beta'), 'the observer to see beta');
  challenger.child.kill('SIGINT');
  observer.child.kill('SIGINT');

  const members = await etcdctl(at(0), ['member', 'list', '-w', 'json']);
  assert.equal(members.code, 0, members.stderr);
  const list = JSON.parse(members.stdout) as { members: { name: string; clientURLs: string[] }[] };
  assert.deepEqual(list.members.map((m) => m.name).sort(), ['s1', 's2', 's3']);
  // Each member's client URL is the etcd address that server published (every port differs here).
  for (const m of list.members) {
    const agent = cluster.agents.find((a) => a.name === m.name)!;
    assert.deepEqual(m.clientURLs, [`http://${agent.etcdEndpoint}`]);
  }
});
