import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { DnsConfig } from '../../src/agent/config.js';
import { type DnsServer, startDnsServer } from '../../src/api/dns/dns-server.js';
import { silentLogger } from '../../src/server/logger.js';
import { ConclaveServer } from '../../src/server/server.js';
import { CatalogFixture, decode, dnsConfig, query, tcpExchange, udpExchange } from './helpers.js';

function start(fixture: CatalogFixture, dns: Partial<DnsConfig> = {}, port = 0): Promise<DnsServer> {
  return startDnsServer({
    server: {
      store: fixture.store,
      raftConfiguration: () => ({ servers: fixture.servers.map((name) => ({ name })) }),
      readBarrier: async () => {},
    },
    config: { domain: 'consul', datacenter: 'dc1', dns: dnsConfig(dns) },
    host: '127.0.0.1',
    port,
    log: silentLogger,
  });
}

describe('DNS server over UDP and TCP', () => {
  const fixture = new CatalogFixture();
  let dns: DnsServer;

  before(async () => {
    for (let i = 1; i <= 5; i++)
      fixture.service(`n${i}`, `10.5.0.${i}`, { id: `w${i}`, service: 'web', port: 80 + i });
    fixture.service('n6', '10.5.0.6', { id: 'w6', service: 'web', port: 86 }, 'critical');
    dns = await start(fixture, { enableTruncate: true });
  });
  after(() => dns.close());

  test('UDP and TCP share the port; UDP is cut at 3 with TC, TCP carries every healthy instance', async () => {
    assert.ok(dns.port > 0);
    const udp = decode(await udpExchange(dns.port, query('web.service.consul', 'SRV')));
    assert.equal(udp.answers!.length, 3);
    assert.equal(udp.flag_tc, true);
    const [tcpBytes] = await tcpExchange(dns.port, [query('web.service.consul', 'SRV')]);
    const tcp = decode(tcpBytes!);
    assert.equal(tcp.flag_tc, false);
    assert.deepEqual(
      tcp.answers!.map((a) => (a.type === 'SRV' ? a.data.port : 0)).sort(),
      [81, 82, 83, 84, 85],
      'the critical instance (port 86) is left out',
    );
  });

  test('several queries pipelined on one TCP connection are all answered', async () => {
    const names = ['n1.node.consul', 'n2.node.consul', 'nope.node.consul', 'consul'];
    const answers = (
      await tcpExchange(
        dns.port,
        names.map((n, i) => query(n, i === 3 ? 'SOA' : 'A', { id: 100 + i })),
      )
    )
      .map(decode)
      .sort((a, b) => a.id! - b.id!);
    assert.deepEqual(
      answers.map((a) => a.rcode),
      ['NOERROR', 'NOERROR', 'NXDOMAIN', 'NOERROR'],
    );
    assert.deepEqual(
      answers[1]!.answers!.map((a) => ('data' in a ? a.data : null)),
      ['10.5.0.2'],
    );
  });

  test('catalog changes are visible to the next query', async () => {
    fixture.setCheck('n1', 'check-w1', 'critical');
    try {
      const [bytes] = await tcpExchange(dns.port, [query('web.service.consul', 'A')]);
      const addresses = decode(bytes!).answers!.map((a) => ('data' in a ? a.data : null));
      assert.equal(addresses.length, 4);
      assert.ok(!addresses.includes('10.5.0.1'));
    } finally {
      fixture.setCheck('n1', 'check-w1', 'passing');
    }
  });

  test('garbage over UDP and TCP does not stop the server', async () => {
    const socket = dgram.createSocket('udp4');
    await new Promise<void>((resolve) =>
      socket.send(Buffer.from('hello'), dns.port, '127.0.0.1', () => resolve()),
    );
    socket.close();
    const formerr = decode(await udpExchange(dns.port, Buffer.from([0, 7, 1, 0, 0, 9, 0, 0, 0, 0, 0, 0, 1])));
    assert.equal(formerr.rcode, 'FORMERR');
    // A TCP client that sends half a frame and leaves.
    await new Promise<void>((resolve) => {
      const half = net.connect(dns.port, '127.0.0.1', () => {
        half.end(Buffer.from([0, 50, 1, 2, 3]));
      });
      half.on('close', () => resolve());
      half.on('error', () => resolve());
      half.resume();
    });
    const ok = decode(await udpExchange(dns.port, query('n3.node.consul', 'A')));
    assert.equal(ok.rcode, 'NOERROR');
  });

  test('a port in use is an error naming it', async () => {
    await assert.rejects(start(fixture, {}, dns.port), /EADDRINUSE/);
  });
});

describe('DNS server on a real server', () => {
  test('allow_stale=false answers after a read barrier, from what was written through Raft', async () => {
    const server = new ConclaveServer({
      nodeId: randomUUID(),
      nodeName: 'dns-test',
      dataDir: null,
      bindHost: '127.0.0.1',
      serverPort: 0,
      bootstrap: 'self',
      retryJoin: [],
      log: silentLogger,
      tickMs: 10,
    });
    await server.start();
    let dns: DnsServer | null = null;
    try {
      for (let i = 0; i < 500 && !server.isLeader(); i++) await new Promise((r) => setTimeout(r, 10));
      assert.ok(server.isLeader(), 'no leader');
      await server.write({
        type: 'catalogRegister',
        node: { node: 'app1', address: '10.6.0.1' },
        service: { id: 'api', service: 'api', port: 9000 },
        checks: [{ checkId: 'api-alive', serviceId: 'api', status: 'passing' }],
      });
      dns = await startDnsServer({
        server,
        config: { domain: 'consul', datacenter: 'dc1', dns: dnsConfig({ allowStale: false }) },
        host: '127.0.0.1',
        port: 0,
        log: silentLogger,
      });
      const srv = decode(await udpExchange(dns.port, query('api.service.consul', 'SRV')));
      assert.deepEqual(
        srv.answers!.map((a) => (a.type === 'SRV' ? [a.data.port, a.data.target] : null)),
        [[9000, 'app1.node.dc1.consul']],
      );
      // The zone's NS names this server, with its catalog address.
      for (let i = 0; i < 300 && !server.store.catalog.nodes.has('dns-test'); i++)
        await new Promise((r) => setTimeout(r, 10));
      const ns = decode(await udpExchange(dns.port, query('consul', 'NS')));
      assert.deepEqual(
        ns.answers!.map((a) => (a.type === 'NS' ? a.data : null)),
        ['dns-test.node.dc1.consul'],
      );
      assert.deepEqual(
        ns.additionals!.map((a) => (a.type === 'A' ? a.data : null)),
        ['127.0.0.1'],
      );
    } finally {
      await dns?.close();
      await server.stop();
    }
  });
});
