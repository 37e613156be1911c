import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { test } from 'node:test';
import { decode, encode } from 'dns-packet';
import { Etcd3 } from 'etcd3';
import { type AgentProcess, Cluster, waitFor } from './harness.js';

// A client agent (no -server) in front of a 3-server cluster, as real processes: it finds the
// servers through -retry-join, forwards Consul HTTP (blocking queries included), DNS and etcd
// gRPC to them, keeps its own services in the catalog by anti-entropy, and its node's
// serfHealth follows its liveness; a graceful leave deregisters it.

interface HealthEntry {
  Node: { Node: string };
  Service: { ID: string };
  Checks: { CheckID: string; Status: string }[];
}

async function dnsA(port: number, name: string): Promise<string[]> {
  const socket = createSocket('udp4');
  try {
    const answer = await new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no DNS answer')), 3000);
      socket.once('message', (msg) => {
        clearTimeout(timer);
        resolve(msg);
      });
      socket.send(
        encode({ type: 'query', id: 7, flags: 256, questions: [{ type: 'A', name }] }),
        port,
        '127.0.0.1',
      );
    });
    return (decode(answer).answers ?? []).flatMap((a) => (a.type === 'A' ? [String(a.data)] : []));
  } finally {
    socket.close();
  }
}

test('client agent: forwarding, anti-entropy, liveness, leave', { timeout: 180_000 }, async () => {
  const c = await Cluster.bootstrap(3);
  let client: AgentProcess | null = null;
  try {
    client = c.addClient('c1');
    await client.start();
    const self = await client.json<{ Config: { Server: boolean; NodeName: string } }>(
      'GET',
      '/v1/agent/self',
    );
    assert.equal(self.Config.Server, false);
    assert.equal(self.Config.NodeName, 'c1');

    // KV through the client, read on a server; a blocking query through the client wakes on a server write.
    await waitFor(
      async () => (await client!.http('PUT', '/v1/kv/via-client', 'v1')).text === 'true',
      20_000,
      'a KV write through the client',
    );
    assert.equal((await c.agents[0]!.http('GET', '/v1/kv/via-client?raw')).text, 'v1');
    const first = await client.http('GET', '/v1/kv/via-client');
    const index = Number(first.headers.get('x-consul-index'));
    const waiting = client.http('GET', `/v1/kv/via-client?raw&index=${index}&wait=20s`, undefined, 30_000);
    await new Promise((r) => setTimeout(r, 200));
    await c.agents[1]!.http('PUT', '/v1/kv/via-client', 'v2');
    assert.equal((await waiting).text, 'v2');

    // A service registered on the client reaches the catalog, with the node's serfHealth passing.
    const reg = await client.http(
      'PUT',
      '/v1/agent/service/register',
      JSON.stringify({ Name: 'edge', Port: 8443, Check: { TTL: '60s', Status: 'passing' } }),
    );
    assert.equal(reg.status, 200, reg.text);
    const passing = async (via: AgentProcess) =>
      via.json<HealthEntry[]>('GET', '/v1/health/service/edge?passing');
    await waitFor(
      async () => (await passing(c.agents[2]!)).length === 1,
      20_000,
      'edge passing on the servers',
    );
    const [entry] = await passing(c.agents[2]!);
    assert.equal(entry!.Node.Node, 'c1');
    assert.equal(entry!.Checks.find((x) => x.CheckID === 'serfHealth')?.Status, 'passing');

    // An alias check on the client follows the aliased instance, read from a server.
    const alias = await client.http(
      'PUT',
      '/v1/agent/service/register',
      JSON.stringify({ Name: 'edge-proxy', Port: 9443, Check: { AliasService: 'edge' } }),
    );
    assert.equal(alias.status, 200, alias.text);
    await waitFor(
      async () =>
        (await c.agents[1]!.json<HealthEntry[]>('GET', '/v1/health/service/edge-proxy?passing')).length === 1,
      20_000,
      'the alias check to pass',
    );

    // DNS and etcd through the client.
    assert.deepEqual(await dnsA(client.dnsPort, 'edge.service.consul'), ['127.0.0.1']);
    const etcd = new Etcd3({ hosts: `127.0.0.1:${client.etcdPort}` });
    try {
      await etcd.put('through/client').value('etcd');
      assert.equal(await etcd.get('through/client').string(), 'etcd');
    } finally {
      etcd.close();
    }

    // The client keeps working when one server dies.
    await c.agents[0]!.stop('SIGKILL');
    for (let i = 0; i < 6; i++) {
      await waitFor(
        async () => (await client!.http('GET', '/v1/kv/via-client?raw')).text === 'v2',
        20_000,
        'reads with a server down',
      );
    }

    // Killed: its serfHealth turns critical and its service drops out of ?passing.
    await client.stop('SIGKILL');
    await waitFor(async () => (await passing(c.agents[1]!)).length === 0, 30_000, 'edge to drop out');
    const checks = await c.agents[1]!.json<{ CheckID: string; Status: string }[]>(
      'GET',
      '/v1/health/node/c1',
    );
    assert.equal(checks.find((x) => x.CheckID === 'serfHealth')?.Status, 'critical');

    // Restarted: its persisted service comes back and passes again.
    await client.start();
    await waitFor(
      async () => (await passing(c.agents[1]!)).length === 1,
      30_000,
      'edge back after a restart',
    );

    // A graceful leave deregisters the node.
    assert.equal(await client.stop('SIGTERM'), 0);
    await waitFor(
      async () =>
        !(await c.agents[1]!.json<{ Node: string }[]>('GET', '/v1/catalog/nodes')).some(
          (n) => n.Node === 'c1',
        ),
      20_000,
      'c1 to be deregistered',
    );
  } finally {
    await c.close();
  }
});
