import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Catalog, type CatalogEffects } from '../../src/store/catalog.js';

// The per-service check index behind Catalog.instances() must always agree with a scan of the
// node's checks, whatever sequence of registrations, updates, moves and removals came before.

const NODES = ['n1', 'n2'];
const SERVICES = ['a', 'b', 'c'];
const CHECKS = ['k1', 'k2', 'k3', 'k4'];

const op = fc.oneof(
  fc.record({
    kind: fc.constant('register' as const),
    node: fc.constantFrom(...NODES),
    service: fc.option(fc.constantFrom(...SERVICES), { nil: undefined }),
    check: fc.constantFrom(...CHECKS),
    checkService: fc.constantFrom('', ...SERVICES),
    status: fc.constantFrom('passing' as const, 'warning' as const, 'critical' as const),
  }),
  fc.record({
    kind: fc.constant('update' as const),
    node: fc.constantFrom(...NODES),
    check: fc.constantFrom(...CHECKS),
    status: fc.constantFrom('passing' as const, 'critical' as const),
  }),
  fc.record({
    kind: fc.constant('deregister' as const),
    node: fc.constantFrom(...NODES),
    service: fc.option(fc.constantFrom(...SERVICES), { nil: undefined }),
    check: fc.option(fc.constantFrom(...CHECKS), { nil: undefined }),
  }),
);

test('instances() sees exactly the node checks and the instance checks a scan finds', () => {
  fc.assert(
    fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
      const catalog = new Catalog();
      let revision = 0;
      const effects: CatalogEffects = {
        get revision() {
          return revision;
        },
        bump: () => {},
        nodeRemoved: () => {},
        checkCritical: () => {},
      };
      for (const o of ops) {
        revision++;
        try {
          if (o.kind === 'register') {
            const service =
              o.service === undefined ? undefined : { id: o.service, service: `svc-${o.service}` };
            const serviceId =
              o.checkService === o.service ? o.checkService : o.checkService === '' ? '' : undefined;
            if (serviceId === undefined && !catalog.services.get(o.node)?.has(o.checkService)) continue;
            catalog.register(effects, { node: o.node, address: '10.0.0.1' }, service, [
              { checkId: o.check, serviceId: serviceId ?? o.checkService, status: o.status },
            ]);
          } else if (o.kind === 'update') {
            if (catalog.check(o.node, o.check))
              catalog.updateCheck(effects, o.node, o.check, o.status, undefined);
          } else {
            catalog.deregister(effects, o.node, o.service, o.service === undefined ? o.check : undefined);
          }
        } catch {
          // an invalid registration changes nothing
        }
        for (const name of SERVICES) {
          for (const entry of catalog.instances(`svc-${name}`)) {
            const scanned = catalog
              .nodeChecks(entry.node.node)
              .filter((c) => c.serviceId === '' || c.serviceId === entry.service.id);
            assert.deepEqual(entry.checks, scanned);
          }
        }
      }
    }),
    { numRuns: 300 },
  );
});
