import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { DnsConfig } from '../../src/agent/config.js';
import { type AnswerGroup, resolve, serviceTtl, shuffle } from '../../src/api/dns/resolve.js';
import { CatalogFixture, dnsConfig } from './helpers.js';

const zone = { domain: 'consul', datacenter: 'dc1' };
const NOW_S = 1_700_000_000;

function ask(
  fixture: CatalogFixture,
  name: string,
  type: string,
  dns: Partial<DnsConfig> = {},
  random = Math.random,
) {
  return resolve({ name, type }, fixture.source(), { zone, dns: dnsConfig(dns), nowS: NOW_S, random });
}

function data(groups: AnswerGroup[]): unknown[] {
  return groups.map((g) => ('data' in g.answer ? g.answer.data : null));
}

/** Three healthy web instances on three nodes, one critical, one warning; a db service. */
function webFixture(): CatalogFixture {
  return new CatalogFixture()
    .service('n1', '10.0.0.1', { id: 'web1', service: 'web', port: 8080, tags: ['v1', 'Primary'] })
    .service('n2', '10.0.0.2', { id: 'web2', service: 'web', port: 8081, tags: ['v2'] })
    .service('n3', '10.0.0.3', { id: 'web3', service: 'web', port: 8082, tags: ['v1'] }, 'warning')
    .service('n4', '10.0.0.4', { id: 'web4', service: 'web', port: 8083, tags: ['v1'] }, 'critical')
    .service('n5', '10.0.0.5', { id: 'db', service: 'db', port: 5432, address: '192.168.1.5' });
}

describe('DNS resolution from the catalog', () => {
  test('A: healthy instances (warning included), critical excluded, each address once', () => {
    const fixture = webFixture().service('n1', '10.0.0.1', { id: 'web1b', service: 'web', port: 9090 });
    const r = ask(fixture, 'web.service.consul', 'A');
    assert.equal(r.rcode, 'NOERROR');
    assert.deepEqual((data(r.groups) as string[]).sort(), ['10.0.0.1', '10.0.0.2', '10.0.0.3']);
    assert.ok(r.groups.every((g) => g.answer.name === 'web.service.consul' && g.answer.type === 'A'));
    assert.deepEqual(r.authorities, []);
  });

  test('only_passing drops warning instances too', () => {
    const r = ask(webFixture(), 'web.service.consul', 'A', { onlyPassing: true });
    assert.deepEqual((data(r.groups) as string[]).sort(), ['10.0.0.1', '10.0.0.2']);
  });

  test('a critical or maintenance node check takes every service on the node out', () => {
    const fixture = webFixture()
      .nodeCheck('n1', 'serfHealth', 'critical')
      .nodeCheck('n2', '_node_maintenance', 'maintenance');
    assert.deepEqual(data(ask(fixture, 'web.service.consul', 'A').groups), ['10.0.0.3']);
  });

  test('the service address wins over the node address', () => {
    assert.deepEqual(data(ask(webFixture(), 'db.service.consul', 'A').groups), ['192.168.1.5']);
  });

  test('SRV: target is the node, or HEX.addr for a service address of its own; addresses additional', () => {
    const web = ask(webFixture(), 'v2.web.service.dc1.consul', 'SRV');
    assert.equal(web.groups.length, 1);
    const [group] = web.groups;
    assert.deepEqual(group!.answer, {
      type: 'SRV',
      name: 'v2.web.service.dc1.consul',
      ttl: 0,
      data: { priority: 1, weight: 1, port: 8081, target: 'n2.node.dc1.consul' },
    });
    assert.deepEqual(group!.additionals, [
      { type: 'A', name: 'n2.node.dc1.consul', ttl: 0, data: '10.0.0.2' },
    ]);

    const db = ask(webFixture(), '_db._tcp.service.consul', 'SRV');
    const srv = db.groups[0]!.answer;
    assert.equal(srv.type === 'SRV' && srv.data.target, 'c0a80105.addr.dc1.consul');
    assert.deepEqual(db.groups[0]!.additionals, [
      { type: 'A', name: 'c0a80105.addr.dc1.consul', ttl: 0, data: '192.168.1.5' },
    ]);
    // The .addr target resolves.
    assert.deepEqual(data(ask(webFixture(), 'c0a80105.addr.dc1.consul', 'A').groups), ['192.168.1.5']);
  });

  test('SRV weight follows Weights for the instance status', () => {
    const fixture = new CatalogFixture().service(
      'n1',
      '10.0.0.1',
      { id: 'w', service: 'web', port: 80, weights: { passing: 10, warning: 2 } },
      'warning',
    );
    const srv = ask(fixture, 'web.service.consul', 'SRV').groups[0]!.answer;
    assert.equal(srv.type === 'SRV' && srv.data.weight, 2);
  });

  test('tags match without case, in both the plain and the RFC 2782 form', () => {
    assert.deepEqual(data(ask(webFixture(), 'PRIMARY.web.service.consul', 'A').groups), ['10.0.0.1']);
    assert.deepEqual((data(ask(webFixture(), '_web._v1.service.consul', 'A').groups) as string[]).sort(), [
      '10.0.0.1',
      '10.0.0.3',
    ]);
    assert.equal(ask(webFixture(), '_web._tcp.service.consul', 'SRV').groups.length, 3);
  });

  test('service and node names registered with capitals answer any case', () => {
    const fixture = new CatalogFixture().service('Node-A', '10.1.0.1', {
      id: 'x',
      service: 'Billing',
      port: 1,
    });
    assert.deepEqual(data(ask(fixture, 'billing.service.consul', 'A').groups), ['10.1.0.1']);
    assert.deepEqual(data(ask(fixture, 'BILLING.service.consul', 'A').groups), ['10.1.0.1']);
    assert.deepEqual(data(ask(fixture, 'node-a.node.consul', 'A').groups), ['10.1.0.1']);
  });

  test('IPv6 addresses answer AAAA; A for them is NODATA', () => {
    const fixture = new CatalogFixture().service('n6', '2001:db8::6', { id: 'v6', service: 'six', port: 1 });
    assert.deepEqual(data(ask(fixture, 'six.service.consul', 'AAAA').groups), ['2001:db8::6']);
    const a = ask(fixture, 'six.service.consul', 'A');
    assert.equal(a.rcode, 'NOERROR');
    assert.deepEqual(a.groups, []);
    assert.equal(a.authorities[0]?.type, 'SOA');
  });

  test('a host name as service address answers CNAME', () => {
    const fixture = new CatalogFixture().service('n7', '10.0.0.7', {
      id: 'ext',
      service: 'ext',
      port: 443,
      address: 'api.example.com',
    });
    assert.deepEqual(ask(fixture, 'ext.service.consul', 'A').groups[0]!.answer, {
      type: 'CNAME',
      name: 'ext.service.consul',
      ttl: 0,
      data: 'api.example.com',
    });
    const srv = ask(fixture, 'ext.service.consul', 'SRV').groups[0]!;
    assert.equal(srv.answer.type === 'SRV' && srv.answer.data.target, 'api.example.com');
    assert.deepEqual(srv.additionals, []);
  });

  test('NXDOMAIN with the SOA: unknown service, no healthy instance, unknown node, other datacenter', () => {
    const fixture = webFixture().service(
      'n8',
      '10.0.0.8',
      { id: 'sick', service: 'sick', port: 1 },
      'critical',
    );
    for (const name of [
      'nope.service.consul',
      'sick.service.consul',
      'v9.web.service.consul',
      'n9.node.consul',
      'web.service.dc2.consul',
      'foo.consul',
    ]) {
      const r = ask(fixture, name, 'A');
      assert.equal(r.rcode, 'NXDOMAIN', name);
      assert.deepEqual(r.groups, []);
      assert.deepEqual(r.authorities, [
        {
          type: 'SOA',
          name: 'consul',
          ttl: 0,
          data: {
            mname: 'ns.consul',
            rname: 'hostmaster.consul',
            serial: NOW_S,
            refresh: 3600,
            retry: 600,
            expire: 86400,
            minimum: 0,
          },
        },
      ]);
    }
  });

  test('names outside the domain are REFUSED', () => {
    const r = ask(webFixture(), 'example.com', 'A');
    assert.deepEqual(r, { rcode: 'REFUSED', groups: [], authorities: [] });
  });

  test('nodes: A, TXT from meta, ANY both; a type with nothing is NODATA', () => {
    const fixture = new CatalogFixture().node('db1', '10.2.0.1', { rack: 'r7', 'rfc1035-note': 'hello' });
    assert.deepEqual(data(ask(fixture, 'db1.node.consul', 'A').groups), ['10.2.0.1']);
    const txt = ask(fixture, 'db1.node.dc1.consul', 'TXT').groups.map((g) => g.answer);
    assert.deepEqual(
      txt.map((r) => (r.type === 'TXT' ? (r.data as Buffer[]).map(String).join('') : '')),
      ['rack=r7', 'hello'],
    );
    assert.deepEqual(
      ask(fixture, 'db1.node.consul', 'ANY').groups.map((g) => g.answer.type),
      ['A', 'TXT', 'TXT'],
    );
    const none = ask(fixture, 'db1.node.consul', 'AAAA');
    assert.equal(none.rcode, 'NOERROR');
    assert.deepEqual(none.groups, []);
    assert.equal(none.authorities[0]?.type, 'SOA');
  });

  test('TTLs: node_ttl for nodes; service_ttl by name, longest prefix*, then *', () => {
    const fixture = webFixture();
    const dns = { nodeTtlS: 30, serviceTtlS: { '*': 5, 'we*': 7, web: 9, 'd*': 11 } };
    assert.equal(ask(fixture, 'n1.node.consul', 'A', dns).groups[0]!.answer.type === 'A' && 30, 30);
    const ttls = (name: string, type = 'A') =>
      ask(fixture, name, type, dns).groups.map((g) => ('ttl' in g.answer ? g.answer.ttl : -1));
    assert.deepEqual(ttls('n1.node.consul'), [30]);
    assert.deepEqual(new Set(ttls('web.service.consul')), new Set([9]));
    assert.deepEqual(ttls('db.service.consul'), [11]);
    assert.equal(serviceTtl({ '*': 5, 'we*': 7, 'web-*': 8 }, 'web-api'), 8);
    assert.equal(serviceTtl({ '*': 5, 'we*': 7 }, 'other'), 5);
    assert.equal(serviceTtl({}, 'other'), 0);
  });

  test('answers are shuffled per query, from the injected randomness', () => {
    const fixture = new CatalogFixture();
    for (let i = 1; i <= 8; i++)
      fixture.service(`n${i}`, `10.9.0.${i}`, { id: `s${i}`, service: 'many', port: i });
    let seed = 1;
    const random = () => {
      seed = (seed * 48271) % 2147483647;
      return seed / 2147483647;
    };
    const orders = new Set<string>();
    for (let i = 0; i < 10; i++)
      orders.add(JSON.stringify(data(ask(fixture, 'many.service.consul', 'A', {}, random).groups)));
    assert.ok(orders.size > 1, 'ten queries should not all see the same order');
    const sorted = [1, 2, 3, 4, 5, 6, 7, 8].map((i) => `10.9.0.${i}`);
    for (const order of orders) assert.deepEqual([...(JSON.parse(order) as string[])].sort(), sorted);
    assert.deepEqual(shuffle([1, 2, 3], () => 0.999).sort(), [1, 2, 3]);
  });

  test('a_record_limit caps A answers, not SRV', () => {
    const fixture = new CatalogFixture();
    for (let i = 1; i <= 6; i++)
      fixture.service(`n${i}`, `10.9.0.${i}`, { id: `s${i}`, service: 'many', port: i });
    assert.equal(ask(fixture, 'many.service.consul', 'A', { aRecordLimit: 2 }).groups.length, 2);
    assert.equal(ask(fixture, 'many.service.consul', 'SRV', { aRecordLimit: 2 }).groups.length, 6);
  });

  test('the apex answers SOA and NS (up to three servers, addresses additional)', () => {
    const fixture = webFixture();
    fixture.servers = ['n1', 'n2', 'n3', 'n4', 'ghost'];
    const soa = ask(fixture, 'consul', 'SOA');
    assert.equal(soa.rcode, 'NOERROR');
    assert.equal(soa.groups[0]!.answer.type, 'SOA');
    const ns = ask(fixture, 'consul', 'NS');
    assert.equal(ns.groups.length, 3);
    for (const group of ns.groups) {
      assert.equal(group.answer.name, 'consul');
      assert.match(String('data' in group.answer && group.answer.data), /^n[1-4]\.node\.dc1\.consul$/);
      assert.equal(group.additionals[0]?.type, 'A');
    }
    assert.deepEqual(
      ask(fixture, 'consul', 'ANY')
        .groups.map((g) => g.answer.type)
        .slice(0, 2),
      ['SOA', 'NS'],
    );
    const a = ask(fixture, 'consul', 'A');
    assert.equal(a.rcode, 'NOERROR');
    assert.equal(a.authorities[0]?.type, 'SOA');
  });

  test('reverse lookups: PTR to the node, else to the service with that address; unknown is REFUSED', () => {
    const fixture = webFixture().service('n9', '2001:db8::9', { id: 'v6', service: 'six', port: 1 });
    const ptr = (name: string) => ask(fixture, name, 'PTR');
    assert.deepEqual(data(ptr('2.0.0.10.in-addr.arpa').groups), ['n2.node.dc1.consul']);
    assert.deepEqual(data(ptr('5.1.168.192.in-addr.arpa').groups), ['db.service.consul']);
    const nibbles = '20010db8000000000000000000000009'.split('').reverse().join('.');
    assert.deepEqual(data(ptr(`${nibbles}.ip6.arpa`).groups), ['n9.node.dc1.consul']);
    assert.equal(ptr('7.7.7.7.in-addr.arpa').rcode, 'REFUSED');
  });

  test('an instance whose SRV target would not be a valid DNS name is left out of SRV answers', () => {
    const fixture = new CatalogFixture()
      .service('ok', '10.0.0.1', { id: 'a', service: 'web', port: 80 })
      .service('n'.repeat(64), '10.0.0.2', { id: 'b', service: 'web', port: 81 });
    const srv = ask(fixture, 'web.service.consul', 'SRV');
    assert.deepEqual(
      srv.groups.map((g) => (g.answer.type === 'SRV' ? g.answer.data.target : '')),
      ['ok.node.dc1.consul'],
    );
    assert.equal(ask(fixture, 'web.service.consul', 'A').groups.length, 2, 'A answers need no target name');
  });
});
