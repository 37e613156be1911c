/** Test helpers: a store with a log-index counter and text keys. */
import { type Command, type Result, Store, type StoreOptions, text, utf8 } from '../../src/store/index.js';

export const b = utf8;
export const s = text;

type Body<C> = C extends unknown ? Omit<C, 'timeMs'> & { timeMs?: number } : never;
export type CommandBody = Body<Command>;

export class Harness {
  readonly store: Store;
  index = 0;
  nowMs = 1_000_000;
  readonly log: Command[] = [];

  constructor(options: StoreOptions = {}) {
    this.store = new Store(options);
  }

  apply(body: CommandBody): Result {
    const command = { timeMs: this.nowMs, ...body } as Command;
    this.log.push(command);
    return this.store.apply(++this.index, command);
  }

  /** Apply and assert success; returns the result narrowed by type. */
  ok<T extends Result['type']>(body: CommandBody, type?: T): Extract<Result, { type: T }> {
    const result = this.apply(body);
    if (result.type === 'error')
      throw new Error(`unexpected error ${result.error.code}: ${result.error.message}`);
    if (type !== undefined && result.type !== type) throw new Error(`expected ${type}, got ${result.type}`);
    return result as Extract<Result, { type: T }>;
  }

  put(key: string, value: string, extra: { lease?: number; prevKv?: boolean } = {}) {
    return this.ok({ type: 'put', key: b(key), value: b(value), ...extra }, 'put');
  }

  del(key: string, rangeEnd?: string) {
    return this.ok(
      { type: 'deleteRange', key: b(key), ...(rangeEnd === undefined ? {} : { rangeEnd: b(rangeEnd) }) },
      'deleteRange',
    );
  }

  value(key: string, revision = 0): string | null {
    const kv = this.store.get(b(key), revision);
    return kv ? s(kv.value) : null;
  }

  advance(ms: number): void {
    this.nowMs += ms;
  }
}

export function errorCode(result: Result): string | null {
  return result.type === 'error' ? result.error.code : null;
}
