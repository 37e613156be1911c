import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type AgentProcess, Cluster } from '../cluster/harness.js';

// X-Consul-KnownLeader and X-Consul-LastContact on a 3-server cluster: a follower answering a
// ?stale read reports the leader it knows and how long ago it heard from it; the leader says 0.

let cluster: Cluster;
let leader: AgentProcess;
let follower: AgentProcess;

before(async () => {
  cluster = await Cluster.bootstrap(3);
  leader = await cluster.waitForLeader();
  follower = cluster.agents.find((a) => a !== leader)!;
});

after(async () => {
  await cluster?.close();
});

test('a follower ?stale read carries KnownLeader and its LastContact; the leader reports 0', {
  timeout: 60_000,
}, async () => {
  const put = await leader.http('PUT', '/v1/kv/stale/key', 'v');
  assert.equal(put.text, 'true');
  const written = await leader.http('GET', '/v1/kv/stale/key');
  const index = Number(written.headers.get('x-consul-index'));
  assert.equal(written.headers.get('x-consul-knownleader'), 'true');
  assert.equal(written.headers.get('x-consul-lastcontact'), '0');

  // A stale blocking read at index-1 returns once the follower has applied the write.
  const stale = await follower.http(
    'GET',
    `/v1/kv/stale/key?stale&index=${index - 1}&wait=1m`,
    undefined,
    90_000,
  );
  assert.equal(stale.status, 200);
  assert.ok(Number(stale.headers.get('x-consul-index')) >= index);
  assert.equal(stale.headers.get('x-consul-knownleader'), 'true');
  const lastContact = stale.headers.get('x-consul-lastcontact');
  assert.match(lastContact ?? '', /^\d+$/, 'whole milliseconds since the leader was heard from');
  const [entry] = JSON.parse(stale.text) as { Value: string }[];
  assert.equal(Buffer.from(entry!.Value, 'base64').toString(), 'v');
});
