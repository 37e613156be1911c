import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import {
  AntiEntropy,
  type AntiEntropyOptions,
  type CatalogAccess,
  type CatalogWrite,
  type NodeView,
} from '../../src/agent/local/anti-entropy.js';
import { LocalState } from '../../src/agent/local/local-state.js';
import { silentLogger } from '../../src/server/logger.js';
import type { CatalogCheck, CatalogNode, CatalogService } from '../../src/store/index.js';
import { eventually, sleep } from './helpers.js';

// Anti-entropy (Consul's agent/ae) against an in-memory catalog: the local state is the truth
// and the catalog's entries for this node are made to match it.

const NODE: AntiEntropyOptions['node'] = {
  node: 'node-1',
  id: '11111111-2222-3333-4444-555555555555',
  address: '10.0.0.1',
  datacenter: 'dc1',
  taggedAddresses: { lan: '10.0.0.1' },
  meta: { rack: 'r1' },
};

/** One node's catalog entries in memory, applying writes as the real catalog does. */
class FakeCatalog implements CatalogAccess {
  node: CatalogNode | undefined;
  readonly services = new Map<string, CatalogService>();
  readonly checks = new Map<string, CatalogCheck>();
  readonly writes: CatalogWrite[] = [];
  reads = 0;
  /** Writes still to fail, each with an error. */
  failWrites = 0;
  private watcher: (() => void) | undefined;
  private index = 1;

  async nodeView(node: string): Promise<NodeView> {
    assert.equal(node, NODE.node);
    this.reads++;
    return {
      node: this.node && structuredClone(this.node),
      services: [...this.services.values()].map((s) => structuredClone(s)),
      checks: [...this.checks.values()].map((c) => structuredClone(c)),
    };
  }

  async write(command: CatalogWrite): Promise<void> {
    if (this.failWrites > 0) {
      this.failWrites--;
      throw new Error('No cluster leader');
    }
    this.writes.push(structuredClone(command));
    const index = ++this.index;
    if (command.type === 'catalogRegister') {
      const n = command.node;
      this.node = {
        id: n.id ?? '',
        node: n.node,
        address: n.address ?? '',
        datacenter: n.datacenter ?? '',
        taggedAddresses: { ...n.taggedAddresses },
        meta: { ...n.meta },
        createIndex: this.node?.createIndex ?? index,
        modifyIndex: index,
      };
      const s = command.service;
      if (s)
        this.services.set(s.id, {
          node: n.node,
          id: s.id,
          service: s.service,
          tags: s.tags ?? [],
          address: s.address ?? '',
          port: s.port ?? 0,
          meta: s.meta ?? {},
          kind: s.kind ?? '',
          weights: s.weights ?? { passing: 1, warning: 1 },
          enableTagOverride: s.enableTagOverride ?? false,
          createIndex: index,
          modifyIndex: index,
        });
      for (const c of command.checks ?? [])
        this.checks.set(c.checkId, {
          node: n.node,
          checkId: c.checkId,
          name: c.name ?? '',
          status: c.status ?? 'critical',
          notes: c.notes ?? '',
          output: c.output ?? '',
          serviceId: c.serviceId ?? '',
          serviceName: '',
          serviceTags: [],
          type: c.type ?? '',
          createIndex: index,
          modifyIndex: index,
        });
    } else if (command.serviceId !== undefined) {
      this.services.delete(command.serviceId);
      for (const [id, c] of this.checks) if (c.serviceId === command.serviceId) this.checks.delete(id);
    } else if (command.checkId !== undefined) {
      this.checks.delete(command.checkId);
    } else {
      this.node = undefined;
    }
  }

  watchNode(_node: string, onChange: () => void): () => void {
    this.watcher = onChange;
    return () => {
      this.watcher = undefined;
    };
  }

  /** Someone else changed our node's entries (the catalog API, a restore). */
  externalChange(change: () => void): void {
    change();
    this.watcher?.();
  }

  get watched(): boolean {
    return this.watcher !== undefined;
  }
}

const running: { stop(): void }[] = [];
after(() => {
  for (const r of running) r.stop();
});

function setup(options: Partial<Omit<AntiEntropyOptions, 'node' | 'log'>> = {}) {
  const local = new LocalState({
    nodeName: NODE.node,
    dataDir: null,
    enableScriptChecks: false,
    enableLocalScriptChecks: false,
    deps: { aliasSource: () => null },
    log: silentLogger,
  });
  const catalog = new FakeCatalog();
  const ae = new AntiEntropy(local, catalog, {
    node: NODE,
    fullSyncMs: 60_000,
    checkUpdateIntervalMs: 5 * 60_000,
    log: silentLogger,
    ...options,
  });
  running.push(local, ae);
  return { local, catalog, ae };
}

describe('anti-entropy', () => {
  test('registers the node, its services and their checks', async () => {
    const { local, catalog, ae } = setup();
    local.addService(
      {
        Name: 'web',
        ID: 'web-1',
        Port: 80,
        Tags: ['v1'],
        Meta: { team: 'a' },
        Check: { TTL: '30s', Notes: 'n' },
      },
      'api',
    );
    local.addCheck({ CheckID: 'disk', Name: 'Disk', TTL: '30s', Status: 'passing' }, 'api');
    ae.start();
    await eventually('the sync', () => catalog.checks.size === 2);
    assert.deepEqual(
      { ...catalog.node, createIndex: 0, modifyIndex: 0 },
      { ...NODE, createIndex: 0, modifyIndex: 0 },
    );
    const web = catalog.services.get('web-1');
    assert.ok(web);
    assert.deepEqual([web.service, web.port, web.tags, web.meta], ['web', 80, ['v1'], { team: 'a' }]);
    const serviceCheck = catalog.checks.get('service:web-1');
    assert.ok(serviceCheck);
    assert.deepEqual(
      [serviceCheck.name, serviceCheck.status, serviceCheck.serviceId, serviceCheck.notes, serviceCheck.type],
      ["Service 'web' check", 'critical', 'web-1', 'n', 'ttl'],
    );
    assert.deepEqual(
      [catalog.checks.get('disk')?.status, catalog.checks.get('disk')?.serviceId],
      ['passing', ''],
    );

    // A sync that finds nothing to do only reads.
    const writes = catalog.writes.length;
    await ae.syncNow();
    assert.equal(catalog.writes.length, writes);
  });

  test('local changes are synced: new services, status changes, removals', async () => {
    const { local, catalog, ae } = setup();
    ae.start();
    await eventually('the node', () => catalog.node !== undefined);
    local.addService({ Name: 'db', Check: { TTL: '30s' } }, 'api');
    await eventually('db', () => catalog.checks.get('service:db'));
    local.updateTtl('service:db', 'passing', 'ok');
    await eventually('passing', () => catalog.checks.get('service:db')?.status === 'passing');
    local.setServiceMaintenance('db', true, 'upgrading');
    await eventually(
      'maintenance',
      () => catalog.checks.get('_service_maintenance:db')?.status === 'critical',
    );
    local.removeService('db');
    await eventually('db gone', () => !catalog.services.has('db') && catalog.checks.size === 0);
  });

  test('deregisters what is not local, but leaves serfHealth alone', async () => {
    const { local, catalog, ae } = setup();
    await catalog.write({
      type: 'catalogRegister',
      node: NODE,
      service: { id: 'stray', service: 'stray' },
      checks: [
        { checkId: 'serfHealth', name: 'Serf Health Status', status: 'passing' },
        { checkId: 'stray-node-check', name: 'old', status: 'passing' },
        { checkId: 'stray-service-check', name: 'old', status: 'passing', serviceId: 'stray' },
      ],
    });
    local.addService({ Name: 'web' }, 'api');
    ae.start();
    await eventually(
      'strays gone',
      () => !catalog.services.has('stray') && !catalog.checks.has('stray-node-check'),
    );
    assert.deepEqual([...catalog.services.keys()], ['web']);
    assert.deepEqual([...catalog.checks.keys()], ['serfHealth']);
    assert.ok(
      !catalog.writes.some((w) => w.type === 'catalogDeregister' && w.checkId === 'serfHealth'),
      'serfHealth is never deregistered',
    );
  });

  test('drift in the catalog is repaired at once when the catalog reports it', async () => {
    const { local, catalog, ae } = setup();
    local.addService({ Name: 'web', Port: 80 }, 'api');
    ae.start();
    await eventually('web', () => catalog.services.get('web'));
    assert.ok(catalog.watched);
    catalog.externalChange(() => catalog.services.delete('web'));
    await eventually('web back', () => catalog.services.get('web'));
    catalog.externalChange(() => {
      catalog.services.get('web')!.port = 81;
    });
    await eventually('the port repaired', () => catalog.services.get('web')?.port === 80);
  });

  test('an output-only change waits for checkUpdateIntervalMs; a status change goes at once', async () => {
    const { local, catalog, ae } = setup({ checkUpdateIntervalMs: 60_000 });
    local.addCheck({ CheckID: 'chatty', Name: 'chatty', TTL: '30s' }, 'api');
    local.updateTtl('chatty', 'passing', 'run 1');
    ae.start();
    await eventually('the first sync', () => catalog.checks.get('chatty')?.output === 'run 1');

    local.updateTtl('chatty', 'passing', 'run 2');
    const reads = catalog.reads;
    await eventually('a sync after the change', () => catalog.reads > reads);
    await ae.syncNow();
    assert.equal(catalog.checks.get('chatty')?.output, 'run 1', 'the output-only change is deferred');

    local.updateTtl('chatty', 'warning', 'run 3');
    await eventually('the status change', () => catalog.checks.get('chatty')?.status === 'warning');
    assert.equal(catalog.checks.get('chatty')?.output, 'run 3', 'with its output');
  });

  test('a deferred output is synced once checkUpdateIntervalMs has passed, without another change', async () => {
    const { local, catalog, ae } = setup({ checkUpdateIntervalMs: 1000 });
    local.addCheck({ CheckID: 'chatty', Name: 'chatty', TTL: '30s', Status: 'passing' }, 'api');
    ae.start();
    await eventually('the first sync', () => catalog.checks.get('chatty'));
    local.updateTtl('chatty', 'passing', 'later');
    await eventually('the deferred output', () => catalog.checks.get('chatty')?.output === 'later', 5000);
  });

  test('a failing write is retried', async () => {
    const { local, catalog, ae } = setup();
    catalog.failWrites = 2;
    local.addService({ Name: 'web', Check: { TTL: '30s' } }, 'api');
    ae.start();
    await eventually('the sync despite failures', () => catalog.checks.has('service:web'), 15_000);
    assert.equal(catalog.failWrites, 0);
    assert.ok(catalog.services.has('web'));
  });

  test('stop() stops syncing', async () => {
    const { local, catalog, ae } = setup({ fullSyncMs: 100 });
    ae.start();
    await eventually('a few full syncs', () => ae.syncs >= 3);
    ae.stop();
    assert.equal(catalog.watched, false, 'the catalog watch is cancelled');
    await sleep(300);
    const reads = catalog.reads;
    const writes = catalog.writes.length;
    local.addService({ Name: 'late' }, 'api');
    await sleep(500);
    assert.equal(catalog.reads, reads, 'no more reads');
    assert.equal(catalog.writes.length, writes, 'no more writes');
    assert.equal(catalog.services.has('late'), false);
  });
});
