import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { StoreErrorCode, Topic } from '../../src/store/index.js';
import { b, Harness, s } from './helpers.js';

describe('watches', () => {
  test('live events in order, with prevKv and filters; onReady fires after the apply', () => {
    const h = new Harness();
    let ready = 0;
    const watcher = h.store.watch({ key: b('a'), rangeEnd: b('b'), prevKv: true, onReady: () => ready++ });
    const noDeletes = h.store.watch({ key: b('a'), rangeEnd: b('b'), noDelete: true });
    h.put('a1', 'x');
    h.put('a1', 'y');
    h.put('zz', 'not watched');
    h.del('a1');
    assert.equal(ready, 1, 'notified once until taken');
    const batch = watcher.take();
    assert.deepEqual(
      batch.events.map((e) => [e.type, s(e.kv.key), e.kv.modRevision, e.prevKv && s(e.prevKv.value)]),
      [
        ['put', 'a1', 2, null],
        ['put', 'a1', 3, 'x'],
        ['delete', 'a1', 5, 'y'],
      ],
    );
    assert.equal(batch.synced, true);
    assert.deepEqual(
      noDeletes.take().events.map((e) => e.type),
      ['put', 'put'],
    );
    assert.equal(h.store.progressRevision(watcher), h.store.revision);
  });

  test('watch from a past revision replays history, then goes live without a gap', () => {
    const h = new Harness();
    for (let i = 0; i < 10; i++) h.put('k', String(i));
    const watcher = h.store.watch({ key: b('k'), startRevision: 4 });
    h.put('k', 'live');
    const events = [];
    for (let guard = 0; guard < 10; guard++) {
      const batch = watcher.take();
      events.push(...batch.events);
      if (batch.synced && batch.events.length === 0) break;
    }
    assert.deepEqual(
      events.map((e) => e.kv.modRevision),
      [4, 5, 6, 7, 8, 9, 10, 11, 12],
    );
  });

  test('watching a compacted revision is a COMPACTED error with the compact revision', () => {
    const h = new Harness();
    for (let i = 0; i < 5; i++) h.put('k', String(i));
    h.ok({ type: 'compact', revision: 4 });
    assert.throws(() => h.store.watch({ key: b('k'), startRevision: 3 }), {
      code: StoreErrorCode.Compacted,
      compactRevision: 4,
    });
  });

  test('a slow watcher overflows to catch-up from history and still sees every event once', () => {
    const h = new Harness();
    const watcher = h.store.watch({ key: b('k/'), rangeEnd: b('k0'), maxBufferedEvents: 4 });
    for (let i = 0; i < 20; i++) h.put(`k/${i % 3}`, String(i));
    const seen: number[] = [];
    let lagging = false;
    for (let guard = 0; guard < 50; guard++) {
      const batch = watcher.take();
      lagging ||= batch.lagging;
      seen.push(...batch.events.map((e) => e.kv.modRevision));
      if (batch.synced && batch.events.length === 0) break;
    }
    assert.equal(lagging, true, 'the lag is signalled');
    assert.deepEqual(
      seen,
      Array.from({ length: 20 }, (_, i) => i + 2),
    );
  });

  test('a lagging watcher overtaken by compaction is cancelled with the compact revision', () => {
    const h = new Harness();
    let notified = 0;
    const watcher = h.store.watch({ key: b('k'), maxBufferedEvents: 1, onReady: () => notified++ });
    h.put('k', '1');
    h.put('k', '2'); // overflow: moves to catch-up at revision 3
    watcher.take(); // drains revision 2
    h.put('k', '3');
    h.ok({ type: 'compact', revision: h.store.revision }); // 4: revision 3 is gone
    const batch = watcher.take();
    assert.equal(batch.canceled, true);
    assert.equal(batch.compactRevision, 4);
    assert.ok(notified >= 2);
  });

  test('events of one txn share its revision', () => {
    const h = new Harness();
    const watcher = h.store.watch({ key: b('a'), rangeEnd: new Uint8Array([0]) });
    h.ok({
      type: 'txn',
      compare: [],
      success: [
        { type: 'put', key: b('b'), value: b('1') },
        { type: 'put', key: b('a'), value: b('1') },
      ],
      failure: [],
    });
    const events = watcher.take().events;
    assert.deepEqual(
      events.map((e) => [s(e.kv.key), e.kv.modRevision]),
      [
        ['a', 2],
        ['b', 2],
      ],
    );
  });

  test('cancel stops delivery', () => {
    const h = new Harness();
    const watcher = h.store.watch({ key: b('k') });
    watcher.cancel();
    h.put('k', '1');
    assert.equal(watcher.take().events.length, 0);
    assert.equal(h.store.status().watchers, 0);
  });
});

describe('blocking queries', () => {
  test('a key waiter wakes on a change to its key only, once', () => {
    const h = new Harness();
    h.put('k', '1');
    const index = h.store.index({ kind: 'key', key: b('k') });
    assert.equal(index, 2);
    const woken: number[] = [];
    const wait = h.store.waitForChange({ kind: 'key', key: b('k') }, index, (i) => woken.push(i));
    assert.equal(wait.ready, false);
    h.put('other', 'x');
    assert.deepEqual(woken, []);
    h.put('k', '2');
    h.put('k', '3');
    assert.deepEqual(woken, [4]);
    assert.equal(h.store.status().blockingWaiters, 0);
  });

  test('a prefix waiter wakes on deletes under it; an identical Consul set wakes nobody', () => {
    const h = new Harness();
    h.ok({ type: 'consulTxn', ops: [{ verb: 'set', key: b('svc/a'), value: b('1') }] });
    const index = h.store.index({ kind: 'prefix', prefix: b('svc/') });
    const woken: number[] = [];
    h.store.waitForChange({ kind: 'prefix', prefix: b('svc/') }, index, (i) => woken.push(i));
    h.ok({ type: 'consulTxn', ops: [{ verb: 'set', key: b('svc/a'), value: b('1') }] });
    assert.deepEqual(woken, []);
    h.del('svc/a');
    assert.deepEqual(woken, [index + 1]);
    assert.equal(
      h.store.index({ kind: 'prefix', prefix: b('svc/') }),
      index + 1,
      'deletes count in the index',
    );
  });

  test('the index never goes backwards when compaction drops tombstones', () => {
    const h = new Harness();
    h.put('p/a', '1');
    h.del('p/a');
    const before = h.store.index({ kind: 'prefix', prefix: b('p/') });
    h.put('q', '1');
    h.ok({ type: 'compact', revision: h.store.revision });
    assert.ok(h.store.index({ kind: 'prefix', prefix: b('p/') }) >= before);
  });

  test('ready at once when the index is already past', () => {
    const h = new Harness();
    h.put('k', '1');
    const wait = h.store.waitForChange({ kind: 'key', key: b('k') }, 0, () =>
      assert.fail('must not be called'),
    );
    assert.deepEqual(wait, { ready: true, index: 2 });
  });

  test('catalog topics: a service waiter wakes only for its service; identical re-registration wakes nobody', () => {
    const h = new Harness();
    const register = (service: string, port: number) =>
      h.ok({
        type: 'catalogRegister',
        node: { node: 'n1', address: '10.0.0.1' },
        service: { id: service, service, port },
        checks: [{ checkId: `${service}-check`, serviceId: service, status: 'passing' }],
      });
    register('web', 80);
    register('db', 5432);
    const webIndex = h.store.index({ kind: 'topic', topic: Topic.service('web') });
    const woken: string[] = [];
    h.store.waitForChange({ kind: 'topic', topic: Topic.service('web') }, webIndex, () => woken.push('web'));
    register('web', 80);
    register('db', 5433);
    assert.deepEqual(woken, []);
    h.ok({ type: 'checkUpdate', node: 'n1', checkId: 'web-check', status: 'critical', output: 'down' });
    assert.deepEqual(woken, ['web']);
    assert.deepEqual(h.store.catalog.instances('web', { passingOnly: true }), []);
    assert.equal(h.store.catalog.instances('db', { passingOnly: true }).length, 1);
    assert.deepEqual([...h.store.catalog.serviceNames().keys()], ['db', 'web']);
  });
});
