/**
 * The file operations the WAL uses, behind an interface so tests can inject faults (ENOSPC,
 * EIO on fsync) without a special filesystem. The default is node's fs/promises: every call
 * runs on libuv's thread pool, so the event loop never blocks on the disk.
 */
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
  syncDir: async (path) => {
    const handle = await open(path, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  },
};
