/**
 * Updates waiting to be piggybacked (SWIM §4.1, infection-style dissemination), shaped like
 * memberlist's TransmitLimitedQueue: one pending update per member (a newer one replaces the
 * older), least-transmitted first and newest first among equals, each sent at most `limit`
 * times. A binary heap on (transmits, newest) with lazy deletion, so a take costs
 * O(taken · log n) however long the queue is. Unlike memberlist, which walks its whole queue
 * for anything that still fits, a take gives up after `MAX_MISFITS` candidates in a row that
 * do not fit (bounded work per packet). The queue holds at most one item per member name.
 */
import { invariant } from './assert.js';
import { MinHeap } from './min-heap.js';
import { updateSize } from './size.js';
import type { Update } from './types.js';

interface Item {
  update: Update;
  sizeBytes: number;
  transmits: number;
  /** Enqueue order: larger is newer. */
  id: number;
}

/** No update encodes smaller than this (map header, kind, name, incarnation). */
const MIN_UPDATE_BYTES = 32;
/** Candidates examined per take, taken or not. */
const MAX_SCANNED = 256;
/** A packet this close to full stops looking after this many misfits in a row. */
const MAX_MISFITS = 16;

export class BroadcastQueue {
  private readonly items = new Map<string, Item>();
  private readonly heap = new MinHeap<Item>(before);
  private nextId = 1;

  get length(): number {
    return this.items.size;
  }

  /** Queue `update`, replacing any pending update about the same member. */
  enqueue(update: Update): void {
    const item: Item = { update, sizeBytes: updateSize(update), transmits: 0, id: this.nextId++ };
    this.items.set(update.name, item);
    this.heap.push(item);
    // Replaced items stay in the heap until popped; rebuild when they dominate.
    if (this.heap.size > 64 && this.heap.size > 3 * this.items.size) {
      this.heap.reset([...this.items.values()]);
    }
  }

  /** The update about `name` still being retransmitted, if any. */
  pending(name: string): Update | undefined {
    return this.items.get(name)?.update;
  }

  /**
   * Append to `taken` updates whose encoded sizes sum to at most `budgetBytes` (the caller
   * reserves the array header), least-transmitted and newest first; each taken one counts a
   * transmission and is dropped at `limit`. Returns the bytes taken.
   */
  take(taken: Update[], budgetBytes: number, limit: number, exclude?: string): number {
    invariant(limit > 0, () => `retransmit limit must be positive: ${limit}`);
    const putBack: Item[] = [];
    let used = 0;
    let misfits = 0;
    for (
      let scanned = 0;
      scanned < MAX_SCANNED && misfits < MAX_MISFITS && budgetBytes - used >= MIN_UPDATE_BYTES;
    ) {
      const item = this.heap.pop();
      if (item === undefined) break;
      if (this.items.get(item.update.name) !== item) continue;
      scanned++;
      if (item.update.name === exclude || used + item.sizeBytes > budgetBytes) {
        if (item.update.name !== exclude) misfits++;
        putBack.push(item);
        continue;
      }
      misfits = 0;
      taken.push(item.update);
      used += item.sizeBytes;
      item.transmits++;
      if (item.transmits >= limit) this.items.delete(item.update.name);
      else putBack.push(item);
    }
    for (const item of putBack) this.heap.push(item);
    invariant(used <= budgetBytes, () => `took ${used} bytes of updates for a budget of ${budgetBytes}`);
    return used;
  }

  /** Drop a pending update (e.g. about a member being reaped). */
  remove(name: string): void {
    this.items.delete(name);
  }
}

/** Fewer transmissions first; among equals, the newest first. */
function before(a: Item, b: Item): number {
  return a.transmits - b.transmits || b.id - a.id;
}
