import { Packr } from 'msgpackr';
import { type Entry, EntryType } from '../raft/types.js';
import {
  decodeCommand,
  type Result,
  restore,
  Store,
  StoreError,
  type StoreOptions,
  snapshot,
} from '../store/index.js';
import { ServerDirectory, type ServerInfo } from './directory.js';
import type { StateMachine } from './raft-host.js';

/**
 * What the log is applied to: the store (every Normal entry with data is one encoded command)
 * and the server directory (ConfChange entries). A snapshot carries both.
 */

const packr = new Packr({ useRecords: false });
const SNAPSHOT_VERSION = 1;

export class ReplicatedState implements StateMachine {
  private current: Store;
  readonly directory = new ServerDirectory();
  /** Called after a snapshot replaced the store, so adapters can drop watches on the old one. */
  onStoreReplaced: ((store: Store) => void) | null = null;

  constructor(private readonly storeOptions: StoreOptions = {}) {
    this.current = new Store(storeOptions);
  }

  get store(): Store {
    return this.current;
  }

  apply(entry: Entry): Result | null {
    if (entry.type === EntryType.ConfChange) {
      this.directory.observe(entry);
      return null;
    }
    if (entry.data.byteLength === 0) return null;
    // decodeCommand validates: a malformed command is an invariant failure of the writer, but
    // it is still applied identically everywhere (as an error result), so replicas never diverge.
    let command: ReturnType<typeof decodeCommand>;
    try {
      command = decodeCommand(entry.data);
    } catch (error) {
      if (!(error instanceof StoreError)) throw error;
      return { type: 'error', revision: this.current.revision, error };
    }
    return this.current.apply(entry.index, command);
  }

  snapshot(): Uint8Array {
    return packr.pack({
      v: SNAPSHOT_VERSION,
      directory: this.directory.toJSON(),
      store: snapshot(this.current),
    });
  }

  restore(data: Uint8Array): void {
    const v = packr.unpack(data) as {
      v: number;
      directory: { clusterId: string; servers: ServerInfo[] };
      store: Uint8Array;
    };
    if (v?.v !== SNAPSHOT_VERSION) throw new Error(`unknown snapshot version ${String(v?.v)}`);
    this.directory.load(v.directory);
    this.current = restore(v.store, this.storeOptions);
    this.onStoreReplaced?.(this.current);
  }
}
