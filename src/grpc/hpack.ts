/**
 * HPACK (RFC 7541) for our HTTP/2 endpoints: a full decoder (static and dynamic tables,
 * Huffman), since peers index and Huffman-code what they send, and an encoder that only emits
 * literals without indexing, so our own table never changes and needs no state.
 *
 * The decoder reads untrusted bytes: every malformed block throws an `HpackError` (the
 * connection then ends with COMPRESSION_ERROR, §4.3 of RFC 9113), never an out-of-bounds read.
 */

export class HpackError extends Error {
  override name = 'HpackError';
}

export const STATIC_TABLE: readonly (readonly [string, string])[] = [
  [':authority', ''],
  [':method', 'GET'],
  [':method', 'POST'],
  [':path', '/'],
  [':path', '/index.html'],
  [':scheme', 'http'],
  [':scheme', 'https'],
  [':status', '200'],
  [':status', '204'],
  [':status', '206'],
  [':status', '304'],
  [':status', '400'],
  [':status', '404'],
  [':status', '500'],
  ...(
    'accept-charset,accept-encoding,accept-language,accept-ranges,accept,access-control-allow-origin,age,' +
    'allow,authorization,cache-control,content-disposition,content-encoding,content-language,' +
    'content-length,content-location,content-range,content-type,cookie,date,etag,expect,expires,from,' +
    'host,if-match,if-modified-since,if-none-match,if-range,if-unmodified-since,last-modified,link,' +
    'location,max-forwards,proxy-authenticate,proxy-authorization,range,referer,refresh,retry-after,' +
    'server,set-cookie,strict-transport-security,transfer-encoding,user-agent,vary,via,www-authenticate'
  )
    .split(',')
    .map((name): [string, string] => [name, name === 'accept-encoding' ? 'gzip, deflate' : '']),
];

/**
 * HPACK's Huffman code is canonical, so the code length of each symbol (0..256, EOS last) is
 * all it takes to rebuild it: one letter per symbol, 'A' = 5 bits ... 'Z' = 30 bits.
 */
const HUFFMAN_LENGTHS =
  'ISXXXXXXXTZXXZXXXXXXXXZXXXXXXXXXBFFHIBDGFFDGDBBBAAABBBBBBBCDKBHFIBCCCCCCCCCCCCCCCCCCCCCCDCDIOIJBKAB' +
  'ABABBBACCBBBABCBAABCCCCCKGJIXPRPPRRRSRSSSSSTSTTRSTSSSSQRSRSSTRQPRRSSQSRRTQRSSQQRQSRSSPRRRSRRSVVPORS' +
  'RUVVVWWVTUOQVWWVWTQQVVXWWWPTPQRQQSRRUUTTVSVWVVWWWWWXWWWWWVZ';

const huffman = (() => {
  const lengths = [...HUFFMAN_LENGTHS].map((c) => c.charCodeAt(0) - 65 + 5);
  const symbols = lengths.map((_, s) => s).sort((a, b) => lengths[a]! - lengths[b]! || a - b);
  const first = new Array<number>(31).fill(0);
  const count = new Array<number>(31).fill(0);
  const offset = new Array<number>(31).fill(0);
  for (const l of lengths) count[l]!++;
  let code = 0;
  let at = 0;
  for (let l = 1; l <= 30; l++) {
    first[l] = code;
    offset[l] = at;
    at += count[l]!;
    code = (code + count[l]!) * 2;
  }
  return { symbols, first, count, offset };
})();

function huffmanDecode(bytes: Uint8Array): string {
  const { symbols, first, count, offset } = huffman;
  let out = '';
  let code = 0;
  let len = 0;
  for (const byte of bytes) {
    for (let bit = 7; bit >= 0; bit--) {
      code = code * 2 + ((byte >> bit) & 1);
      len++;
      const idx = code - first[len]!;
      if (idx >= 0 && idx < count[len]!) {
        const sym = symbols[offset[len]! + idx]!;
        // §5.2: EOS in a string is an error; padding is the EOS code's leading ones, at most 7.
        if (sym === 256) throw new HpackError('HPACK: EOS in a Huffman string');
        out += String.fromCharCode(sym);
        code = 0;
        len = 0;
      } else if (len >= 30) {
        throw new HpackError('HPACK: invalid Huffman code');
      }
    }
  }
  if (len > 7 || code !== 2 ** len - 1) throw new HpackError('HPACK: bad Huffman padding');
  return out;
}

export class HpackDecoder {
  /** Newest first. */
  private dynamic: [string, string][] = [];
  private size = 0;
  private maxSize: number;

  /** `limit`: the SETTINGS_HEADER_TABLE_SIZE we advertised; the peer may only lower it. */
  constructor(private readonly limit = 4096) {
    this.maxSize = limit;
  }

  private entry(index: number): readonly [string, string] {
    if (index <= 0) throw new HpackError('HPACK: index 0');
    if (index <= STATIC_TABLE.length) return STATIC_TABLE[index - 1]!;
    const e = this.dynamic[index - STATIC_TABLE.length - 1];
    if (!e) throw new HpackError(`HPACK: no entry ${index}`);
    return e;
  }

  private insert(name: string, value: string): void {
    this.dynamic.unshift([name, value]);
    this.size += name.length + value.length + 32;
    this.evict();
  }

  private evict(): void {
    while (this.size > this.maxSize && this.dynamic.length) {
      const [n, v] = this.dynamic.pop()!;
      this.size -= n.length + v.length + 32;
    }
  }

  /**
   * Decode one header block, calling `field` for each header. `maxListBytes` bounds the
   * decoded size (names + values + 32 each, as SETTINGS_MAX_HEADER_LIST_SIZE counts it).
   */
  decode(block: Uint8Array, field: (name: string, value: string) => void, maxListBytes = 65_536): void {
    let i = 0;
    let listBytes = 0;
    const byte = (): number => {
      if (i >= block.length) throw new HpackError('HPACK: truncated block');
      return block[i++]!;
    };
    const int = (prefixBits: number): number => {
      const max = (1 << prefixBits) - 1;
      let v = byte() & max;
      if (v < max) return v;
      let m = 1;
      for (;;) {
        const b = byte();
        v += (b & 127) * m;
        m *= 128;
        // §5.1: an integer longer than we can hold is an error, zero continuation bytes included.
        if (v > 0x7fffffff || m > 2 ** 35) throw new HpackError('HPACK: integer overflow');
        if (b < 128) return v;
      }
    };
    const str = (): string => {
      if (i >= block.length) throw new HpackError('HPACK: truncated block');
      const huff = (block[i]! & 0x80) !== 0;
      const len = int(7);
      if (i + len > block.length) throw new HpackError('HPACK: truncated string');
      const bytes = block.subarray(i, i + len);
      i += len;
      return huff
        ? huffmanDecode(bytes)
        : Buffer.from(bytes.buffer, bytes.byteOffset, len).toString('latin1');
    };
    const emit = (name: string, value: string) => {
      listBytes += name.length + value.length + 32;
      if (listBytes > maxListBytes) throw new HpackError('HPACK: header list too large');
      field(name, value);
    };
    while (i < block.length) {
      const b = block[i]!;
      if (b & 0x80) {
        const [n, v] = this.entry(int(7));
        emit(n, v);
      } else if (b & 0x40) {
        const idx = int(6);
        const name = idx ? this.entry(idx)[0] : str();
        const value = str();
        this.insert(name, value);
        emit(name, value);
      } else if (b & 0x20) {
        const size = int(5);
        if (size > this.limit) throw new HpackError('HPACK: table size above the advertised limit');
        this.maxSize = size;
        this.evict();
      } else {
        const idx = int(4); // without indexing (0000) or never indexed (0001)
        const name = idx ? this.entry(idx)[0] : str();
        emit(name, str());
      }
    }
  }
}

// ---- encoder: literals without indexing, no Huffman

function encodeInt(value: number, prefixBits: number, firstByte: number): number[] {
  const max = (1 << prefixBits) - 1;
  if (value < max) return [firstByte | value];
  const out = [firstByte | max];
  let v = value - max;
  while (v >= 128) {
    out.push((v & 127) | 128);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
}

function encodeString(s: string): number[] {
  const b = Buffer.from(s, 'latin1');
  return [...encodeInt(b.length, 7, 0), ...b];
}

/** One header as a literal without indexing: name from the static table (`nameIndex` > 0) or spelled out. */
export function literalField(nameIndex: number, name: string, value: string): number[] {
  return nameIndex > 0
    ? [...encodeInt(nameIndex, 4, 0), ...encodeString(value)]
    : [0, ...encodeString(name), ...encodeString(value)];
}

/** An indexed field from the static table (e.g. 8 for `:status: 200`). */
export function indexedField(index: number): number[] {
  return encodeInt(index, 7, 0x80);
}
