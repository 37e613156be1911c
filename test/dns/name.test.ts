import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { addrLabel, parseName, parseReverse } from '../../src/api/dns/name.js';

const zone = { domain: 'consul', datacenter: 'dc1' };

describe('DNS name parsing', () => {
  test('service names: plain, tagged, with datacenter, trailing dot, any case', () => {
    assert.deepEqual(parseName('web.service.consul', zone), { kind: 'service', service: 'web', tag: null });
    assert.deepEqual(parseName('web.service.consul.', zone), { kind: 'service', service: 'web', tag: null });
    assert.deepEqual(parseName('v1.web.service.dc1.consul', zone), {
      kind: 'service',
      service: 'web',
      tag: 'v1',
    });
    assert.deepEqual(parseName('V1.Web.SERVICE.DC1.Consul', zone), {
      kind: 'service',
      service: 'web',
      tag: 'v1',
    });
  });

  test('RFC 2782 names: _tcp and _udp filter no tag, another protocol label is a tag', () => {
    assert.deepEqual(parseName('_web._tcp.service.consul', zone), {
      kind: 'service',
      service: 'web',
      tag: null,
    });
    assert.deepEqual(parseName('_web._udp.service.dc1.consul', zone), {
      kind: 'service',
      service: 'web',
      tag: null,
    });
    assert.deepEqual(parseName('_web._v2.service.consul', zone), {
      kind: 'service',
      service: 'web',
      tag: 'v2',
    });
    assert.deepEqual(parseName('_._tcp.service.consul', zone), { kind: 'unknown' });
  });

  test('node names, which may contain dots', () => {
    assert.deepEqual(parseName('db-1.node.consul', zone), { kind: 'node', node: 'db-1' });
    assert.deepEqual(parseName('db-1.node.dc1.consul', zone), { kind: 'node', node: 'db-1' });
    assert.deepEqual(parseName('db.example.node.consul', zone), { kind: 'node', node: 'db.example' });
  });

  test('apex, other datacenters and unknown forms', () => {
    assert.deepEqual(parseName('consul', zone), { kind: 'apex' });
    assert.deepEqual(parseName('CONSUL.', zone), { kind: 'apex' });
    assert.deepEqual(parseName('web.service.dc2.consul', zone), { kind: 'unknown' });
    assert.deepEqual(parseName('service.consul', zone), { kind: 'unknown' });
    assert.deepEqual(parseName('a.b.web.service.consul', zone), { kind: 'unknown' });
    assert.deepEqual(parseName('foo.consul', zone), { kind: 'unknown' });
    assert.deepEqual(parseName('x.query.consul', zone), { kind: 'unknown' });
    assert.deepEqual(parseName('web..service.consul', zone), { kind: 'unknown' });
  });

  test('names outside the domain', () => {
    assert.deepEqual(parseName('example.com', zone), { kind: 'outside' });
    assert.deepEqual(parseName('', zone), { kind: 'outside' });
    assert.deepEqual(parseName('notconsul', zone), { kind: 'outside' });
    assert.deepEqual(parseName('web.service.consul.com', zone), { kind: 'outside' });
  });

  test('a multi-label domain', () => {
    const corp = { domain: 'sd.example.org', datacenter: 'east' };
    assert.deepEqual(parseName('web.service.east.sd.example.org', corp), {
      kind: 'service',
      service: 'web',
      tag: null,
    });
    assert.deepEqual(parseName('sd.example.org', corp), { kind: 'apex' });
    assert.deepEqual(parseName('example.org', corp), { kind: 'outside' });
  });

  test('.addr names round-trip IPv4 and IPv6 addresses', () => {
    assert.equal(addrLabel('10.0.13.10', 4), '0a000d0a');
    assert.deepEqual(parseName('0a000d0a.addr.dc1.consul', zone), { kind: 'addr', address: '10.0.13.10' });
    const v6 = addrLabel('2001:db8::1', 6);
    assert.equal(v6, '20010db8000000000000000000000001');
    assert.deepEqual(parseName(`${v6}.addr.consul`, zone), {
      kind: 'addr',
      address: '2001:0db8:0000:0000:0000:0000:0000:0001',
    });
    assert.equal(addrLabel('::ffff:10.0.0.1', 6), '00000000000000000000ffff0a000001');
    assert.deepEqual(parseName('0a0d.addr.consul', zone), { kind: 'unknown' });
    assert.deepEqual(parseName('zz000d0a.addr.consul', zone), { kind: 'unknown' });
  });

  test('reverse names', () => {
    assert.equal(parseReverse('1.0.0.10.in-addr.arpa'), '10.0.0.1');
    assert.equal(parseReverse('1.0.0.10.IN-ADDR.ARPA.'), '10.0.0.1');
    assert.equal(parseReverse('1.0.10.in-addr.arpa'), null);
    assert.equal(parseReverse('1.0.0.256.in-addr.arpa'), null);
    const nibbles = '20010db8000000000000000000000001'.split('').reverse().join('.');
    assert.equal(parseReverse(`${nibbles}.ip6.arpa`), '2001:0db8:0000:0000:0000:0000:0000:0001');
    assert.equal(parseReverse('web.service.consul'), null);
  });
});
