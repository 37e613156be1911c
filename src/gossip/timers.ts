/**
 * Named deadlines on the injected clock: setting a name again moves it, cancelling forgets it.
 * A binary heap with lazy deletion; `due` hands back the names whose time has come, earliest
 * first, so the core's timers fire in a deterministic order.
 */
import { invariant } from './assert.js';
import { MinHeap } from './min-heap.js';

interface Entry {
  dueMs: number;
  key: string;
  /** Insertion order, so equal deadlines fire in the order they were set. */
  seq: number;
}

export class Timers {
  private readonly heap = new MinHeap<Entry>(less);
  private readonly live = new Map<string, Entry>();
  private seq = 0;

  get size(): number {
    return this.live.size;
  }

  set(key: string, dueMs: number): void {
    invariant(Number.isFinite(dueMs), () => `timer '${key}' needs a finite deadline: ${dueMs}`);
    const entry: Entry = { dueMs, key, seq: this.seq++ };
    this.live.set(key, entry);
    this.heap.push(entry);
    // Stale entries are dropped lazily; rebuild if they come to dominate.
    if (this.heap.size > 64 && this.heap.size > 4 * this.live.size) this.rebuild();
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
    return this.heap.peek()?.dueMs ?? Number.POSITIVE_INFINITY;
  }

  /** Remove and return the earliest timer due at or before `nowMs`, or undefined. */
  popDue(nowMs: number): string | undefined {
    this.dropStale();
    const top = this.heap.peek();
    if (top === undefined || top.dueMs > nowMs) return undefined;
    this.heap.pop();
    this.live.delete(top.key);
    return top.key;
  }

  private dropStale(): void {
    for (;;) {
      const top = this.heap.peek();
      if (top === undefined || this.live.get(top.key) === top) return;
      this.heap.pop();
    }
  }

  private rebuild(): void {
    this.heap.reset([...this.live.values()]);
  }
}

function less(a: Entry, b: Entry): number {
  return a.dueMs - b.dueMs || a.seq - b.seq;
}
