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
