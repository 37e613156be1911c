/**
 * Named deadlines on the injected clock: setting a name again moves it, cancelling forgets it.
 * A binary heap with lazy deletion; `due` hands back the names whose time has come, earliest
 * first, so the core's timers fire in a deterministic order.
 */
import { invariant } from './assert.js';

interface Entry {
  dueMs: number;
  key: string;
  /** Insertion order, so equal deadlines fire in the order they were set. */
  seq: number;
}

export class Timers {
  private heap: Entry[] = [];
  private readonly live = new Map<string, Entry>();
  private seq = 0;

  get size(): number {
    return this.live.size;
  }

  set(key: string, dueMs: number): void {
    invariant(Number.isFinite(dueMs), () => `timer '${key}' needs a finite deadline: ${dueMs}`);
    const entry: Entry = { dueMs, key, seq: this.seq++ };
    this.live.set(key, entry);
    this.push(entry);
    // Stale entries are dropped lazily; rebuild if they come to dominate.
    if (this.heap.length > 64 && this.heap.length > 4 * this.live.size) this.rebuild();
  }

  cancel(key: string): void {
    this.live.delete(key);
  }

  has(key: string): boolean {
    return this.live.has(key);
  }

  dueAt(key: string): number | undefined {
    return this.live.get(key)?.dueMs;
  }

  /** The earliest live deadline, or Infinity. */
  next(): number {
    this.dropStale();
    return this.heap[0]?.dueMs ?? Number.POSITIVE_INFINITY;
  }

  /** Remove and return the earliest timer due at or before `nowMs`, or undefined. */
  popDue(nowMs: number): string | undefined {
    this.dropStale();
    const top = this.heap[0];
    if (top === undefined || top.dueMs > nowMs) return undefined;
    this.pop();
    this.live.delete(top.key);
    return top.key;
  }

  private dropStale(): void {
    for (;;) {
      const top = this.heap[0];
      if (top === undefined || this.live.get(top.key) === top) return;
      this.pop();
    }
  }

  private rebuild(): void {
    this.heap = [...this.live.values()].sort(less);
  }

  private push(entry: Entry): void {
    const h = this.heap;
    h.push(entry);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (less(h[parent]!, h[i]!) <= 0) break;
      [h[i], h[parent]] = [h[parent]!, h[i]!];
      i = parent;
    }
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop();
    if (h.length === 0 || last === undefined) return;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && less(h[l]!, h[m]!) < 0) m = l;
      if (r < h.length && less(h[r]!, h[m]!) < 0) m = r;
      if (m === i) return;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
  }
}

function less(a: Entry, b: Entry): number {
  return a.dueMs - b.dueMs || a.seq - b.seq;
}
