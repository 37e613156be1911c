import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { handleQuery } from '../../src/api/dns/handler.js';
import { CatalogFixture, decode, dnsConfig, query } from './helpers.js';

// Whatever the catalog and limits, a UDP answer fits what the client can take, every SRV kept
// has its target's address beside it, and an answer cut for size says so with TC.

test('UDP answers always fit, keep SRV targets resolvable, and set TC when cut for size', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 40 }),
      fc.integer({ min: 1, max: 55 }),
      fc.integer({ min: 0, max: 50 }),
      fc.option(fc.integer({ min: 1, max: 9000 }), { nil: undefined }),
      fc.constantFrom('A', 'SRV', 'ANY'),
      fc.boolean(),
      (count, nameLength, udpAnswerLimit, edns, type, enableTruncate) => {
        const fixture = new CatalogFixture();
        for (let i = 0; i < count; i++) {
          const node = `n${i}-${'x'.repeat(nameLength)}`;
          fixture.service(node, `10.8.${i >> 8}.${i & 255}`, { id: `s${i}`, service: 'svc', port: 1000 + i });
        }
        const dns = dnsConfig({ udpAnswerLimit, enableTruncate });
        const bytes = handleQuery(query('svc.service.consul', type, edns === undefined ? {} : { edns }), {
          transport: 'udp',
          source: fixture.source(),
          domain: 'consul',
          datacenter: 'dc1',
          dns,
          serverFailure: false,
          nowS: 1,
          random: Math.random,
        });
        assert.ok(bytes !== null);
        const limit = edns === undefined ? 512 : Math.max(512, Math.min(edns, 4096));
        assert.ok(bytes.length <= limit, `${bytes.length} > ${limit}`);
        const response = decode(bytes);
        const answers = response.answers ?? [];
        // udp_answer_limit binds only clients limited to 512 bytes, as in Consul.
        const wanted = udpAnswerLimit > 0 && limit <= 512 ? Math.min(count, udpAnswerLimit) : count;
        assert.ok(answers.length <= wanted);
        if (answers.length < wanted) assert.equal(response.flag_tc, true, 'cut for size without TC');
        if (count > wanted && enableTruncate) assert.equal(response.flag_tc, true);
        const additional = new Set((response.additionals ?? []).map((r) => r.name));
        for (const answer of answers)
          if (answer.type === 'SRV') assert.ok(additional.has(answer.data.target), answer.data.target);
        assert.equal(response.rcode, count === 0 ? 'NXDOMAIN' : 'NOERROR');
      },
    ),
    { numRuns: 150 },
  );
});
