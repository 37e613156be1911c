import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { StoreErrorCode } from '../../src/store/index.js';
import { b, errorCode, Harness, s } from './helpers.js';

describe('etcd KV semantics', () => {
  test('revision starts at 1 and each write txn takes the next one', () => {
    const h = new Harness();
    assert.equal(h.store.revision, 1);
    assert.equal(h.put('a', '1').revision, 2);
    assert.equal(h.put('b', '1').revision, 3);
    const kv = h.store.get(b('a'))!;
    assert.deepEqual([kv.createRevision, kv.modRevision, kv.version], [2, 2, 1]);
  });

  test('put increments version and keeps createRevision; prevKv returns the old value', () => {
    const h = new Harness();
    h.put('a', '1');
    const result = h.put('a', '2', { prevKv: true });
    assert.equal(s(result.prevKv!.value), '1');
    const kv = h.store.get(b('a'))!;
    assert.deepEqual([kv.createRevision, kv.modRevision, kv.version, s(kv.value)], [2, 3, 2, '2']);
  });

  test('an etcd put of the same value still makes a revision (etcd semantics)', () => {
    const h = new Harness();
    h.put('a', '1');
    assert.equal(h.put('a', '1').revision, 3);
    assert.equal(h.store.get(b('a'))!.version, 2);
  });

  test('delete then re-create resets version and createRevision', () => {
    const h = new Harness();
    h.put('a', '1');
    h.put('a', '2');
    assert.equal(h.del('a').deleted, 1);
    h.put('a', '3');
    const kv = h.store.get(b('a'))!;
    assert.deepEqual([kv.createRevision, kv.modRevision, kv.version], [5, 5, 1]);
  });

  test('deleting a missing key changes nothing and takes no revision', () => {
    const h = new Harness();
    h.put('a', '1');
    const result = h.del('zzz');
    assert.equal(result.deleted, 0);
    assert.equal(result.revision, 2);
    assert.equal(h.store.revision, 2);
  });

  test('reads at past revisions see the key as it was', () => {
    const h = new Harness();
    h.put('a', '1'); // 2
    h.put('a', '2'); // 3
    h.del('a'); // 4
    assert.equal(h.value('a', 2), '1');
    assert.equal(h.value('a', 3), '2');
    assert.equal(h.value('a', 4), null);
    assert.equal(h.value('a', 1), null);
  });

  test('range: prefix, reverse, limit with more, count, keys-only, count-only', () => {
    const h = new Harness();
    for (const key of ['a', 'b/1', 'b/2', 'b/3', 'c']) h.put(key, `v-${key}`);
    const all = h.store.range({ key: b('b/'), rangeEnd: b('b0') });
    assert.deepEqual(
      all.kvs.map((kv) => s(kv.key)),
      ['b/1', 'b/2', 'b/3'],
    );
    assert.equal(all.count, 3);
    const limited = h.store.range({ key: b('b/'), rangeEnd: b('b0'), limit: 2 });
    assert.deepEqual(
      limited.kvs.map((kv) => s(kv.key)),
      ['b/1', 'b/2'],
    );
    assert.equal(limited.more, true);
    assert.equal(limited.count, 3);
    const reversed = h.store.range({ key: b('b/'), rangeEnd: b('b0'), sortOrder: 'descend', limit: 2 });
    assert.deepEqual(
      reversed.kvs.map((kv) => s(kv.key)),
      ['b/3', 'b/2'],
    );
    const keysOnly = h.store.range({ key: b('a'), rangeEnd: new Uint8Array([0]), keysOnly: true });
    assert.equal(keysOnly.kvs.length, 5);
    assert.ok(keysOnly.kvs.every((kv) => kv.value.length === 0));
    const countOnly = h.store.range({ key: b('a'), rangeEnd: new Uint8Array([0]), countOnly: true });
    assert.deepEqual([countOnly.kvs.length, countOnly.count], [0, 5]);
  });

  test('range: continuation from the last key at a pinned revision pages through everything', () => {
    const h = new Harness();
    for (let i = 0; i < 25; i++) h.put(`k${String(i).padStart(2, '0')}`, 'v');
    const revision = h.store.revision;
    h.put('k05', 'changed later');
    const seen: string[] = [];
    let start = b('k');
    for (;;) {
      const page = h.store.range({ key: start, rangeEnd: b('l'), limit: 10, revision });
      for (const kv of page.kvs) {
        seen.push(s(kv.key));
        assert.equal(s(kv.value), 'v');
      }
      if (!page.more) break;
      start = Buffer.concat([page.kvs[page.kvs.length - 1]!.key, Buffer.from([0])]);
    }
    assert.equal(seen.length, 25);
  });

  test('range: revision filters and sort targets', () => {
    const h = new Harness();
    h.put('a', 'z'); // 2
    h.put('b', 'y'); // 3
    h.put('c', 'x'); // 4
    h.put('a', 'w'); // 5
    const all = { key: b('a'), rangeEnd: b('d') };
    const modAtLeast4 = h.store.range({ ...all, minModRevision: 4 });
    assert.deepEqual(
      modAtLeast4.kvs.map((kv) => s(kv.key)),
      ['a', 'c'],
    );
    const createdBefore3 = h.store.range({ ...all, maxCreateRevision: 2 });
    assert.deepEqual(
      createdBefore3.kvs.map((kv) => s(kv.key)),
      ['a'],
    );
    const byValue = h.store.range({ ...all, sortTarget: 'value', sortOrder: 'ascend' });
    assert.deepEqual(
      byValue.kvs.map((kv) => s(kv.value)),
      ['w', 'x', 'y'],
    );
    const byModDesc = h.store.range({ ...all, sortTarget: 'mod', sortOrder: 'descend', limit: 2 });
    assert.deepEqual(
      byModDesc.kvs.map((kv) => s(kv.key)),
      ['a', 'c'],
    );
    assert.equal(byModDesc.more, true);
    const byVersion = h.store.range({ ...all, sortTarget: 'version', sortOrder: 'descend' });
    assert.equal(s(byVersion.kvs[0]!.key), 'a');
  });

  test('delete range with prevKv', () => {
    const h = new Harness();
    for (const key of ['a', 'b', 'c', 'd']) h.put(key, key);
    const result = h.ok({ type: 'deleteRange', key: b('b'), rangeEnd: b('d'), prevKv: true }, 'deleteRange');
    assert.equal(result.deleted, 2);
    assert.deepEqual(
      result.prevKvs.map((kv) => s(kv.key)),
      ['b', 'c'],
    );
    assert.equal(h.store.range({ key: b('a'), rangeEnd: new Uint8Array([0]) }).count, 2);
  });

  test('compaction: reading below the compact revision is COMPACTED, above current is FUTURE_REVISION', () => {
    const h = new Harness();
    h.put('a', '1'); // 2
    h.put('a', '2'); // 3
    h.put('a', '3'); // 4
    h.ok({ type: 'compact', revision: 3 }, 'compact');
    assert.equal(h.value('a', 3), '2'); // the compact revision itself stays readable
    assert.throws(() => h.store.get(b('a'), 2), { code: StoreErrorCode.Compacted, compactRevision: 3 });
    assert.throws(() => h.store.get(b('a'), 9), { code: StoreErrorCode.FutureRevision });
    assert.equal(errorCode(h.apply({ type: 'compact', revision: 3 })), StoreErrorCode.Compacted);
    assert.equal(errorCode(h.apply({ type: 'compact', revision: 99 })), StoreErrorCode.FutureRevision);
    h.store.checkInvariants();
  });

  test('compaction drops deleted keys entirely and keeps the latest version of live ones', () => {
    const h = new Harness();
    h.put('gone', '1');
    h.del('gone');
    h.put('kept', '1');
    h.put('kept', '2');
    const before = h.store.status().storedBytes;
    h.ok({ type: 'compact', revision: h.store.revision });
    assert.ok(h.store.status().storedBytes < before);
    assert.equal(h.value('kept'), '2');
    assert.equal(h.store.get(b('kept'))!.version, 2);
    h.store.checkInvariants();
  });

  test('limits: empty key, key and value size, txn ops', () => {
    const h = new Harness({ limits: { maxKeyBytes: 8, maxValueBytes: 16, maxTxnOps: 2 } });
    assert.equal(errorCode(h.apply({ type: 'put', key: b(''), value: b('x') })), StoreErrorCode.EmptyKey);
    assert.equal(
      errorCode(h.apply({ type: 'put', key: b('123456789'), value: b('x') })),
      StoreErrorCode.KeyTooLarge,
    );
    assert.equal(
      errorCode(h.apply({ type: 'put', key: b('k'), value: new Uint8Array(17) })),
      StoreErrorCode.ValueTooLarge,
    );
    const put = (key: string) => ({ type: 'put' as const, key: b(key), value: b('v') });
    assert.equal(
      errorCode(h.apply({ type: 'txn', compare: [], success: [put('a'), put('b'), put('c')], failure: [] })),
      StoreErrorCode.TooManyOps,
    );
    assert.equal(h.store.revision, 1);
  });

  test('ignoreValue / ignoreLease need an existing key and keep the old field', () => {
    const h = new Harness();
    assert.equal(
      errorCode(h.apply({ type: 'put', key: b('a'), value: b(''), ignoreValue: true })),
      StoreErrorCode.KeyNotFound,
    );
    const lease = h.ok({ type: 'leaseGrant', id: 0, ttlMs: 10_000 }, 'leaseGrant').id;
    h.put('a', 'keep', { lease });
    h.ok({ type: 'put', key: b('a'), value: b('ignored'), ignoreValue: true, lease });
    assert.equal(h.value('a'), 'keep');
    h.ok({ type: 'put', key: b('a'), value: b('new'), ignoreLease: true });
    assert.equal(h.store.get(b('a'))!.lease, lease);
    // A plain put without a lease detaches the key from its lease, as in etcd.
    h.put('a', 'plain');
    assert.equal(h.store.get(b('a'))!.lease, 0);
    assert.equal(h.store.lease(lease)!.keys.length, 0);
    assert.equal(
      errorCode(h.apply({ type: 'put', key: b('x'), value: b(''), lease: 424242 })),
      StoreErrorCode.LeaseNotFound,
    );
  });

  test('quota: puts fail with QUOTA_EXCEEDED, deletes and compaction still work and recover', () => {
    const h = new Harness({ limits: { quotaBytes: 2000 } });
    let i = 0;
    let failure = null;
    while (failure === null && i < 100)
      failure = errorCode(h.apply({ type: 'put', key: b(`k${i++}`), value: new Uint8Array(100) }));
    assert.equal(failure, StoreErrorCode.QuotaExceeded);
    assert.equal(h.store.status().quotaAlarm, true);
    // Deletes still work while the alarm is raised...
    h.del('k', 'l');
    assert.equal(
      errorCode(h.apply({ type: 'put', key: b('x'), value: b('1') })),
      StoreErrorCode.QuotaExceeded,
    );
    // ...and compaction reclaims the space, which clears the alarm.
    h.ok({ type: 'compact', revision: h.store.revision });
    assert.equal(h.store.status().quotaAlarm, false);
    h.put('x', '1');
    h.store.checkInvariants();
  });
});

describe('etcd txn', () => {
  const put = (key: string, value: string) => ({ type: 'put' as const, key: b(key), value: b(value) });

  test('compare on value, version, create, mod and lease picks the branch', () => {
    const h = new Harness();
    h.put('a', '1'); // 2
    const txn = (compare: object) =>
      h.ok(
        {
          type: 'txn',
          compare: [{ key: b('a'), ...compare } as never],
          success: [put('r', 'yes')],
          failure: [put('r', 'no')],
        },
        'txn',
      ).succeeded;
    assert.equal(txn({ target: 'value', result: 'equal', value: b('1') }), true);
    assert.equal(txn({ target: 'value', result: 'greater', value: b('0') }), true);
    assert.equal(txn({ target: 'version', result: 'equal', value: 1 }), true);
    assert.equal(txn({ target: 'create', result: 'equal', value: 2 }), true);
    assert.equal(txn({ target: 'mod', result: 'less', value: 2 }), false);
    assert.equal(txn({ target: 'lease', result: 'equal', value: 0 }), true);
    assert.equal(txn({ target: 'version', result: 'notEqual', value: 1 }), false);
  });

  test('a missing key compares as zeros, but a value compare on it is false', () => {
    const h = new Harness();
    const ok = (compare: object) =>
      h.ok(
        { type: 'txn', compare: [{ key: b('missing'), ...compare } as never], success: [], failure: [] },
        'txn',
      ).succeeded;
    assert.equal(ok({ target: 'version', result: 'equal', value: 0 }), true);
    assert.equal(ok({ target: 'create', result: 'equal', value: 0 }), true);
    assert.equal(ok({ target: 'value', result: 'equal', value: b('') }), false);
    assert.equal(ok({ target: 'value', result: 'notEqual', value: b('x') }), false);
  });

  test('create-if-absent (the etcd lock/election idiom) and one revision for the whole txn', () => {
    const h = new Harness();
    const create = () =>
      h.ok(
        {
          type: 'txn',
          compare: [{ key: b('lock'), target: 'create', result: 'equal', value: 0 }],
          success: [put('lock', 'me'), put('other', 'x')],
          failure: [{ type: 'range', key: b('lock') }],
        },
        'txn',
      );
    const first = create();
    assert.equal(first.succeeded, true);
    assert.equal(first.revision, 2);
    assert.equal(h.store.get(b('other'))!.modRevision, 2);
    const second = create();
    assert.equal(second.succeeded, false);
    assert.equal(second.revision, 2, 'a read-only branch takes no revision');
    const response = second.responses[0]!;
    assert.equal(response.type, 'range');
    assert.equal(response.type === 'range' && s(response.kvs[0]!.value), 'me');
  });

  test('reads inside a txn see its earlier writes; nested txn compares see the state before the txn', () => {
    const h = new Harness();
    h.put('a', '1');
    const result = h.ok(
      {
        type: 'txn',
        compare: [],
        success: [
          put('a', '2'),
          { type: 'range', key: b('a') },
          {
            type: 'txn',
            compare: [{ key: b('a'), target: 'value', result: 'equal', value: b('1') }],
            success: [put('nested', 'saw-old')],
            failure: [put('nested', 'saw-new')],
          },
        ],
        failure: [],
      },
      'txn',
    );
    const range = result.responses[1]!;
    assert.equal(range.type === 'range' && s(range.kvs[0]!.value), '2');
    assert.equal(h.value('nested'), 'saw-old');
  });

  test('duplicate keys in one branch are rejected; across branches they are fine', () => {
    const h = new Harness();
    const dup = h.apply({ type: 'txn', compare: [], success: [put('a', '1'), put('a', '2')], failure: [] });
    assert.equal(errorCode(dup), StoreErrorCode.DuplicateKey);
    const covered = h.apply({
      type: 'txn',
      compare: [],
      success: [put('b', '1'), { type: 'deleteRange', key: b('a'), rangeEnd: b('c') }],
      failure: [],
    });
    assert.equal(errorCode(covered), StoreErrorCode.DuplicateKey);
    h.ok({ type: 'txn', compare: [], success: [put('a', '1')], failure: [put('a', '2')] });
  });

  test('a failing op rolls the whole txn back', () => {
    const h = new Harness();
    const result = h.apply({
      type: 'txn',
      compare: [],
      success: [put('a', '1'), { type: 'put', key: b('b'), value: b('2'), lease: 999 }],
      failure: [],
    });
    assert.equal(errorCode(result), StoreErrorCode.LeaseNotFound);
    assert.equal(h.value('a'), null);
    assert.equal(h.store.revision, 1);
  });

  test('range compare requires every key in the range to match', () => {
    const h = new Harness();
    h.put('p/1', 'x');
    h.put('p/2', 'x');
    const all = (value: string) =>
      h.ok(
        {
          type: 'txn',
          compare: [{ key: b('p/'), rangeEnd: b('p0'), target: 'value', result: 'equal', value: b(value) }],
          success: [],
          failure: [],
        },
        'txn',
      ).succeeded;
    assert.equal(all('x'), true);
    h.put('p/3', 'y');
    assert.equal(all('x'), false);
  });
});
