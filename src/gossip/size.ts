/**
 * The encoded size of a message as standard MessagePack (msgpackr with `useRecords: false`), so
 * the core can keep UDP messages within a byte budget without encoding them. Exact for the
 * values messages hold (strings, integers, booleans, arrays, plain objects) as msgpackr encodes
 * them by default, where integers beyond 32 bits become float64 (9 bytes either way).
 */
import { invariant } from './assert.js';
import type { GossipMessage, MemberMeta, Update } from './types.js';

/** UTF-8 byte length of a JavaScript string (surrogate pairs count 4 bytes). */
export function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) bytes += 1;
    else if (code < 0x800) bytes += 2;
    else if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 4;
        i++;
      } else bytes += 3;
    } else bytes += 3;
  }
  return bytes;
}

function stringSize(text: string): number {
  const length = utf8Length(text);
  if (length < 32) return 1 + length;
  if (length < 0x100) return 2 + length;
  if (length < 0x10000) return 3 + length;
  return 5 + length;
}

function integerSize(value: number): number {
  if (value >= 0) {
    if (value < 0x80) return 1;
    if (value < 0x100) return 2;
    if (value < 0x10000) return 3;
    if (value < 0x100000000) return 5;
    return 9;
  }
  if (value >= -0x20) return 1;
  if (value >= -0x80) return 2;
  if (value >= -0x8000) return 3;
  if (value >= -0x80000000) return 5;
  return 9;
}

function containerHeaderSize(count: number): number {
  if (count < 16) return 1;
  if (count < 0x10000) return 3;
  return 5;
}

/**
 * msgpackr writes every map header as map16 (3 bytes) unless given `variableMapSize`, which
 * only shrinks it: the estimate is exact for the default and an upper bound otherwise.
 */
function mapHeaderSize(count: number): number {
  return count < 0x10000 ? 3 : 5;
}

/** Size of any plain value as MessagePack. */
export function valueSize(value: unknown): number {
  switch (typeof value) {
    case 'string':
      return stringSize(value);
    case 'number':
      return Number.isInteger(value) ? integerSize(value) : 9;
    case 'boolean':
      return 1;
    case 'object': {
      if (value === null) return 1;
      if (Array.isArray(value)) {
        let size = containerHeaderSize(value.length);
        for (const item of value) size += valueSize(item);
        return size;
      }
      let count = 0;
      let size = 0;
      for (const key in value) {
        const field = (value as Record<string, unknown>)[key];
        invariant(field !== undefined, () => `encodedSize: field '${key}' is undefined`);
        count++;
        size += stringSize(key) + valueSize(field);
      }
      return mapHeaderSize(count) + size;
    }
    default:
      throw new TypeError(`encodedSize: cannot size a ${typeof value}`);
  }
}

/** Bytes `message` takes as MessagePack: what the shell checks against its UDP budget. */
export function encodedSize(message: GossipMessage): number {
  return valueSize(message);
}

export function updateSize(update: Update): number {
  return valueSize(update);
}

export function metaSize(meta: MemberMeta): number {
  return valueSize(meta);
}

/** Extra bytes an array of `count` items needs in its header beyond a fixarray's one byte. */
export function arrayHeaderGrowth(count: number): number {
  return containerHeaderSize(count) - 1;
}
