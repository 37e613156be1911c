/** Conversion of internal versions to the public KeyValue shape, and key-range decoding. */
import { type ByteString, fromByteString, toByteString } from './bytes.js';
import type { Version } from './mvcc.js';
import type { KeyValue } from './types.js';

const EMPTY = new Uint8Array(0);

export function toKeyValue(version: Version, keysOnly = false): KeyValue {
  return {
    key: fromByteString(version.key),
    value: keysOnly ? EMPTY : fromByteString(version.value),
    createRevision: version.createRevision,
    modRevision: version.modRevision,
    version: version.version,
    lease: version.lease,
    flags: version.flags,
    lockIndex: version.lockIndex,
    session: version.session,
  };
}

/** A decoded etcd key range: [start, end) with end null meaning unbounded; single: end === start+"\0". */
export interface KeyRange {
  start: ByteString;
  end: ByteString | null;
  /** True when the request names one key (no range_end). */
  single: boolean;
}

/**
 * etcd range conventions: no/empty range_end means the single key; range_end "\0" means every
 * key >= key; key "\0" with range_end "\0" means every key.
 */
export function decodeRange(key: Uint8Array, rangeEnd: Uint8Array | undefined): KeyRange {
  const start = toByteString(key);
  if (rangeEnd === undefined || rangeEnd.length === 0) return { start, end: start + '\u0000', single: true };
  if (rangeEnd.length === 1 && rangeEnd[0] === 0) return { start, end: null, single: false };
  return { start, end: toByteString(rangeEnd), single: false };
}

export function inRange(range: KeyRange, key: ByteString): boolean {
  return key >= range.start && (range.end === null || key < range.end);
}
