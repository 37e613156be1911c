/**
 * Updates waiting to be piggybacked (SWIM §4.1, infection-style dissemination), shaped like
 * memberlist's TransmitLimitedQueue: one pending update per member (a newer one replaces the
 * older), least-transmitted first and newest first among equals, each sent at most `limit`
 * times. Bounded: at most one item per member name.
 */
import { invariant } from './assert.js';
import { updateSize } from './size.js';
import type { Update } from './types.js';

interface Item {
  update: Update;
  sizeBytes: number;
  transmits: number;
  /** Enqueue order: larger is newer. */
  id: number;
}

export class BroadcastQueue {
  private readonly items = new Map<string, Item>();
  private order: Item[] = [];
  private sorted = true;
  private nextId = 1;

  get length(): number {
    return this.items.size;
  }

  /** Queue `update`, replacing any pending update about the same member. */
  enqueue(update: Update): void {
    const old = this.items.get(update.name);
    if (old !== undefined) this.order.splice(this.order.indexOf(old), 1);
    const item: Item = { update, sizeBytes: updateSize(update), transmits: 0, id: this.nextId++ };
    this.items.set(update.name, item);
    // Newest with zero transmits sorts first: prepend keeps the order valid.
    this.order.unshift(item);
  }

  /** Whether an update about `name` is still being retransmitted. */
  pending(name: string): Update | undefined {
    return this.items.get(name)?.update;
  }

  /**
   * Updates whose encoded sizes sum to at most `budgetBytes` (the caller reserves the array
   * header), taking the
   * least-transmitted first; each taken one counts a transmission and is dropped at `limit`.
   */
  take(budgetBytes: number, limit: number, exclude?: string): Update[] {
    invariant(limit > 0, () => `retransmit limit must be positive: ${limit}`);
    if (this.order.length === 0 || budgetBytes <= 0) return [];
    if (!this.sorted) {
      this.order.sort((a, b) => a.transmits - b.transmits || b.id - a.id);
      this.sorted = true;
    }
    const taken: Update[] = [];
    let used = 0;
    const kept: Item[] = [];
    for (const item of this.order) {
      const fits = used + item.sizeBytes <= budgetBytes;
      if (!fits || item.update.name === exclude) {
        kept.push(item);
        continue;
      }
      taken.push(item.update);
      used += item.sizeBytes;
      item.transmits++;
      if (item.transmits >= limit) this.items.delete(item.update.name);
      else kept.push(item);
    }
    if (taken.length > 0) {
      this.order = kept;
      this.sorted = false;
    }
    invariant(this.order.length === this.items.size, 'broadcast queue index out of step');
    return taken;
  }

  /** Drop a pending update (e.g. about a member being reaped). */
  remove(name: string): void {
    const item = this.items.get(name);
    if (item === undefined) return;
    this.items.delete(name);
    this.order.splice(this.order.indexOf(item), 1);
  }
}
