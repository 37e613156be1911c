import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { HpackDecoder, HpackError, indexedField, literalField, STATIC_TABLE } from '../../src/grpc/hpack.js';

/**
 * The HPACK decoder against RFC 7541 Appendix C (C.3-C.6, one decoder per sequence so the
 * dynamic table carries from one block to the next), malformed blocks (each must throw an
 * HpackError, never read out of bounds or hang), and the encoder helpers our server answers
 * with, round-tripped through the decoder.
 */

type Field = [string, string];

function hex(s: string): Buffer {
  return Buffer.from(s.replace(/\s+/g, ''), 'hex');
}

function decode(d: HpackDecoder, block: Uint8Array, maxListBytes?: number): Field[] {
  const out: Field[] = [];
  d.decode(block, (n, v) => out.push([n, v]), maxListBytes);
  return out;
}

/**
 * The dynamic table, newest first, read through indexed fields (62, 63, ...) until one is
 * missing: an indexed field never changes the table, so looking does not disturb it.
 */
function dynamicTable(d: HpackDecoder): Field[] {
  const out: Field[] = [];
  for (let index = STATIC_TABLE.length + 1; ; index++) {
    try {
      out.push(...decode(d, Buffer.from(indexedField(index))));
    } catch (err) {
      assert.ok(err instanceof HpackError);
      return out;
    }
  }
}

/** RFC 7541 §4.1: an entry's size is its name's and value's octets plus 32. */
function tableSize(table: Field[]): number {
  return table.reduce(
    (sum, [n, v]) => sum + Buffer.byteLength(n, 'latin1') + Buffer.byteLength(v, 'latin1') + 32,
    0,
  );
}

function throwsHpack(fn: () => unknown, message?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof HpackError, `expected an HpackError, got ${String(err)}`);
    assert.equal(err.name, 'HpackError');
    if (message) assert.match(err.message, message);
    return true;
  });
}

describe('HPACK static table', () => {
  test('has the 61 entries of RFC 7541 Appendix A', () => {
    assert.equal(STATIC_TABLE.length, 61);
    assert.deepEqual(STATIC_TABLE[0], [':authority', '']);
    assert.deepEqual(STATIC_TABLE[1], [':method', 'GET']);
    assert.deepEqual(STATIC_TABLE[7], [':status', '200']);
    assert.deepEqual(STATIC_TABLE[13], [':status', '500']);
    assert.deepEqual(STATIC_TABLE[14], ['accept-charset', '']);
    assert.deepEqual(STATIC_TABLE[15], ['accept-encoding', 'gzip, deflate']);
    assert.deepEqual(STATIC_TABLE[30], ['content-type', '']);
    assert.deepEqual(STATIC_TABLE[54], ['set-cookie', '']);
    assert.deepEqual(STATIC_TABLE[60], ['www-authenticate', '']);
  });
});

describe('HPACK decoder: RFC 7541 Appendix C', () => {
  test('C.2.1-C.2.4: the single representations', () => {
    const d = new HpackDecoder();
    // C.2.1 literal with incremental indexing, new name
    assert.deepEqual(decode(d, hex('400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572')), [
      ['custom-key', 'custom-header'],
    ]);
    assert.deepEqual(dynamicTable(d), [['custom-key', 'custom-header']]);
    assert.equal(tableSize(dynamicTable(d)), 55);
    // C.2.2 literal without indexing, indexed name: the table does not change
    const d2 = new HpackDecoder();
    assert.deepEqual(decode(d2, hex('040c 2f73 616d 706c 652f 7061 7468')), [[':path', '/sample/path']]);
    assert.deepEqual(dynamicTable(d2), []);
    // C.2.3 literal never indexed, new name
    assert.deepEqual(decode(d2, hex('1008 7061 7373 776f 7264 0673 6563 7265 74')), [['password', 'secret']]);
    assert.deepEqual(dynamicTable(d2), []);
    // C.2.4 indexed field
    assert.deepEqual(decode(d2, hex('82')), [[':method', 'GET']]);
    assert.deepEqual(dynamicTable(d2), []);
  });

  const requests: Field[][] = [
    [
      [':method', 'GET'],
      [':scheme', 'http'],
      [':path', '/'],
      [':authority', 'www.example.com'],
    ],
    [
      [':method', 'GET'],
      [':scheme', 'http'],
      [':path', '/'],
      [':authority', 'www.example.com'],
      ['cache-control', 'no-cache'],
    ],
    [
      [':method', 'GET'],
      [':scheme', 'https'],
      [':path', '/index.html'],
      [':authority', 'www.example.com'],
      ['custom-key', 'custom-value'],
    ],
  ];
  const requestTables: Field[][] = [
    [[':authority', 'www.example.com']],
    [
      ['cache-control', 'no-cache'],
      [':authority', 'www.example.com'],
    ],
    [
      ['custom-key', 'custom-value'],
      ['cache-control', 'no-cache'],
      [':authority', 'www.example.com'],
    ],
  ];
  const requestSizes = [57, 110, 164];

  function requestSequence(blocks: string[]): void {
    const d = new HpackDecoder();
    blocks.forEach((block, i) => {
      assert.deepEqual(decode(d, hex(block)), requests[i], `request ${i + 1}`);
      const table = dynamicTable(d);
      assert.deepEqual(table, requestTables[i], `table after request ${i + 1}`);
      assert.equal(tableSize(table), requestSizes[i]);
    });
  }

  test('C.3: three requests without Huffman coding, one decoder', () => {
    requestSequence([
      '8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d',
      '8286 84be 5808 6e6f 2d63 6163 6865',
      '8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65',
    ]);
  });

  test('C.4: three requests with Huffman coding, one decoder', () => {
    requestSequence([
      '8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff',
      '8286 84be 5886 a8eb 1064 9cbf',
      '8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf',
    ]);
  });

  const date1 = 'Mon, 21 Oct 2013 20:13:21 GMT';
  const date2 = 'Mon, 21 Oct 2013 20:13:22 GMT';
  const location = 'https://www.example.com';
  const cookie = 'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1';
  const responses: Field[][] = [
    [
      [':status', '302'],
      ['cache-control', 'private'],
      ['date', date1],
      ['location', location],
    ],
    [
      [':status', '307'],
      ['cache-control', 'private'],
      ['date', date1],
      ['location', location],
    ],
    [
      [':status', '200'],
      ['cache-control', 'private'],
      ['date', date2],
      ['location', location],
      ['content-encoding', 'gzip'],
      ['set-cookie', cookie],
    ],
  ];
  const responseTables: Field[][] = [
    [
      ['location', location],
      ['date', date1],
      ['cache-control', 'private'],
      [':status', '302'],
    ],
    // ':status: 302' is evicted to make room for ':status: 307'
    [
      [':status', '307'],
      ['location', location],
      ['date', date1],
      ['cache-control', 'private'],
    ],
    [
      ['set-cookie', cookie],
      ['content-encoding', 'gzip'],
      ['date', date2],
    ],
  ];
  const responseSizes = [222, 222, 215];

  function responseSequence(blocks: string[]): void {
    // The examples use SETTINGS_HEADER_TABLE_SIZE 256.
    const d = new HpackDecoder(256);
    blocks.forEach((block, i) => {
      assert.deepEqual(decode(d, hex(block)), responses[i], `response ${i + 1}`);
      const table = dynamicTable(d);
      assert.deepEqual(table, responseTables[i], `table after response ${i + 1}`);
      assert.equal(tableSize(table), responseSizes[i]);
    });
  }

  test('C.5: three responses without Huffman coding, a 256-byte table with evictions', () => {
    responseSequence([
      '4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d',
      '4803 3330 37c1 c0bf',
      '88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31',
    ]);
  });

  test('C.6: three responses with Huffman coding, a 256-byte table with evictions', () => {
    responseSequence([
      '4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3',
      '4883 640e ffc1 c0bf',
      '88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07',
    ]);
  });

  test('C.1: the integers 10 and 1337 (5-bit prefix) and 42 (as a string length)', () => {
    // Through table size updates (5-bit prefix, 001xxxxx): 10 fits, 1337 takes 3 bytes.
    const d = new HpackDecoder(4096);
    decode(d, hex('40 01 61 01 62')); // a: b, 34 bytes
    decode(d, hex('2a')); // size update to 10: evicts everything
    assert.deepEqual(dynamicTable(d), []);
    decode(d, hex('3f 9a 0a')); // size update to 1337 (31 + 26 + 10 * 128)
    decode(d, hex('40 01 61 01 62'));
    assert.deepEqual(dynamicTable(d), [['a', 'b']]);
    // 42 as a string length (7-bit prefix here, the same integer code).
    const value = 'x'.repeat(42);
    assert.deepEqual(
      decode(new HpackDecoder(), Buffer.from([0x00, 0x01, 0x79, 0x2a, ...Buffer.from(value)])),
      [['y', value]],
    );
  });
});

describe('HPACK decoder: dynamic table behaviour', () => {
  test('a table size update to 0 empties the table; raising it again (up to the limit) works', () => {
    const d = new HpackDecoder();
    decode(d, hex('8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d'));
    assert.equal(dynamicTable(d).length, 1);
    decode(d, hex('20'));
    assert.deepEqual(dynamicTable(d), []);
    throwsHpack(() => decode(d, hex('be')), /62/);
    decode(d, hex('3fe11f')); // back to 4096
    decode(d, hex('4001610162'));
    assert.deepEqual(dynamicTable(d), [['a', 'b']]);
  });

  test('an entry larger than the whole table empties it without error (RFC 7541 §4.4)', () => {
    const d = new HpackDecoder(256);
    decode(d, Buffer.from([0x40, 0x01, 0x61, 0x01, 0x62]));
    assert.equal(dynamicTable(d).length, 1);
    const big = 'v'.repeat(250); // 1 + 250 + 32 = 283 bytes
    const block = Buffer.from([0x40, 0x01, 0x62, 0x7f, 250 - 127, ...Buffer.from(big)]);
    assert.deepEqual(decode(d, block), [['b', big]]);
    assert.deepEqual(dynamicTable(d), []);
  });

  test('the maximum a peer may set is exactly the constructor limit', () => {
    const d = new HpackDecoder(256);
    decode(d, hex('3fe101')); // 256
    throwsHpack(() => decode(d, hex('3fe201')), /limit/); // 257
    const big = new HpackDecoder(); // default limit 4096
    decode(big, hex('3fe11f')); // 4096
    throwsHpack(() => decode(big, hex('3fe21f')), /limit/); // 4097
  });

  test('a literal with incremental indexing may name a dynamic entry', () => {
    const d = new HpackDecoder();
    decode(d, Buffer.from([0x40, 0x03, ...Buffer.from('x-a'), 0x01, 0x31]));
    // 0x7e: incremental indexing, name index 62 (x-a)
    assert.deepEqual(decode(d, Buffer.from([0x7e, 0x01, 0x32])), [['x-a', '2']]);
    assert.deepEqual(dynamicTable(d), [
      ['x-a', '2'],
      ['x-a', '1'],
    ]);
    // 0x0f 0x30: without indexing, name index 15 + 48 = 63 (the older x-a)
    assert.deepEqual(decode(d, Buffer.from([0x0f, 0x30, 0x01, 0x33])), [['x-a', '3']]);
    assert.equal(dynamicTable(d).length, 2);
  });

  test('an empty block decodes to nothing', () => {
    assert.deepEqual(decode(new HpackDecoder(), Buffer.alloc(0)), []);
  });

  test('decodes a block that is a view into a larger buffer (non-zero byteOffset)', () => {
    const backing = Buffer.concat([
      Buffer.from('garbage'),
      hex('040c 2f73 616d 706c 652f 7061 7468'),
      hex('ff'),
    ]);
    const view = backing.subarray(7, backing.length - 1);
    assert.deepEqual(decode(new HpackDecoder(), view), [[':path', '/sample/path']]);
  });
});

describe('HPACK decoder: malformed blocks throw HpackError', () => {
  test('a truncated integer', () => {
    throwsHpack(() => decode(new HpackDecoder(), hex('ff'))); // indexed, prefix all ones, no continuation
    throwsHpack(() => decode(new HpackDecoder(), hex('ff80'))); // continuation bit set on the last byte
    throwsHpack(() => decode(new HpackDecoder(), hex('3f'))); // size update cut short
    throwsHpack(() => decode(new HpackDecoder(), hex('00 7f'))); // string length cut short
  });

  test('an integer too large', () => {
    throwsHpack(() => decode(new HpackDecoder(), hex('ff ff ff ff ff 0f')), /overflow/);
    throwsHpack(() => decode(new HpackDecoder(), hex('00 7f ff ff ff ff 0f')), /overflow/);
  });

  test('an integer with very many zero continuation bytes (RFC 7541 §5.1: too long for the implementation)', () => {
    const overlong = (first: number) => Buffer.from([first, ...new Array<number>(160).fill(0x80), 0x00]);
    throwsHpack(() => decode(new HpackDecoder(), overlong(0x3f))); // table size update
    throwsHpack(() => decode(new HpackDecoder(), overlong(0xff))); // indexed field
    // A string length of NaN: the literal silently decodes as empty and ends the block.
    throwsHpack(() => decode(new HpackDecoder(), Buffer.concat([hex('00'), overlong(0x7f), hex('01 61')])));
  });

  test('after an overlong table size update the table still evicts (or the update was refused)', () => {
    const d = new HpackDecoder();
    try {
      decode(d, Buffer.from([0x3f, ...new Array<number>(160).fill(0x80), 0x00]));
    } catch (err) {
      assert.ok(err instanceof HpackError);
      return; // refused: that is the right outcome
    }
    // Accepted: then the table must still be bounded by the 4096-byte limit.
    const value = 'v'.repeat(100);
    for (let i = 0; i < 200; i++) decode(d, Buffer.from(literalIndexed(`k${i}`, value)));
    assert.ok(tableSize(dynamicTable(d)) <= 4096, `table holds ${tableSize(dynamicTable(d))} bytes`);
  });

  test('a truncated string', () => {
    throwsHpack(() => decode(new HpackDecoder(), hex('00 05 61')), /truncated/); // name of 5, 1 present
    throwsHpack(() => decode(new HpackDecoder(), hex('00 01 61 05 62 62')), /truncated/); // value of 5, 2 present
    throwsHpack(() => decode(new HpackDecoder(), hex('00')), /truncated/); // the name's length is missing
    throwsHpack(() => decode(new HpackDecoder(), hex('00 01 61')), /truncated/); // the value is missing
    throwsHpack(() => decode(new HpackDecoder(), hex('04')), /truncated/); // :path literal without value
    throwsHpack(() => decode(new HpackDecoder(), hex('00 01 61 85 ff')), /truncated/); // Huffman, 5 of 1
  });

  test('index 0', () => {
    throwsHpack(() => decode(new HpackDecoder(), hex('80')), /index 0/);
  });

  test('an index past the static and dynamic tables', () => {
    throwsHpack(() => decode(new HpackDecoder(), hex('be')), /62/); // 62 with an empty dynamic table
    throwsHpack(() => decode(new HpackDecoder(), hex('ff 80 01')), /no entry/); // 255
    throwsHpack(() => decode(new HpackDecoder(), hex('7e 01 61')), /62/); // literal naming entry 62
    throwsHpack(() => decode(new HpackDecoder(), hex('0f 2f 01 61')), /62/); // 15 + 47 = 62, w/o indexing
    const d = new HpackDecoder();
    decode(d, hex('4001610162'));
    assert.deepEqual(decode(d, hex('be')), [['a', 'b']]);
    throwsHpack(() => decode(d, hex('bf')), /63/);
  });

  test('a table size update above the advertised limit', () => {
    throwsHpack(() => decode(new HpackDecoder(256), hex('3fe201')), /limit/); // 257 > 256
    throwsHpack(() => decode(new HpackDecoder(), hex('3fe21f')), /limit/); // 4097 > 4096
    throwsHpack(() => decode(new HpackDecoder(0), hex('21')), /limit/); // 1 > 0
  });

  test('EOS inside a Huffman string', () => {
    // 'a' as the name, then a Huffman value of four 0xff: its first 30 bits are the EOS code.
    throwsHpack(() => decode(new HpackDecoder(), hex('00 01 61 84 ffffffff')), /EOS/);
    // EOS after a valid symbol ('a' = 00011, then 30 ones).
    const bits = `00011${'1'.repeat(30)}`.padEnd(40, '1');
    const bytes = Buffer.from(bits.match(/.{8}/g)!.map((b) => Number.parseInt(b, 2)));
    throwsHpack(() => decode(new HpackDecoder(), Buffer.from([0x00, 0x01, 0x61, 0x80 | 5, ...bytes])), /EOS/);
  });

  test('bad Huffman padding: zeros, or longer than 7 bits', () => {
    // 0x00: '0' (00000) then 000 as padding, which is not a prefix of EOS.
    throwsHpack(() => decode(new HpackDecoder(), hex('00 01 61 81 00')), /padding/);
    // 'a' (00011) then 11 one-bits: padding longer than 7 bits.
    throwsHpack(() => decode(new HpackDecoder(), hex('00 01 61 82 1fff')), /padding/);
    // 'a' 'a' (10 bits) and 6 one-bits of padding: valid.
    assert.deepEqual(decode(new HpackDecoder(), hex('00 01 61 82 18ff')), [['a', 'aa']]);
    // ... and the same bytes with one padding bit flipped to 0 are rejected.
    throwsHpack(() => decode(new HpackDecoder(), hex('00 01 61 82 18fe')), /padding/);
  });

  test('a header list over maxListBytes', () => {
    // 'x: y' counts 1 + 1 + 32 = 34 bytes.
    const block = Buffer.from([...literalField(0, 'x', 'y'), ...literalField(0, 'x', 'y')]);
    assert.equal(decode(new HpackDecoder(), block, 68).length, 2);
    throwsHpack(() => decode(new HpackDecoder(), block, 67), /too large/);
    throwsHpack(() => decode(new HpackDecoder(), block, 33), /too large/);
    // The default bound is 64 KiB.
    const big = Buffer.from(literalField(0, 'big', 'v'.repeat(70_000)));
    throwsHpack(() => decode(new HpackDecoder(), big), /too large/);
    // Indexed fields count too: 61 times ':authority' + 42 bytes, well over 1000.
    const indexed = Buffer.from(new Array<number>(61).fill(0x81));
    throwsHpack(() => decode(new HpackDecoder(), indexed, 1000), /too large/);
  });

  test('random garbage never throws anything but HpackError', () => {
    let seed = 12345;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    for (let round = 0; round < 3000; round++) {
      const block = Buffer.alloc(1 + (rand() % 40));
      for (let i = 0; i < block.length; i++) block[i] = rand() & 0xff;
      const d = new HpackDecoder();
      try {
        decode(d, block);
      } catch (err) {
        assert.ok(err instanceof HpackError, `block ${block.toString('hex')}: ${String(err)}`);
      }
    }
  });
});

/** A literal with incremental indexing and a new name (no Huffman): the encoder has none. */
function literalIndexed(name: string, value: string): number[] {
  const n = Buffer.from(name, 'latin1');
  const v = Buffer.from(value, 'latin1');
  assert.ok(n.length < 127 && v.length < 127);
  return [0x40, n.length, ...n, v.length, ...v];
}

describe('HPACK encoder helpers round-trip through the decoder', () => {
  test('indexedField: every static entry', () => {
    for (let index = 1; index <= STATIC_TABLE.length; index++) {
      assert.deepEqual(decode(new HpackDecoder(), Buffer.from(indexedField(index))), [
        [...STATIC_TABLE[index - 1]!],
      ]);
    }
    assert.deepEqual(indexedField(8), [0x88]); // :status 200
  });

  test('literalField with a static name index, below and above the 4-bit prefix', () => {
    const d = new HpackDecoder();
    assert.deepEqual(decode(d, Buffer.from(literalField(31, 'content-type', 'application/grpc'))), [
      ['content-type', 'application/grpc'],
    ]);
    assert.deepEqual(decode(d, Buffer.from(literalField(8, ':status', '415'))), [[':status', '415']]);
    assert.deepEqual(decode(d, Buffer.from(literalField(14, ':status', '418'))), [[':status', '418']]);
    assert.deepEqual(decode(d, Buffer.from(literalField(15, 'accept-charset', 'utf-8'))), [
      ['accept-charset', 'utf-8'],
    ]);
    assert.deepEqual(decode(d, Buffer.from(literalField(61, 'www-authenticate', 'Basic'))), [
      ['www-authenticate', 'Basic'],
    ]);
    // Literals without indexing leave the table alone.
    assert.deepEqual(dynamicTable(d), []);
  });

  test('literalField with a new name, values of every length class and latin1 bytes', () => {
    const d = new HpackDecoder();
    for (const length of [0, 1, 126, 127, 128, 255, 16_383, 16_384, 40_000]) {
      const value = 'abcdefghij'.repeat(4001).slice(0, length);
      assert.deepEqual(
        decode(d, Buffer.from(literalField(0, 'grpc-message', value))),
        [['grpc-message', value]],
        `value of ${length}`,
      );
    }
    const latin1 = 'caf\u00e9 \u00ff\u0000\u007f';
    assert.deepEqual(decode(d, Buffer.from(literalField(0, 'x-latin1', latin1))), [['x-latin1', latin1]]);
    const longName = `x-${'n'.repeat(300)}`;
    assert.deepEqual(decode(d, Buffer.from(literalField(0, longName, 'v'))), [[longName, 'v']]);
    assert.deepEqual(dynamicTable(d), []);
  });

  test('a whole response header block as our server builds it', () => {
    const block = Buffer.from([
      ...indexedField(8),
      ...literalField(31, 'content-type', 'application/grpc'),
      ...literalField(0, 'grpc-accept-encoding', 'identity'),
      ...literalField(0, 'grpc-status', '5'),
      ...literalField(0, 'grpc-message', 'not%20found'),
    ]);
    assert.deepEqual(decode(new HpackDecoder(), block), [
      [':status', '200'],
      ['content-type', 'application/grpc'],
      ['grpc-accept-encoding', 'identity'],
      ['grpc-status', '5'],
      ['grpc-message', 'not%20found'],
    ]);
  });

  test('the byte layout of literalField and indexedField (RFC 7541 §6.1, §6.2.2)', () => {
    assert.deepEqual(literalField(0, 'a', 'b'), [0x00, 0x01, 0x61, 0x01, 0x62]);
    assert.deepEqual(literalField(4, ':path', '/'), [0x04, 0x01, 0x2f]);
    assert.deepEqual(literalField(31, 'content-type', ''), [0x0f, 0x10, 0x00]);
    assert.deepEqual(indexedField(127), [0xff, 0x00]);
    assert.deepEqual(indexedField(128), [0xff, 0x01]);
    assert.deepEqual(indexedField(1337), [0xff, 0xba, 0x09]);
  });
});
