/**
 * Consul blocking queries: "tell me when the index of what I read moves past X". Waiters sit
 * on an exact key, a key prefix or a named topic (catalog tables, one service, sessions), so a
 * write wakes only the queries whose answer it can change (Consul #3911, #1244: storms from
 * table-wide indexes). The store never times out a waiter: the API layer owns timers and
 * cancels.
 */
import { type ByteString, toByteString } from './bytes.js';
import { StoreError, StoreErrorCode } from './errors.js';
import { KeyMatcher } from './key-matcher.js';

export type WaitTarget =
  | { kind: 'key'; key: Uint8Array }
  | { kind: 'prefix'; prefix: Uint8Array }
  | { kind: 'topic'; topic: string };

export type WaitCallback = (index: number) => void;

export type WaitResult = { ready: true; index: number } | { ready: false; cancel: () => void };

interface Waiter {
  callback: WaitCallback;
  afterIndex: number;
  done: boolean;
  cancel: () => void;
}

export class BlockingWaiters {
  private readonly kv = new KeyMatcher<Waiter>();
  private readonly topics = new Map<string, Set<Waiter>>();
  private readonly toWake = new Map<Waiter, number>();
  private readonly maxWaiters: number;
  private count = 0;

  constructor(maxWaiters: number) {
    this.maxWaiters = maxWaiters;
  }

  get size(): number {
    return this.count;
  }

  add(target: WaitTarget, afterIndex: number, callback: WaitCallback): () => void {
    if (this.count >= this.maxWaiters) {
      throw new StoreError(
        StoreErrorCode.TooManyWatchers,
        `too many blocking queries: limit is ${this.maxWaiters}`,
      );
    }
    const waiter: Waiter = { callback, afterIndex, done: false, cancel: () => {} };
    this.count++;
    let remove: () => void;
    if (target.kind === 'topic') {
      let set = this.topics.get(target.topic);
      if (set === undefined) {
        set = new Set();
        this.topics.set(target.topic, set);
      }
      set.add(waiter);
      remove = () => {
        const current = this.topics.get(target.topic);
        current?.delete(waiter);
        if (current?.size === 0) this.topics.delete(target.topic);
      };
    } else if (target.kind === 'key') {
      const key = toByteString(target.key);
      this.kv.addKey(key, waiter);
      remove = () => this.kv.removeKey(key, waiter);
    } else {
      const prefix = toByteString(target.prefix);
      this.kv.addPrefix(prefix, waiter);
      remove = () => this.kv.removePrefix(prefix, waiter);
    }
    const cancel = () => {
      if (waiter.done) return;
      waiter.done = true;
      this.count--;
      this.toWake.delete(waiter);
      remove();
    };
    waiter.cancel = cancel;
    return cancel;
  }

  /** KV writes committed at `index`. */
  keysChanged(versions: readonly { key: ByteString }[], index: number): void {
    if (this.kv.size === 0) return;
    for (const { key } of versions) this.kv.match(key, (waiter) => this.schedule(waiter, index));
  }

  topicChanged(topic: string, index: number): void {
    const set = this.topics.get(topic);
    if (set === undefined) return;
    for (const waiter of set) this.schedule(waiter, index);
  }

  /** Wake every KV waiter below `index` (compaction removed tombstones, raising the floor). */
  kvFloorRaised(index: number): void {
    if (this.kv.size === 0) return;
    // Rare (a compaction that dropped tombstones): a full pass over the KV waiters is fine.
    this.kv.forEach((waiter) => {
      if (waiter.afterIndex < index) this.schedule(waiter, index);
    });
  }

  private schedule(waiter: Waiter, index: number): void {
    if (waiter.done || index <= waiter.afterIndex) return;
    this.toWake.set(waiter, index);
  }

  /** Run callbacks gathered during an apply; each waiter fires once and is removed. */
  flush(): void {
    if (this.toWake.size === 0) return;
    const woken = [...this.toWake];
    this.toWake.clear();
    let failure: unknown;
    for (const [waiter, index] of woken) {
      waiter.cancel();
      try {
        waiter.callback(index);
      } catch (error) {
        failure ??= error;
      }
    }
    if (failure !== undefined) throw failure;
  }
}
