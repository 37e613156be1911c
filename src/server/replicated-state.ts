import { Packr } from 'msgpackr';
import { type Entry, EntryType } from '../raft/types.js';
import {
  decodeCommand,
  type Result,
  restore,
  Store,
  StoreError,
  type StoreOptions,
  snapshotChunks as storeSnapshotChunks,
} from '../store/index.js';
import { ServerDirectory, type ServerInfo } from './directory.js';
import type { StateMachine } from './raft-host.js';

/**
 * What the log is applied to: the store (every Normal entry with data is one encoded command)
 * and the server directory (ConfChange entries). A snapshot carries both.
 */

const packr = new Packr({ useRecords: false });
const SNAPSHOT_VERSION = 2;

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
    return Buffer.concat([...this.snapshotChunks()]);
  }

  /**
   * The snapshot as chunks: a length-prefixed header (format version and server directory),
   * then the store's own snapshot stream. Both are captured now, at this applied index, however
   * many entries are applied while the chunks are pulled (RaftHost saves it under that index).
   */
  snapshotChunks(): Generator<Uint8Array, void, undefined> {
    const header = packr.pack({ v: SNAPSHOT_VERSION, directory: this.directory.toJSON() });
    const length = Buffer.allocUnsafe(4);
    length.writeUInt32BE(header.byteLength, 0);
    const store = storeSnapshotChunks(this.current);
    return (function* () {
      try {
        yield length;
        yield header;
        yield* store;
      } finally {
        store.return();
      }
    })();
  }

  restore(data: Uint8Array): void {
    const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    if (bytes.length < 4) throw new Error('snapshot too short');
    const headerLength = bytes.readUInt32BE(0);
    if (4 + headerLength > bytes.length) throw new Error('snapshot header overruns the snapshot');
    const header = packr.unpack(bytes.subarray(4, 4 + headerLength)) as {
      v?: number;
      directory: { clusterId: string; servers: ServerInfo[] };
    };
    if (header?.v !== SNAPSHOT_VERSION) throw new Error(`unknown snapshot version ${String(header?.v)}`);
    const store = restore(bytes.subarray(4 + headerLength), this.storeOptions);
    this.directory.load(header.directory);
    this.current = store;
    this.onStoreReplaced?.(this.current);
  }
}
