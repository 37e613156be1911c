import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Cluster } from '../cluster/harness.js';
import { hasPythonModule, run, SYSTEM_PYTHON, skipUnless } from './tools.js';

// python-consul (Debian python3-consul), unmodified, against a 3-server cluster: KV with flags,
// cas, recurse and a blocking query woken by a write through another server; status endpoints.

let cluster: Cluster;

before(async () => {
  cluster = await Cluster.bootstrap(3);
});

after(async () => {
  await cluster?.close();
});

test('python-consul: KV put/get/cas/recurse/delete, a blocking get, status', {
  skip: skipUnless(hasPythonModule('consul'), 'python3-consul (Debian)'),
  timeout: 60_000,
}, async () => {
  const [a, b] = cluster.agents;
  const script = `
import consul, json, threading, time
a = consul.Consul(host='127.0.0.1', port=${a!.httpPort})
b = consul.Consul(host='127.0.0.1', port=${b!.httpPort})
out = {}
out['put'] = a.kv.put('py/one', 'first', flags=42)
index, item = b.kv.get('py/one')
out['value'] = item['Value'].decode()
out['flags'] = item['Flags']
out['cas_wrong'] = a.kv.put('py/one', 'second', cas=item['ModifyIndex'] + 1000)
out['cas_right'] = a.kv.put('py/one', 'second', cas=item['ModifyIndex'])
b.kv.put('py/two', 'x')
index, items = a.kv.get('py/', recurse=True)
out['keys'] = [i['Key'] for i in items]
index, keys = a.kv.get('py/', keys=True)
out['listed'] = keys
# A blocking query on one server, woken by a write through another.
index, _ = a.kv.get('py/one')
def later():
    time.sleep(0.5)
    b.kv.put('py/one', 'third')
threading.Thread(target=later).start()
began = time.time()
new_index, item = a.kv.get('py/one', index=index, wait='20s')
out['woke_after'] = time.time() - began
out['woken_value'] = item['Value'].decode()
out['index_moved'] = int(new_index) > int(index)
out['deleted'] = a.kv.delete('py/', recurse=True)
out['gone'] = b.kv.get('py/one')[1]
out['leader'] = a.status.leader()
out['peers'] = sorted(a.status.peers())
print(json.dumps(out))
`;
  const r = await run(SYSTEM_PYTHON, ['-c', script], { timeoutMs: 45_000 });
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as Record<string, unknown>;
  assert.equal(out.put, true);
  assert.equal(out.value, 'first');
  assert.equal(out.flags, 42);
  assert.equal(out.cas_wrong, false);
  assert.equal(out.cas_right, true);
  assert.deepEqual(out.keys, ['py/one', 'py/two']);
  assert.deepEqual(out.listed, ['py/one', 'py/two']);
  assert.equal(out.woken_value, 'third');
  assert.equal(out.index_moved, true);
  assert.ok((out.woke_after as number) < 10, `woke after ${out.woke_after} s`);
  assert.equal(out.deleted, true);
  assert.equal(out.gone, null);
  const leader = await cluster.waitForLeader();
  assert.equal(out.leader, leader.serverAddress);
  assert.deepEqual(out.peers, cluster.agents.map((x) => x.serverAddress).sort());
});

test('python-consul: sessions and locks (acquire, contention, release on destroy, renew)', {
  skip: skipUnless(hasPythonModule('consul'), 'python3-consul (Debian)'),
  timeout: 60_000,
}, async () => {
  const [a, b] = cluster.agents;
  const script = `
import consul, json
a = consul.Consul(host='127.0.0.1', port=${a!.httpPort})
b = consul.Consul(host='127.0.0.1', port=${b!.httpPort})
out = {}
s1 = a.session.create(name='first', ttl=15, lock_delay=0)
s2 = b.session.create(name='second', behavior='delete', lock_delay=0)
out['distinct'] = s1 != s2
out['acquired'] = a.kv.put('lock/x', 'one', acquire=s1)
out['contended'] = b.kv.put('lock/x', 'two', acquire=s2)
index, item = b.kv.get('lock/x')
out['holder_is_s1'] = item.get('Session') == s1
out['lock_index'] = item['LockIndex']
out['renewed'] = a.session.renew(s1)['ID'] == s1
out['info_name'] = b.session.info(s1)[1]['Name']
out['listed'] = sorted(s['Name'] for s in a.session.list()[1])
a.session.destroy(s1)
index, item = b.kv.get('lock/x')
out['released_value'] = item['Value'].decode()
out['released_holder'] = item.get('Session')
out['second_acquires'] = b.kv.put('lock/x', 'two', acquire=s2)
out['released_by_holder'] = b.kv.put('lock/x', 'two', release=s2)
out['info_gone'] = b.session.info(s1)[1]
print(json.dumps(out))
`;
  const r = await run(SYSTEM_PYTHON, ['-c', script], { timeoutMs: 45_000 });
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as Record<string, unknown>;
  assert.equal(out.distinct, true);
  assert.equal(out.acquired, true);
  assert.equal(out.contended, false);
  assert.equal(out.holder_is_s1, true);
  assert.equal(out.lock_index, 1);
  assert.equal(out.renewed, true);
  assert.equal(out.info_name, 'first');
  assert.deepEqual(out.listed, ['first', 'second']);
  // Destroying a session with the default 'release' behavior releases its lock but keeps the key.
  assert.equal(out.released_value, 'one');
  assert.equal(out.released_holder, null);
  assert.equal(out.second_acquires, true);
  assert.equal(out.released_by_holder, true);
  assert.equal(out.info_gone, null);
});
