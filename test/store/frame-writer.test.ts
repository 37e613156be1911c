import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { FrameWriter } from '../../src/store/frame-writer.js';
import { MAX_CONSUL_FLAGS } from '../../src/store/types.js';

const packr = new Packr({ useRecords: false });

type Item = { kind: 'int'; value: number } | { kind: 'big'; value: bigint } | { kind: 'bin'; value: string };

const item: fc.Arbitrary<Item> = fc.oneof(
  fc
    .oneof(
      fc.integer({ min: -40, max: 300 }),
      fc.integer({ min: -(2 ** 31) - 5, max: 2 ** 32 + 5 }),
      fc.maxSafeInteger(),
      fc.constantFrom(0, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, -32, -33, -128, -129),
      fc.constantFrom(
        -32768,
        -32769,
        -(2 ** 31),
        -(2 ** 31) - 1,
        Number.MAX_SAFE_INTEGER,
        Number.MIN_SAFE_INTEGER,
      ),
    )
    .map((value) => ({ kind: 'int' as const, value })),
  fc
    .bigInt({ min: BigInt(Number.MAX_SAFE_INTEGER) + 1n, max: MAX_CONSUL_FLAGS })
    .map((value) => ({ kind: 'big' as const, value })),
  fc
    .oneof(
      fc.string({
        unit: fc.integer({ min: 0, max: 255 }).map((c) => String.fromCharCode(c)),
        maxLength: 300,
      }),
      fc.constantFrom(255, 256, 65535, 65536).map((n) => 'é'.repeat(n)),
    )
    .map((value) => ({ kind: 'bin' as const, value })),
);

test('what FrameWriter writes decodes with msgpackr to the same numbers, bigints and bytes', () => {
  fc.assert(
    fc.property(fc.array(item, { maxLength: 40 }), (items) => {
      const out = new FrameWriter(8); // small, so it grows on the way
      const lengthAt = out.uint32Item();
      out.fixArray(2);
      out.fixString('kvBin');
      const countAt = out.arrayHeader32();
      for (const it of items) {
        if (it.kind === 'int') out.integer(it.value);
        else if (it.kind === 'big') out.numberOrBigint(it.value);
        else out.bin(it.value);
      }
      out.patchUint32(lengthAt, 42);
      out.patchUint32(countAt, items.length);
      const bytes = out.take();
      const [length, decoded] = packr.unpackMultiple(bytes) as [number, [string, unknown[]]];
      assert.equal(length, 42);
      assert.equal(decoded[0], 'kvBin');
      assert.equal(decoded[1].length, items.length);
      items.forEach((it, i) => {
        const got = decoded[1][i];
        if (it.kind === 'bin') {
          assert.ok(got instanceof Uint8Array);
          assert.equal(Buffer.from(got).toString('latin1'), it.value);
        } else {
          assert.equal(typeof got, it.kind === 'int' ? 'number' : 'bigint');
          assert.equal(got, it.value);
        }
      });
      assert.equal(out.length, 0, 'take starts the writer over');
    }),
    { numRuns: 500 },
  );
});
