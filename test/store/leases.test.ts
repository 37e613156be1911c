import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { StoreErrorCode } from '../../src/store/index.js';
import { b, errorCode, Harness } from './helpers.js';

function grant(h: Harness, ttlMs: number, extra: object = {}) {
  return h.ok({ type: 'leaseGrant', id: 0, ttlMs, ...extra }, 'leaseGrant').id;
}

describe('leases', () => {
  test('grant picks ids deterministically; an explicit id must be free', () => {
    const h = new Harness();
    assert.equal(grant(h, 1000), 1);
    assert.equal(h.ok({ type: 'leaseGrant', id: 7, ttlMs: 1000 }, 'leaseGrant').id, 7);
    assert.equal(errorCode(h.apply({ type: 'leaseGrant', id: 7, ttlMs: 1000 })), StoreErrorCode.LeaseExists);
    assert.equal(
      errorCode(h.apply({ type: 'leaseGrant', id: 0, ttlMs: -1 })),
      StoreErrorCode.LeaseTtlInvalid,
    );
    assert.equal(grant(h, 1000), 2);
  });

  test('revoke deletes attached keys in one revision', () => {
    const h = new Harness();
    const id = grant(h, 10_000);
    h.put('a', '1', { lease: id });
    h.put('b', '1', { lease: id });
    h.put('c', '1');
    const revoked = h.ok({ type: 'leaseRevoke', id }, 'leaseRevoke');
    assert.equal(h.store.get(b('a')), null);
    assert.equal(h.store.get(b('b')), null);
    assert.notEqual(h.store.get(b('c')), null);
    assert.equal(h.store.get(b('a'), revoked.revision - 1)?.lease, id);
    assert.equal(errorCode(h.apply({ type: 'leaseRevoke', id })), StoreErrorCode.LeaseNotFound);
    h.store.checkInvariants();
  });

  test('due leases come earliest first; expire re-checks deadlines; keep-alive saves a lease', () => {
    const h = new Harness();
    const long = grant(h, 5000);
    const short = grant(h, 1000);
    h.put('k', 'v', { lease: short });
    assert.deepEqual(h.store.leasesDue(h.nowMs + 999, 10), []);
    assert.deepEqual(h.store.leasesDue(h.nowMs + 5000, 10), [short, long]);
    assert.equal(h.store.nextLeaseDeadline(), h.nowMs + 1000);
    h.advance(900);
    h.ok({ type: 'leaseKeepAlive', ids: [short, 12345] }, 'leaseKeepAlive');
    h.advance(200);
    // The leader proposed the expiry from a stale view: the store refuses to expire a renewed lease.
    const stale = h.ok({ type: 'leaseExpire', ids: [short] }, 'leaseExpire');
    assert.deepEqual(stale.expired, []);
    assert.notEqual(h.store.get(b('k')), null);
    h.advance(1000);
    const expired = h.ok({ type: 'leaseExpire', ids: h.store.leasesDue(h.nowMs) }, 'leaseExpire');
    assert.deepEqual(expired.expired, [short]);
    assert.equal(h.store.get(b('k')), null);
    assert.equal(h.store.leaseRemainingMs(long, h.nowMs), 5000 - 2100);
  });

  test('renew-all on leader change gives every lease a full TTL, or its checkpointed remainder', () => {
    const h = new Harness();
    const a = grant(h, 10_000);
    const c = grant(h, 10_000);
    h.advance(8000);
    h.ok({ type: 'leaseCheckpoint', checkpoints: [{ id: c, remainingMs: 2000 }] });
    h.advance(30_000); // an election that took long
    h.ok({ type: 'leaseRenewAll' });
    assert.equal(h.store.leaseRemainingMs(a, h.nowMs), 10_000);
    assert.equal(h.store.leaseRemainingMs(c, h.nowMs), 2000);
    assert.deepEqual(h.store.leasesDue(h.nowMs), []);
  });

  test('store time never goes backwards even if a new leader clock does', () => {
    const h = new Harness();
    const id = grant(h, 1000);
    h.advance(-60_000);
    h.ok({ type: 'leaseKeepAlive', ids: [id] });
    assert.equal(h.store.lease(id)!.deadlineMs, h.nowMs + 60_000 + 1000);
  });

  test('grants fail under the quota alarm', () => {
    const h = new Harness({ limits: { quotaBytes: 500 } });
    while (h.apply({ type: 'put', key: b(`k${h.index}`), value: new Uint8Array(100) }).type !== 'error') {}
    assert.equal(
      errorCode(h.apply({ type: 'leaseGrant', id: 0, ttlMs: 1000 })),
      StoreErrorCode.QuotaExceeded,
    );
  });
});

describe('sessions and the catalog', () => {
  function register(h: Harness, checkStatus: 'passing' | 'critical' = 'passing') {
    h.ok({
      type: 'catalogRegister',
      node: { node: 'n1', address: '10.0.0.1' },
      checks: [{ checkId: 'serfHealth', status: checkStatus }],
    });
  }

  test('a session needs its node and non-critical checks', () => {
    const h = new Harness();
    const create = () =>
      h.apply({
        type: 'leaseGrant',
        id: 0,
        ttlMs: 0,
        node: 'n1',
        checks: ['serfHealth'],
        behavior: 'release',
      });
    assert.equal(errorCode(create()), StoreErrorCode.NodeNotFound);
    register(h, 'critical');
    assert.equal(errorCode(create()), StoreErrorCode.CheckCritical);
    h.ok({ type: 'checkUpdate', node: 'n1', checkId: 'serfHealth', status: 'passing' });
    assert.equal(create().type, 'leaseGrant');
  });

  test('a check turning critical invalidates the session and releases its locks', () => {
    const h = new Harness();
    register(h);
    const id = h.ok(
      {
        type: 'leaseGrant',
        id: 0,
        ttlMs: 0,
        node: 'n1',
        checks: ['serfHealth'],
        behavior: 'release',
        lockDelayMs: 1000,
      },
      'leaseGrant',
    ).id;
    h.ok({ type: 'consulTxn', ops: [{ verb: 'lock', key: b('leader'), value: b('n1'), session: id }] });
    h.ok({ type: 'checkUpdate', node: 'n1', checkId: 'serfHealth', status: 'critical' });
    assert.equal(h.store.lease(id), null);
    assert.equal(h.store.get(b('leader'))!.session, 0);
    assert.ok(h.store.lockDelayUntil(b('leader'), h.nowMs) > h.nowMs);
    h.store.checkInvariants();
  });

  test('deregistering the node invalidates its sessions', () => {
    const h = new Harness();
    register(h);
    const id = h.ok({ type: 'leaseGrant', id: 0, ttlMs: 0, node: 'n1', behavior: 'delete' }, 'leaseGrant').id;
    h.ok({ type: 'consulTxn', ops: [{ verb: 'lock', key: b('leader'), value: b('n1'), session: id }] });
    h.ok({ type: 'catalogDeregister', node: 'n1' });
    assert.equal(h.store.lease(id), null);
    assert.equal(h.store.get(b('leader')), null);
  });
});
