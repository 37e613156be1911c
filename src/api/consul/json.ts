import { isInteger, isSafeNumber, parse, stringify } from 'lossless-json';

/**
 * JSON with 64-bit integers. Consul's KV Flags are Go uint64s (api.Lock writes
 * 0x2ddccbc058a50c18), beyond a double's 2^53, so they must travel as exact decimal digits:
 * big integer literals parse to bigints, and bigints print as bare digits (lossless-json).
 * Both take the native path whenever it is exact.
 */

/** An integer literal of 16 or more digits may exceed 2^53; shorter ones never do. */
const LONG_DIGITS = /\d{16}/;

/** Integers a double cannot hold exactly become bigints; every other number is a number. */
const parseNumber = (digits: string): number | bigint =>
  isInteger(digits) && !isSafeNumber(digits) ? BigInt(digits) : Number(digits);

/** JSON.parse, except that integer literals beyond Number.MAX_SAFE_INTEGER become bigints. */
export function parseJson(text: string): unknown {
  const fast = JSON.parse(text) as unknown; // also rejects malformed text first
  if (!LONG_DIGITS.test(text)) return fast;
  return parse(text, undefined, parseNumber);
}

/** JSON.stringify, except that bigints print as their decimal digits. */
export function stringifyJson(value: unknown): string {
  try {
    return JSON.stringify(value);
  } catch (err) {
    if (!(err instanceof TypeError) || !/BigInt/i.test(err.message)) throw err;
  }
  return stringify(value) ?? 'null';
}
