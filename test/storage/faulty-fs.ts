/** An FsOps shim that injects write and sync failures, for ENOSPC/EIO tests. */
import { type DsyncFile, type FsOps, nodeFsOps, type WalFile } from '../../src/storage/wal/fs-ops.js';

export interface FaultPlan {
  /** Writes fail once this many bytes were written through the shim (a short write first, like a full disk). */
  failWritesAfterBytes?: number;
  /** The nth fdatasync/fsync (1-based) and every later one fail. */
  failSyncFrom?: number;
  /** Error code of injected failures. */
  code?: string;
}

export class FaultyFs implements FsOps {
  writtenBytes = 0;
  syncs = 0;
  constructor(private readonly plan: FaultPlan) {}

  arm(plan: FaultPlan): void {
    Object.assign(this.plan, plan);
  }

  private error(op: string): NodeJS.ErrnoException {
    const code = this.plan.code ?? 'ENOSPC';
    const error: NodeJS.ErrnoException = new Error(`${code}: injected failure, ${op}`);
    error.code = code;
    return error;
  }

  async open(path: string, flags: 'r+' | 'wx' | 'w'): Promise<WalFile> {
    const file = await nodeFsOps.open(path, flags);
    return {
      write: async (buffer, offset, length, position) => {
        const limit = this.plan.failWritesAfterBytes;
        if (limit !== undefined && this.writtenBytes + length > limit) {
          const room = Math.max(0, limit - this.writtenBytes);
          if (room === 0) throw this.error('write');
          // A full disk first accepts what fits.
          const result = await file.write(buffer, offset, room, position);
          this.writtenBytes += result.bytesWritten;
          return result;
        }
        const result = await file.write(buffer, offset, length, position);
        this.writtenBytes += result.bytesWritten;
        return result;
      },
      datasync: async () => {
        this.checkSync('fdatasync');
        await file.datasync();
      },
      sync: async () => {
        this.checkSync('fsync');
        await file.sync();
      },
      truncate: (lengthBytes) => file.truncate(lengthBytes),
      close: () => file.close(),
    };
  }

  /** An O_DSYNC write is a write and a sync at once: either fault plan applies to it. */
  async openDsync(path: string): Promise<DsyncFile> {
    const file = await nodeFsOps.openDsync!(path);
    return {
      writeDurable: async (bytes, position) => {
        const limit = this.plan.failWritesAfterBytes;
        if (limit !== undefined && this.writtenBytes + bytes.length > limit) {
          const room = Math.max(0, limit - this.writtenBytes);
          if (room > 0) await file.writeDurable(bytes.subarray(0, room), position);
          this.writtenBytes += room;
          throw this.error('write');
        }
        this.checkSync('O_DSYNC write');
        await file.writeDurable(bytes, position);
        this.writtenBytes += bytes.length;
      },
      close: () => file.close(),
    };
  }

  private checkSync(op: string): void {
    this.syncs++;
    if (this.plan.failSyncFrom !== undefined && this.syncs >= this.plan.failSyncFrom) throw this.error(op);
  }

  readFile = nodeFsOps.readFile;
  readdir = nodeFsOps.readdir;
  mkdir = nodeFsOps.mkdir;
  rename = nodeFsOps.rename;
  unlink = nodeFsOps.unlink;
  syncDir = nodeFsOps.syncDir;
}
