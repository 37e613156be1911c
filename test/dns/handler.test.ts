import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as packet from 'dns-packet';
import type { DnsConfig } from '../../src/agent/config.js';
import { fitCount } from '../../src/api/dns/fit.js';
import { handleQuery, type Transport } from '../../src/api/dns/handler.js';
import { CatalogFixture, decode, dnsConfig, query } from './helpers.js';

function handle(
  fixture: CatalogFixture,
  message: Buffer,
  options: { transport?: Transport; dns?: Partial<DnsConfig>; serverFailure?: boolean } = {},
) {
  return handleQuery(message, {
    transport: options.transport ?? 'udp',
    source: fixture.source(),
    domain: 'consul',
    datacenter: 'dc1',
    dns: dnsConfig(options.dns),
    serverFailure: options.serverFailure ?? false,
    nowS: 1_700_000_000,
    random: Math.random,
  });
}

/** `count` healthy instances of "many" with long node names, so a few fill 512 bytes. */
function manyFixture(count: number): CatalogFixture {
  const fixture = new CatalogFixture();
  for (let i = 1; i <= count; i++) {
    const node = `node-with-a-rather-long-name-to-fill-the-message-${String(i).padStart(3, '0')}`;
    fixture.service(node, `10.3.${i >> 8}.${i & 255}`, { id: `m${i}`, service: 'many', port: 1000 + i });
  }
  return fixture;
}

describe('DNS messages', () => {
  test('a response echoes id, question and RD; it is authoritative and offers no recursion', () => {
    const fixture = new CatalogFixture().service('n1', '10.0.0.1', { id: 'w', service: 'web', port: 80 });
    const response = decode(handle(fixture, query('Web.Service.Consul', 'A', { id: 4242 }))!);
    assert.equal(response.id, 4242);
    assert.equal(response.type, 'response');
    assert.equal(response.rcode, 'NOERROR');
    assert.ok(response.flag_aa && response.flag_rd && !response.flag_ra && !response.flag_tc);
    assert.deepEqual(response.questions, [{ name: 'Web.Service.Consul', type: 'A', class: 'IN' }]);
    assert.deepEqual(
      response.answers!.map((a) => [a.name, a.type, 'data' in a ? a.data : null]),
      [['Web.Service.Consul', 'A', '10.0.0.1']],
    );
  });

  test('rcodes: NXDOMAIN with SOA, REFUSED outside the zone, SERVFAIL when the consistent read failed', () => {
    const fixture = new CatalogFixture();
    const nx = decode(handle(fixture, query('nope.service.consul', 'A'))!);
    assert.equal(nx.rcode, 'NXDOMAIN');
    assert.equal(nx.authorities![0]!.type, 'SOA');
    assert.equal(decode(handle(fixture, query('example.com', 'A'))!).rcode, 'REFUSED');
    assert.equal(
      decode(handle(fixture, query('x.service.consul', 'A'), { serverFailure: true })!).rcode,
      'SERVFAIL',
    );
  });

  test('malformed input never throws: short or response packets are dropped, garbage is FORMERR', () => {
    const fixture = new CatalogFixture();
    assert.equal(handle(fixture, Buffer.alloc(0)), null);
    assert.equal(handle(fixture, Buffer.from([1, 2, 3])), null);
    const response = handle(fixture, query('web.service.consul', 'A'))!;
    assert.equal(handle(fixture, response), null, 'a response is never answered (no reflection loops)');
    const garbage = Buffer.concat([
      Buffer.from([0x12, 0x34, 0x01, 0x00, 0x00, 0x05, 0, 0, 0, 0, 0, 0]),
      Buffer.from('junk'),
    ]);
    const formerr = decode(handle(fixture, garbage)!);
    assert.equal(formerr.id, 0x1234);
    assert.equal(formerr.rcode, 'FORMERR');
    // Random bytes: whatever comes back is a decodable response or nothing.
    let seed = 7;
    for (let i = 0; i < 500; i++) {
      const bytes = Buffer.alloc(12 + (i % 60));
      for (let j = 0; j < bytes.length; j++) {
        seed = (seed * 1103515245 + 12345) & 0x7fffffff;
        bytes[j] = seed & 0xff;
      }
      const out = handle(fixture, bytes);
      if (out !== null) assert.equal(decode(out).type, 'response');
    }
  });

  test('two questions are FORMERR; an opcode other than QUERY is NOTIMP; class CH is REFUSED', () => {
    const fixture = new CatalogFixture();
    const two = packet.encode({
      type: 'query',
      id: 9,
      questions: [
        { name: 'a.service.consul', type: 'A' },
        { name: 'b.service.consul', type: 'A' },
      ],
    });
    assert.equal(decode(handle(fixture, two)!).rcode, 'FORMERR');
    const notify = Buffer.from(query('consul', 'SOA'));
    notify.writeUInt16BE(notify.readUInt16BE(2) | (4 << 11), 2);
    assert.equal(decode(handle(fixture, notify)!).rcode, 'NOTIMP');
    const chaos = packet.encode({
      type: 'query',
      id: 3,
      questions: [{ name: 'version.bind', type: 'TXT', class: 'CH' }],
    });
    assert.equal(decode(handle(fixture, chaos)!).rcode, 'REFUSED');
    const odd = query('web.service.consul', 'A');
    odd.writeUInt16BE(77, odd.length - 2);
    const refused = decode(handle(fixture, odd)!);
    assert.ok(['REFUSED', 'SERVFAIL'].includes(refused.rcode), refused.rcode);
  });

  test('ANY for a service gives its addresses', () => {
    const fixture = new CatalogFixture()
      .service('n1', '10.0.0.1', { id: 'a', service: 'web', port: 80 })
      .service('n2', '2001:db8::2', { id: 'b', service: 'web', port: 80 });
    const response = decode(handle(fixture, query('web.service.consul', 'ANY'))!);
    assert.deepEqual(response.answers!.map((a) => a.type).sort(), ['A', 'AAAA']);
  });

  test('an unknown record type is NODATA, echoed as asked', () => {
    const fixture = new CatalogFixture().service('n1', '10.0.0.1', { id: 'w', service: 'web', port: 80 });
    const message = query('web.service.consul', 'A');
    // Patch the question type to 65400 (unassigned).
    message.writeUInt16BE(65400, message.length - 4);
    const response = decode(handle(fixture, message)!);
    assert.equal(response.rcode, 'NOERROR');
    assert.equal(response.answers!.length, 0);
    assert.equal(response.questions![0]!.type, 'UNKNOWN_65400');
  });

  test('UDP: udp_answer_limit answers; TC only with enable_truncate; TCP carries all', () => {
    const fixture = new CatalogFixture();
    for (let i = 1; i <= 6; i++)
      fixture.service(`n${i}`, `10.4.0.${i}`, { id: `s${i}`, service: 'six', port: i });
    const plain = decode(handle(fixture, query('six.service.consul', 'A'))!);
    assert.equal(plain.answers!.length, 3);
    assert.equal(plain.flag_tc, false);
    const truncating = decode(
      handle(fixture, query('six.service.consul', 'A'), { dns: { enableTruncate: true } })!,
    );
    assert.equal(truncating.answers!.length, 3);
    assert.equal(truncating.flag_tc, true);
    const tcp = decode(handle(fixture, query('six.service.consul', 'SRV'), { transport: 'tcp' })!);
    assert.equal(tcp.answers!.length, 6);
    assert.equal(tcp.additionals!.length, 6);
    assert.equal(tcp.flag_tc, false);
  });

  test('UDP: never over 512 bytes without EDNS, TC set; the EDNS0 buffer size raises the limit', () => {
    const fixture = manyFixture(40);
    const dns = { udpAnswerLimit: 100 };
    const bytes = handle(fixture, query('many.service.consul', 'SRV'), { dns })!;
    assert.ok(bytes.length <= 512, `${bytes.length} bytes`);
    const small = decode(bytes);
    assert.equal(small.flag_tc, true);
    assert.ok(small.answers!.length >= 1 && small.answers!.length < 40);
    // Every SRV kept still has its target's address beside it.
    const targets = small.answers!.map((a) => (a.type === 'SRV' ? a.data.target : ''));
    assert.deepEqual(small.additionals!.map((a) => a.name).sort(), [...targets].sort());

    const ednsBytes = handle(fixture, query('many.service.consul', 'SRV', { edns: 1232 }), { dns })!;
    assert.ok(ednsBytes.length <= 1232 && ednsBytes.length > 512, `${ednsBytes.length} bytes`);
    const edns = decode(ednsBytes);
    assert.equal(edns.flag_tc, true);
    assert.ok(edns.answers!.length > small.answers!.length);
    const opt = edns.additionals!.find((a) => a.type === 'OPT');
    assert.ok(opt, 'an EDNS query gets an OPT back');

    // 15 SRV records with their addresses (about 2.9 kB) fit a 4096-byte buffer whole.
    const big = decode(
      handle(manyFixture(15), query('many.service.consul', 'SRV', { edns: 65000 }), { dns })!,
    );
    assert.equal(big.flag_tc, false);
    assert.equal(big.answers!.length, 15);
  });

  test('EDNS: a version other than 0 gets BADVERS', () => {
    const message = packet.encode({
      type: 'query',
      id: 5,
      questions: [{ name: 'consul', type: 'SOA' }],
      additionals: [
        {
          type: 'OPT',
          name: '.',
          udpPayloadSize: 1232,
          extendedRcode: 0,
          ednsVersion: 1,
          flags: 0,
          flag_do: false,
          options: [],
        },
      ],
    });
    const response = decode(
      handleQuery(message, {
        transport: 'udp',
        source: new CatalogFixture().source(),
        domain: 'consul',
        datacenter: 'dc1',
        dns: dnsConfig(),
        serverFailure: false,
        nowS: 0,
        random: Math.random,
      })!,
    );
    const opt = response.additionals!.find((a) => a.type === 'OPT');
    assert.ok(opt && opt.type === 'OPT' && opt.extendedRcode === 1);
  });

  test('fitCount finds the largest fitting count', () => {
    assert.equal(
      fitCount(10, (n) => n <= 7),
      7,
    );
    assert.equal(
      fitCount(10, () => true),
      10,
    );
    assert.equal(
      fitCount(10, (n) => n === 0),
      0,
    );
    assert.equal(
      fitCount(0, () => false),
      0,
    );
    assert.throws(() => fitCount(-1, () => true), /max must be a non-negative integer, got -1/);
  });
});
