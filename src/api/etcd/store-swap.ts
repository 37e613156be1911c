import type { ConclaveServer } from '../../server/server.js';
import type { Store } from '../../store/index.js';

/**
 * Tell API adapters when a snapshot install replaced a server's store object, so watchers on
 * the old one are moved (or canceled) instead of silently going quiet. ReplicatedState has one
 * `onStoreReplaced` slot; we chain onto whatever handler is already there, and a slow poll
 * catches a replacement even if someone later overwrites the slot.
 */

type Listener = (store: Store) => void;

const POLL_MS = 1000;

class StoreSwapWatch {
  private store: Store;
  readonly listeners = new Set<Listener>();
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly server: ConclaveServer) {
    this.store = server.store;
    const state = server.state;
    const previous = state.onStoreReplaced;
    state.onStoreReplaced = (store) => {
      previous?.(store);
      this.check();
    };
  }

  /** Fire the listeners once per store object change (from the hook or the poll). */
  check(): void {
    const current = this.server.store;
    if (current === this.store) return;
    this.store = current;
    for (const listener of [...this.listeners]) listener(current);
  }

  add(listener: Listener): () => void {
    this.listeners.add(listener);
    if (!this.timer) {
      this.timer = setInterval(() => this.check(), POLL_MS);
      this.timer.unref();
    }
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0 && this.timer) {
        clearInterval(this.timer);
        this.timer = null;
      }
    };
  }
}

const watches = new WeakMap<ConclaveServer, StoreSwapWatch>();

/** Call `listener(newStore)` whenever `server`'s store object is replaced; returns an unsubscribe. */
export function onStoreSwap(server: ConclaveServer, listener: Listener): () => void {
  let watch = watches.get(server);
  if (!watch) {
    watch = new StoreSwapWatch(server);
    watches.set(server, watch);
  }
  return watch.add(listener);
}
