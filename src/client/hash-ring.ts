import { type Hash32, sha256Hash32 } from './hash.js';

export interface HashRingOptions {
  /** Points per member on the ring; more points, more even load. Default 160 (as ketama). */
  virtualNodes?: number;
  hash?: Hash32;
}

const MAX_VIRTUAL_NODES = 10_000;

/**
 * A consistent-hash ring (Karger et al. 1997) with virtual nodes: each member owns the arcs
 * ending at its points; a key belongs to the first point at or after its hash, wrapping around.
 *
 * The ring depends only on the member set: points are ordered by (hash, member), so equal hashes
 * resolve the same way whatever the order of arrival. Hence removing a member moves exactly the
 * keys it owned, and adding one moves only keys to it.
 */
export class HashRing {
  readonly virtualNodes: number;
  readonly #hash: Hash32;
  /** Point hashes of each member, cached so a rebuild hashes only newcomers. */
  #pointsOf = new Map<string, Uint32Array>();
  #members: string[] = [];
  #points = new Uint32Array(0);
  /** #owners[i] indexes #members: the owner of #points[i]. */
  #owners = new Uint32Array(0);

  constructor(options: HashRingOptions = {}) {
    const virtualNodes = options.virtualNodes ?? 160;
    if (!Number.isInteger(virtualNodes) || virtualNodes < 1 || virtualNodes > MAX_VIRTUAL_NODES) {
      throw new RangeError(
        `'virtualNodes' must be an integer in [1, ${MAX_VIRTUAL_NODES}]: current value is ${virtualNodes}`,
      );
    }
    this.virtualNodes = virtualNodes;
    this.#hash = options.hash ?? sha256Hash32;
  }

  /** The members, sorted. */
  get members(): readonly string[] {
    return this.#members;
  }

  /** Replaces the member set (duplicates ignored). O(m·v·log(m·v)). */
  setMembers(members: Iterable<string>): void {
    const sorted = [...new Set(members)].sort();
    const pointsOf = new Map<string, Uint32Array>();
    for (const member of sorted) pointsOf.set(member, this.#pointsOf.get(member) ?? this.#pointsFor(member));
    this.#pointsOf = pointsOf;
    this.#members = sorted;

    const size = sorted.length * this.virtualNodes;
    const order = new Uint32Array(size);
    const hashes = new Uint32Array(size);
    const owners = new Uint32Array(size);
    sorted.forEach((member, m) => {
      const points = pointsOf.get(member)!;
      for (let v = 0; v < points.length; v++) {
        const i = m * this.virtualNodes + v;
        hashes[i] = points[v]!;
        owners[i] = m;
        order[i] = i;
      }
    });
    // Members are sorted, so owner index order is member order: ties on hash go to the lower member.
    order.sort((a, b) => hashes[a]! - hashes[b]! || owners[a]! - owners[b]!);
    this.#points = new Uint32Array(size);
    this.#owners = new Uint32Array(size);
    for (let i = 0; i < size; i++) {
      this.#points[i] = hashes[order[i]!]!;
      this.#owners[i] = owners[order[i]!]!;
    }
  }

  /** The member owning `key`, or undefined for an empty ring. */
  lookup(key: string): string | undefined {
    return this.lookupHash(this.#hash(key));
  }

  /** As lookup(), for a key already hashed with this ring's hash (benchmarks reuse hashes). */
  lookupHash(keyHash: number): string | undefined {
    const points = this.#points;
    if (points.length === 0) return undefined;
    // First point >= keyHash; past the last point, wrap to the first.
    let low = 0;
    let high = points.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (points[mid]! < keyHash) low = mid + 1;
      else high = mid;
    }
    return this.#members[this.#owners[low === points.length ? 0 : low]!];
  }

  #pointsFor(member: string): Uint32Array {
    const points = new Uint32Array(this.virtualNodes);
    for (let v = 0; v < this.virtualNodes; v++) points[v] = this.#hash(`${member}#${v}`);
    return points;
  }
}
