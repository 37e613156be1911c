/**
 * The file operations the WAL uses, behind an interface so tests can inject faults (ENOSPC,
 * EIO on fsync) without a special filesystem. The default is node's fs/promises: every call
 * runs on libuv's thread pool, so the event loop never blocks on the disk.
 */
import { close, constants, open as openFd, write } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';

export interface WalFile {
  write(
    buffer: Uint8Array,
    offset: number,
    length: number,
    position: number,
  ): Promise<{ bytesWritten: number }>;
  /** fdatasync: data plus the metadata needed to read it back (the size), not timestamps. */
  datasync(): Promise<void>;
  sync(): Promise<void>;
  truncate(lengthBytes: number): Promise<void>;
  close(): Promise<void>;
}

/** A file opened for durable overwrites (O_DSYNC): a write returns once its data is on disk. */
export interface DsyncFile {
  /** Write all of `bytes` at `position`, durably as write + fdatasync would be. */
  writeDurable(bytes: Uint8Array, position: number): Promise<void>;
  close(): Promise<void>;
}

export interface FsOps {
  /** `flags` as fs.open: 'r+' (existing), 'wx' (create, must not exist), 'w' (create or replace). */
  open(path: string, flags: 'r+' | 'wx' | 'w'): Promise<WalFile>;
  readFile(path: string): Promise<Buffer>;
  readdir(path: string): Promise<string[]>;
  mkdir(path: string): Promise<void>;
  rename(fromPath: string, toPath: string): Promise<void>;
  unlink(path: string): Promise<void>;
  /** fsync a directory so creations, renames and deletions in it are durable. */
  syncDir(path: string): Promise<void>;
  /**
   * Optional: open an existing file with O_DSYNC. The WAL overwrites preallocated blocks
   * through it, one thread-pool round trip per batch instead of two (write, then fdatasync),
   * which is most of a write's latency on a fast disk. Without it the WAL writes and fdatasyncs.
   */
  openDsync?(path: string): Promise<DsyncFile>;
}

export const nodeFsOps: FsOps = {
  open: (path, flags) => open(path, flags),
  readFile: (path) => readFile(path),
  readdir: (path) => readdir(path),
  mkdir: async (path) => {
    await mkdir(path, { recursive: true });
  },
  rename: (fromPath, toPath) => rename(fromPath, toPath),
  unlink: (path) => rm(path, { force: true }),
  openDsync: (path) =>
    new Promise((resolve, reject) =>
      openFd(path, constants.O_RDWR | constants.O_DSYNC, (err, fd) =>
        err ? reject(err) : resolve(dsyncFile(fd)),
      ),
    ),
  syncDir: async (path) => {
    const handle = await open(path, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  },
};

/** The callback API on a bare descriptor: no FileHandle promise machinery on the hot path. */
function dsyncFile(fd: number): DsyncFile {
  const writeAt = (bytes: Uint8Array, position: number, done: (err: Error | null) => void): void =>
    write(fd, bytes, 0, bytes.length, position, (err, written) => {
      if (err) done(err);
      else if (written === bytes.length) done(null);
      else if (written === 0) done(new Error('write made no progress'));
      else writeAt(bytes.subarray(written), position + written, done);
    });
  return {
    writeDurable: (bytes, position) =>
      new Promise((resolve, reject) => writeAt(bytes, position, (err) => (err ? reject(err) : resolve()))),
    close: () => new Promise((resolve, reject) => close(fd, (err) => (err ? reject(err) : resolve()))),
  };
}
