/**
 * etcd Range evaluation (limit, count, keys-only, count-only, revision filters, sort) over any
 * ordered source of versions: the committed store at some revision, or a write txn's view.
 */
import { StoreError, StoreErrorCode } from './errors.js';
import { type KeyRange, toKeyValue } from './kv-view.js';
import { compareStrings, type Version, type VersionVisitor } from './mvcc.js';
import type { KeyValue, SortOrder, SortTarget } from './types.js';

export type Scanner = (range: KeyRange, reverse: boolean, visit: VersionVisitor) => void;

export interface RangeQuery {
  limit?: number;
  sortOrder?: SortOrder;
  sortTarget?: SortTarget;
  keysOnly?: boolean;
  countOnly?: boolean;
  minModRevision?: number;
  maxModRevision?: number;
  minCreateRevision?: number;
  maxCreateRevision?: number;
}

export interface RangeOutput {
  kvs: KeyValue[];
  more: boolean;
  count: number;
}

function hasFilters(query: RangeQuery): boolean {
  return (
    (query.minModRevision ?? 0) > 0 ||
    (query.maxModRevision ?? 0) > 0 ||
    (query.minCreateRevision ?? 0) > 0 ||
    (query.maxCreateRevision ?? 0) > 0
  );
}

function passes(query: RangeQuery, version: Version): boolean {
  const minMod = query.minModRevision ?? 0;
  const maxMod = query.maxModRevision ?? 0;
  const minCreate = query.minCreateRevision ?? 0;
  const maxCreate = query.maxCreateRevision ?? 0;
  if (minMod > 0 && version.modRevision < minMod) return false;
  if (maxMod > 0 && version.modRevision > maxMod) return false;
  if (minCreate > 0 && version.createRevision < minCreate) return false;
  if (maxCreate > 0 && version.createRevision > maxCreate) return false;
  return true;
}

function sortKey(target: SortTarget): (a: Version, b: Version) => number {
  switch (target) {
    case 'key':
      return (a, b) => compareStrings(a.key, b.key);
    case 'version':
      return (a, b) => a.version - b.version;
    case 'create':
      return (a, b) => a.createRevision - b.createRevision;
    case 'mod':
      return (a, b) => a.modRevision - b.modRevision;
    case 'value':
      return (a, b) => compareStrings(a.value, b.value);
  }
}

export function evaluateRange(
  scan: Scanner,
  range: KeyRange,
  query: RangeQuery,
  maxSortedKeys: number,
): RangeOutput {
  const limit = query.limit ?? 0;
  if (!Number.isSafeInteger(limit) || limit < 0) {
    throw new StoreError(
      StoreErrorCode.InvalidArgument,
      `range limit must be a non-negative integer: got ${limit}`,
    );
  }
  const order = query.sortOrder ?? 'none';
  const target = query.sortTarget ?? 'key';
  const keysOnly = query.keysOnly ?? false;
  const filtered = hasFilters(query);
  let count = 0;

  if (query.countOnly) {
    scan(range, false, () => {
      count++;
      return true;
    });
    return { kvs: [], more: false, count };
  }

  // Key order (ascending or descending) streams straight from the index; etcd treats
  // sortOrder 'none' as ascending by key.
  if (order === 'none' || target === 'key') {
    const reverse = order === 'descend';
    const kvs: KeyValue[] = [];
    let more = false;
    scan(range, reverse, (version) => {
      count++;
      if (filtered && !passes(query, version)) return true;
      if (limit > 0 && kvs.length >= limit) {
        more = true;
        return true; // keep counting: etcd's count covers the whole range
      }
      kvs.push(toKeyValue(version, keysOnly));
      return true;
    });
    return { kvs, more, count };
  }

  const matched: Version[] = [];
  scan(range, false, (version) => {
    count++;
    if (filtered && !passes(query, version)) return true;
    if (matched.length >= maxSortedKeys) {
      throw new StoreError(
        StoreErrorCode.InvalidArgument,
        `sorted range matches more than ${maxSortedKeys} keys; page by key instead`,
      );
    }
    matched.push(version);
    return true;
  });
  const compare = sortKey(target);
  // Ties keep key order (the scan order), since Array.prototype.sort is stable.
  matched.sort(order === 'descend' ? (a, b) => compare(b, a) : compare);
  const taken = limit > 0 ? matched.slice(0, limit) : matched;
  return {
    kvs: taken.map((version) => toKeyValue(version, keysOnly)),
    more: limit > 0 && matched.length > limit,
    count,
  };
}
