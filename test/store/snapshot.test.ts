import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import {
  type Command,
  decodeCommand,
  encodeCommand,
  restore,
  Store,
  StoreErrorCode,
  snapshot,
  snapshotChunks,
  stateHash,
} from '../../src/store/index.js';
import { b, Harness, s } from './helpers.js';

function busyHarness(): Harness {
  const h = new Harness();
  const lease = h.ok({ type: 'leaseGrant', id: 0, ttlMs: 5000 }, 'leaseGrant').id;
  h.ok({
    type: 'catalogRegister',
    node: { node: 'n1', address: '10.0.0.1', meta: { z: '1', a: '2' } },
    service: { id: 'web', service: 'web', port: 80, tags: ['v1'] },
    checks: [{ checkId: 'serfHealth', status: 'passing' }],
  });
  const session = h.ok(
    {
      type: 'leaseGrant',
      id: 0,
      ttlMs: 0,
      node: 'n1',
      checks: ['serfHealth'],
      behavior: 'release',
      lockDelayMs: 15_000,
    },
    'leaseGrant',
  ).id;
  for (let i = 0; i < 50; i++) h.put(`k/${i % 7}`, `v${i}`, i % 5 === 0 ? { lease } : {});
  h.ok({ type: 'consulTxn', ops: [{ verb: 'lock', key: b('lock'), value: b('me'), session }] });
  h.del('k/3');
  h.ok({ type: 'compact', revision: h.store.revision - 10 });
  const other = h.ok(
    { type: 'leaseGrant', id: 0, ttlMs: 0, behavior: 'release', lockDelayMs: 5000 },
    'leaseGrant',
  ).id;
  h.ok({ type: 'consulTxn', ops: [{ verb: 'lock', key: b('lock2'), value: b('x'), session: other }] });
  h.ok({ type: 'leaseRevoke', id: other }); // leaves a lock-delay
  return h;
}

describe('snapshot and restore', () => {
  test('restore gives the same state and the same bytes', () => {
    const h = busyHarness();
    const bytes = snapshot(h.store);
    const restored = restore(bytes);
    assert.deepEqual(Buffer.from(snapshot(restored)), Buffer.from(bytes));
    assert.deepEqual(restored.status(), h.store.status());
    assert.deepEqual(
      restored.range({ key: b('\0'), rangeEnd: new Uint8Array([0]) }),
      h.store.range({ key: b('\0'), rangeEnd: new Uint8Array([0]) }),
    );
    assert.deepEqual(restored.leases(), h.store.leases());
    assert.deepEqual(restored.lockHolder(b('lock')), h.store.lockHolder(b('lock')));
    assert.equal(restored.lockDelayUntil(b('lock2'), h.nowMs), h.store.lockDelayUntil(b('lock2'), h.nowMs));
    assert.deepEqual(restored.catalog.dump(), h.store.catalog.dump());
    // History below the current revision (but above compaction) survives.
    const past = h.store.revision - 3;
    assert.deepEqual(restored.get(b('k/1'), past), h.store.get(b('k/1'), past));
  });

  test('restored store behaves the same afterwards', () => {
    const h = busyHarness();
    const restored = restore(snapshot(h.store));
    const more: Command[] = [
      { type: 'put', timeMs: h.nowMs + 1, key: b('k/1'), value: b('after') },
      { type: 'leaseExpire', timeMs: h.nowMs + 10_000, ids: h.store.leasesDue(h.nowMs + 10_000) },
      {
        type: 'consulTxn',
        timeMs: h.nowMs + 10_001,
        ops: [{ verb: 'lock', key: b('lock2'), value: b('y'), session: 2 }],
      },
      { type: 'compact', timeMs: h.nowMs + 10_002, revision: h.store.revision },
    ];
    let index = h.index;
    for (const command of more) {
      index++;
      assert.deepEqual(restored.apply(index, command), h.store.apply(index, command));
    }
    assert.equal(stateHash(restored), stateHash(h.store));
  });

  test('same log applied twice gives byte-identical snapshots', () => {
    const first = busyHarness();
    const second = new Store();
    first.log.forEach((command, i) => {
      second.apply(i + 1, command);
    });
    assert.deepEqual(Buffer.from(snapshot(second)), Buffer.from(snapshot(first.store)));
  });

  test('corruption is detected', () => {
    const bytes = Buffer.from(snapshot(busyHarness().store));
    const flipped = Buffer.from(bytes);
    flipped[Math.floor(bytes.length / 2)]! ^= 1;
    assert.throws(() => restore(flipped), { code: StoreErrorCode.CorruptSnapshot });
    assert.throws(() => restore(bytes.subarray(0, bytes.length - 10)), {
      code: StoreErrorCode.CorruptSnapshot,
    });
    assert.throws(() => restore(Buffer.from('nonsense')), { code: StoreErrorCode.CorruptSnapshot });
  });

  test('a snapshot read while applies go on (puts, deletes, compactions) is byte-identical to one taken at its start', () => {
    fc.assert(
      fc.property(
        fc.array(writeArbitrary, { minLength: 1, maxLength: 60 }),
        fc.array(writeArbitrary, { minLength: 1, maxLength: 120 }),
        fc.integer({ min: 1, max: 4 }),
        (before, during, versionsPerFrame) => {
          const h = new Harness();
          for (const write of before) applyWrite(h, write);
          const expected = Buffer.concat([...snapshotChunks(h.store, { versionsPerFrame })]);
          const stream = snapshotChunks(h.store, { versionsPerFrame });
          const chunks: Uint8Array[] = [];
          let pending = [...during];
          for (let next = stream.next(); !next.done; next = stream.next()) {
            chunks.push(next.value);
            // Between chunks: a few more writes, compactions among them.
            for (const write of pending.splice(0, 3)) applyWrite(h, write);
          }
          for (const write of pending) applyWrite(h, write);
          pending = [];
          assert.deepEqual(Buffer.concat(chunks), expected);
          h.store.checkInvariants();
        },
      ),
      { numRuns: 300 },
    );
  });

  for (const older of ['kvFlat', 'kv'] as const) {
    test(`snapshots written with '${older}' frames (before 'kvBin') still restore`, async () => {
      const { crc32 } = await import('../../src/store/crc32.js');
      const h = busyHarness();
      const bytes = Buffer.from(snapshot(h.store));
      const packr = new Packr({ useRecords: false });
      const magicLength = bytes.indexOf(1) + 1; // the magic ends with \u0001
      const frames: Buffer[] = [bytes.subarray(0, magicLength)];
      let converted = 0;
      for (let at = magicLength; at < bytes.length - 4; ) {
        const length = bytes.readUInt32BE(at);
        let [section, data] = packr.unpack(bytes.subarray(at + 4, at + 4 + length)) as [string, unknown];
        if (section === 'kvBin') {
          converted++;
          // 'kvFlat': keys and values as msgpack str of their byte strings.
          const flat = (data as unknown[]).map((item) =>
            item instanceof Uint8Array ? Buffer.from(item).toString('latin1') : item,
          );
          [section, data] = ['kvFlat', flat];
          if (older === 'kv') {
            const perKey: [unknown, unknown[][]][] = [];
            for (let i = 0; i < flat.length; ) {
              const count = flat[i + 1] as number;
              const tuples = Array.from({ length: count }, (_, v) =>
                flat.slice(i + 2 + v * 8, i + 10 + v * 8),
              );
              perKey.push([flat[i], tuples]);
              i += 2 + count * 8;
            }
            [section, data] = ['kv', perKey];
          }
        }
        const payload = packr.pack([section, data]);
        const header = Buffer.alloc(4);
        header.writeUInt32BE(payload.length, 0);
        frames.push(header, payload);
        at += 4 + length;
      }
      assert.ok(converted > 0);
      const body = Buffer.concat(frames);
      const trailer = Buffer.alloc(4);
      trailer.writeUInt32BE(crc32(body), 0);
      const old = Buffer.concat([body, trailer]);
      assert.notDeepEqual(old, bytes);
      assert.deepEqual(Buffer.from(snapshot(restore(old))), bytes);
    });
  }

  test('a snapshot stream closed early stops tracking the store', () => {
    const h = busyHarness();
    const stream = snapshotChunks(h.store, { versionsPerFrame: 1 });
    stream.next();
    stream.next();
    stream.return(undefined);
    h.put('k/new', 'x');
    h.ok({ type: 'compact', revision: h.store.revision });
    assert.equal(restore(snapshot(h.store)).revision, h.store.revision);
  });
});

describe('64-bit Consul flags', () => {
  // Go's api.Lock and api.Semaphore mark their keys with these uint64 flags.
  const LOCK_FLAGS = 0x2ddccbc058a50c18n;
  const SEMAPHORE_FLAGS = 0xe0f69a2baa414de0n;

  test('flags beyond 2^53 are kept exactly, through the log codec, snapshot and restore', () => {
    const h = new Harness();
    const txn: Command = {
      type: 'consulTxn',
      timeMs: h.nowMs,
      ops: [
        { verb: 'set', key: b('lock'), value: b('a'), flags: LOCK_FLAGS },
        { verb: 'set', key: b('sem'), value: b('b'), flags: SEMAPHORE_FLAGS },
        { verb: 'set', key: b('small'), value: b('c'), flags: 2 ** 53 - 1 },
      ],
    };
    const decoded = decodeCommand(encodeCommand(txn));
    assert.deepEqual(decoded, txn);
    h.ok(decoded);
    const flagsOf = (store: Store, key: string) => store.get(b(key))?.flags;
    assert.equal(flagsOf(h.store, 'lock'), LOCK_FLAGS);
    assert.equal(flagsOf(h.store, 'sem'), SEMAPHORE_FLAGS);
    assert.equal(flagsOf(h.store, 'small'), 2 ** 53 - 1);
    // The same set again writes nothing: canonical flags compare equal.
    const revision = h.store.revision;
    h.ok(decodeCommand(encodeCommand(txn)));
    assert.equal(h.store.revision, revision);

    const bytes = snapshot(h.store);
    const restored = restore(bytes);
    assert.equal(flagsOf(restored, 'lock'), LOCK_FLAGS);
    assert.equal(flagsOf(restored, 'sem'), SEMAPHORE_FLAGS);
    assert.equal(flagsOf(restored, 'small'), 2 ** 53 - 1);
    assert.deepEqual(Buffer.from(snapshot(restored)), Buffer.from(bytes));
  });

  test('the codec refuses flags that are out of range or not canonical', () => {
    const packr = new Packr({ useRecords: false });
    for (const flags of [-1n, -(1n << 63n), 5n, 1.5]) {
      const command = [
        1,
        { type: 'consulTxn', timeMs: 1, ops: [{ verb: 'set', key: b('k'), value: b(''), flags }] },
      ];
      assert.throws(() => decodeCommand(packr.pack(command)), { code: StoreErrorCode.CorruptCommand });
    }
  });
});

type Write =
  | { kind: 'put'; key: number; value: string }
  | { kind: 'delete'; key: number; prefix: boolean }
  | { kind: 'compact'; back: number };

const writeArbitrary: fc.Arbitrary<Write> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('put' as const),
      key: fc.nat(12),
      value: fc.string({ maxLength: 4 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('delete' as const), key: fc.nat(12), prefix: fc.boolean() }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('compact' as const), back: fc.nat(6) }) },
);

function applyWrite(h: Harness, write: Write): void {
  const key = `k/${write.kind === 'compact' ? 0 : write.key}`;
  if (write.kind === 'put') h.put(key, write.value);
  else if (write.kind === 'delete')
    h.apply({ type: 'deleteRange', key: b(key), ...(write.prefix ? { rangeEnd: b(`${key}~`) } : {}) });
  else {
    const revision = Math.max(h.store.compactRevision, h.store.revision - write.back);
    h.apply({ type: 'compact', revision });
  }
}

describe('command codec', () => {
  test('round-trips every command shape', () => {
    const commands: Command[] = [
      { type: 'put', timeMs: 1, key: b('k'), value: Buffer.from([0, 255, 1]), lease: 3, prevKv: true },
      {
        type: 'txn',
        timeMs: 2,
        compare: [{ key: b('k'), target: 'value', result: 'equal', value: b('v') }],
        success: [
          { type: 'txn', compare: [], success: [{ type: 'range', key: b('a'), limit: 2 }], failure: [] },
        ],
        failure: [{ type: 'deleteRange', key: b('a'), rangeEnd: b('b') }],
      },
      {
        type: 'consulTxn',
        timeMs: 3,
        ops: [{ verb: 'lock', key: b('k'), value: b(''), session: 1, flags: 2 }],
      },
      { type: 'leaseGrant', timeMs: 4, id: 0, ttlMs: 10, behavior: 'release', checks: ['a'] },
      {
        type: 'catalogRegister',
        timeMs: 5,
        node: { node: 'n', meta: { a: 'b' } },
        checks: [{ checkId: 'c' }],
      },
      { type: 'leaseRenewAll', timeMs: 6 },
    ];
    for (const command of commands) assert.deepEqual(decodeCommand(encodeCommand(command)), command);
  });

  test('hostile bytes are CORRUPT_COMMAND, never a crash', () => {
    const bad = [
      new Uint8Array([0xc1]),
      encodeCommand({ type: 'put', timeMs: 1, key: b('k'), value: b('v') }).subarray(0, 5),
      Buffer.from(JSON.stringify({ type: 'put' })),
    ];
    for (const bytes of bad)
      assert.throws(() => decodeCommand(bytes), { code: StoreErrorCode.CorruptCommand });
    const packr = new Packr({ useRecords: false });
    const malformed = [
      [1, { type: 'put', timeMs: 1, key: 'not bytes', value: b('v') }],
      [1, { type: 'nope', timeMs: 1 }],
      [1, { type: 'txn', timeMs: 1, compare: [], success: [{ type: 'put', key: null }], failure: [] }],
      [2, { type: 'leaseRenewAll', timeMs: 1 }],
      [1, { type: 'leaseRenewAll' }],
    ];
    for (const value of malformed) {
      assert.throws(() => decodeCommand(packr.pack(value)), { code: StoreErrorCode.CorruptCommand });
    }
    assert.equal(s(b('ok')), 'ok');
  });
});

describe('crc32', () => {
  test('native and portable CRC-32 agree, incrementally too', async () => {
    const { crc32, crc32Portable } = await import('../../src/store/crc32.js');
    const data = Buffer.from('The quick brown fox jumps over the lazy dog');
    assert.equal(crc32Portable(data), 0x414fa339);
    assert.equal(crc32(data), 0x414fa339);
    assert.equal(crc32(data.subarray(10), crc32(data.subarray(0, 10))), 0x414fa339);
    assert.equal(crc32Portable(data.subarray(10), crc32Portable(data.subarray(0, 10))), 0x414fa339);
  });
});
