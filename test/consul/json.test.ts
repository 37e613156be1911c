import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { parseJson, stringifyJson } from '../../src/api/consul/json.js';

// JSON with uint64 integers (Consul's KV Flags): exact digits in, exact digits out.

describe('parseJson', () => {
  test('integer literals beyond 2^53 become bigints; everything else is as JSON.parse gives it', () => {
    const text =
      '{"a":[3303164778254188568, 9007199254740991, -9223372036854775808, 1.5e300, "1234567890123456789"],' +
      ' "b": {"c": null, "d": true, "e": "q\\"uote\\\\"}, "__proto__": 1}';
    const parsed = parseJson(text) as Record<string, unknown>;
    assert.deepEqual(parsed.a, [
      3303164778254188568n,
      9007199254740991,
      -9223372036854775808n,
      1.5e300,
      '1234567890123456789',
    ]);
    assert.deepEqual(parsed.b, { c: null, d: true, e: 'q"uote\\' });
    assert.equal(Object.getPrototypeOf(parsed), Object.prototype);
    assert.deepEqual(Object.keys(parsed), ['a', 'b', '__proto__']);
  });

  test('malformed text is a SyntaxError, with or without long digits', () => {
    for (const text of ['[1,', '{"a":12345678901234567890', '12345678901234567890 1', '']) {
      assert.throws(() => parseJson(text), SyntaxError);
    }
  });

  test('agrees with JSON.parse on any JSON, up to bigints for unsafe integers', () => {
    const numbers = (v: unknown) =>
      JSON.parse(JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? Number(x) : x))) as unknown;
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const text = JSON.stringify(value);
        const parsed = parseJson(text);
        assert.deepEqual(numbers(parsed), numbers(JSON.parse(text)));
        // A bigint only ever stands for an integer a double cannot hold exactly.
        JSON.stringify(parsed, (_k, x: unknown) => {
          if (typeof x === 'bigint') assert.ok(!Number.isSafeInteger(Number(x)));
          return typeof x === 'bigint' ? 0 : x;
        });
      }),
    );
  });
});

describe('stringifyJson', () => {
  test('bigints print as bare digits; the rest as JSON.stringify prints it', () => {
    const value = { Flags: 16209363699666365920n, Key: 'k', Skip: undefined, List: [1n, undefined, 'x'] };
    assert.equal(stringifyJson(value), '{"Flags":16209363699666365920,"Key":"k","List":[1,null,"x"]}');
    assert.equal(stringifyJson([{ a: 1 }]), '[{"a":1}]');
  });

  test('round-trips through parseJson', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.string(), (flags, key) => {
        const parsed = parseJson(stringifyJson({ Flags: flags, Key: key })) as {
          Flags: unknown;
          Key: string;
        };
        assert.equal(BigInt(parsed.Flags as number | bigint), flags);
        assert.equal(parsed.Key, key);
      }),
    );
  });
});
