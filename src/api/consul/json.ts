/**
 * JSON with 64-bit integers. Consul's KV Flags are Go uint64s (api.Lock writes
 * 0x2ddccbc058a50c18), beyond a double's 2^53, so they must travel as exact decimal digits:
 * big integer literals parse to bigints, and bigints print as bare digits. Both fall back to
 * this slower path only when the fast native one cannot be exact.
 */

/** An integer literal of 16 or more digits may exceed 2^53; shorter ones never do. */
const LONG_DIGITS = /\d{16}/;

/** JSON.parse, except that integer literals beyond Number.MAX_SAFE_INTEGER become bigints. */
export function parseJson(text: string): unknown {
  const fast = JSON.parse(text) as unknown; // also rejects malformed text before the walk below
  if (!LONG_DIGITS.test(text)) return fast;
  return new LosslessParser(text).document();
}

/** One token: a string, a number, a literal, or punctuation; whitespace is skipped. */
const TOKEN = /\s*("[^"\\]*(?:\\.[^"\\]*)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null|[[\]{},:])/y;
const INTEGER = /^-?\d+$/;

class LosslessParser {
  private readonly tokens: string[] = [];
  private at = 0;

  constructor(text: string) {
    TOKEN.lastIndex = 0;
    for (let m = TOKEN.exec(text); m; m = TOKEN.exec(text)) this.tokens.push(m[1] as string);
  }

  document(): unknown {
    const value = this.value();
    if (this.at !== this.tokens.length) throw new SyntaxError('unexpected data after JSON value');
    return value;
  }

  private next(): string {
    const token = this.tokens[this.at++];
    if (token === undefined) throw new SyntaxError('unexpected end of JSON input');
    return token;
  }

  private value(): unknown {
    const token = this.next();
    if (token === '{') return this.object();
    if (token === '[') return this.array();
    if (token.startsWith('"')) return JSON.parse(token) as string;
    if (INTEGER.test(token)) {
      const n = Number(token);
      return Number.isSafeInteger(n) ? n : BigInt(token);
    }
    return JSON.parse(token) as unknown;
  }

  private object(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    if (this.tokens[this.at] === '}') {
      this.at++;
      return out;
    }
    for (;;) {
      const key = JSON.parse(this.next()) as string;
      if (this.next() !== ':') throw new SyntaxError('expected ":" in JSON object');
      // defineProperty: a "__proto__" key is data, as JSON.parse treats it.
      Object.defineProperty(out, key, {
        value: this.value(),
        enumerable: true,
        writable: true,
        configurable: true,
      });
      const sep = this.next();
      if (sep === '}') return out;
      if (sep !== ',') throw new SyntaxError('expected "," or "}" in JSON object');
    }
  }

  private array(): unknown[] {
    const out: unknown[] = [];
    if (this.tokens[this.at] === ']') {
      this.at++;
      return out;
    }
    for (;;) {
      out.push(this.value());
      const sep = this.next();
      if (sep === ']') return out;
      if (sep !== ',') throw new SyntaxError('expected "," or "]" in JSON array');
    }
  }
}

/** JSON.stringify, except that bigints print as their decimal digits. */
export function stringifyJson(value: unknown): string {
  try {
    return JSON.stringify(value);
  } catch (err) {
    if (!(err instanceof TypeError) || !/BigInt/i.test(err.message)) throw err;
  }
  return write(value, 0) ?? 'null';
}

const MAX_DEPTH = 256;

/** The JSON text of a value; undefined for what JSON.stringify leaves out (undefined, functions). */
function write(value: unknown, depth: number): string | undefined {
  if (depth > MAX_DEPTH) throw new RangeError('JSON value nested too deeply');
  if (typeof value === 'bigint') return value.toString();
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  const json = (value as { toJSON?: () => unknown }).toJSON;
  if (typeof json === 'function') return write(json.call(value), depth + 1);
  if (Array.isArray(value)) return `[${value.map((item) => write(item, depth + 1) ?? 'null').join(',')}]`;
  const parts: string[] = [];
  for (const [key, item] of Object.entries(value)) {
    const text = write(item, depth + 1);
    if (text !== undefined) parts.push(`${JSON.stringify(key)}:${text}`);
  }
  return `{${parts.join(',')}}`;
}
