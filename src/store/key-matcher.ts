/**
 * Subscriptions by exact key, by prefix and by arbitrary range, matched against written keys.
 * Exact keys and prefixes are hash lookups (one per distinct prefix length in use), so a write
 * only touches the subscriptions it can affect; arbitrary ranges fall back to a scan.
 */
import type { ByteString } from './bytes.js';
import { inRange, type KeyRange } from './kv-view.js';

export class KeyMatcher<T> {
  private readonly byKey = new Map<ByteString, Set<T>>();
  private readonly byPrefix = new Map<ByteString, Set<T>>();
  /** Distinct prefix lengths in use -> how many prefixes have that length. */
  private readonly prefixLengths = new Map<number, number>();
  private sortedLengths: number[] = [];
  private readonly ranges = new Map<T, KeyRange>();
  size = 0;

  addKey(key: ByteString, item: T): void {
    addTo(this.byKey, key, item);
    this.size++;
  }

  removeKey(key: ByteString, item: T): void {
    if (removeFrom(this.byKey, key, item)) this.size--;
  }

  addPrefix(prefix: ByteString, item: T): void {
    if (addTo(this.byPrefix, prefix, item)) {
      const count = this.prefixLengths.get(prefix.length) ?? 0;
      this.prefixLengths.set(prefix.length, count + 1);
      if (count === 0) this.sortedLengths = [...this.prefixLengths.keys()].sort((a, b) => a - b);
    }
    this.size++;
  }

  removePrefix(prefix: ByteString, item: T): void {
    if (!removeFrom(this.byPrefix, prefix, item)) return;
    this.size--;
    if (this.byPrefix.has(prefix)) return;
    const count = (this.prefixLengths.get(prefix.length) ?? 1) - 1;
    if (count === 0) {
      this.prefixLengths.delete(prefix.length);
      this.sortedLengths = [...this.prefixLengths.keys()].sort((a, b) => a - b);
    } else {
      this.prefixLengths.set(prefix.length, count);
    }
  }

  addRange(range: KeyRange, item: T): void {
    this.ranges.set(item, range);
    this.size++;
  }

  removeRange(item: T): void {
    if (this.ranges.delete(item)) this.size--;
  }

  /** Every subscription, once per registration. */
  forEach(visit: (item: T) => void): void {
    for (const set of this.byKey.values()) for (const item of set) visit(item);
    for (const set of this.byPrefix.values()) for (const item of set) visit(item);
    for (const item of this.ranges.keys()) visit(item);
  }

  /** Call `visit` for each subscription matching `key` (an item registered twice is visited twice). */
  match(key: ByteString, visit: (item: T) => void): void {
    const exact = this.byKey.get(key);
    if (exact !== undefined) for (const item of exact) visit(item);
    for (const length of this.sortedLengths) {
      if (length > key.length) break;
      const set = this.byPrefix.get(length === key.length ? key : key.slice(0, length));
      if (set !== undefined) for (const item of set) visit(item);
    }
    if (this.ranges.size > 0) {
      for (const [item, range] of this.ranges) if (inRange(range, key)) visit(item);
    }
  }
}

function addTo<T>(map: Map<ByteString, Set<T>>, key: ByteString, item: T): boolean {
  let set = map.get(key);
  const created = set === undefined;
  if (set === undefined) {
    set = new Set();
    map.set(key, set);
  }
  set.add(item);
  return created;
}

function removeFrom<T>(map: Map<ByteString, Set<T>>, key: ByteString, item: T): boolean {
  const set = map.get(key);
  if (set === undefined || !set.delete(item)) return false;
  if (set.size === 0) map.delete(key);
  return true;
}
