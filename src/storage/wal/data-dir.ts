/**
 * The data directory's guards: `LOCK` (one server per directory) and `VERSION` (refuse a
 * format this build does not understand, rather than misread it).
 *
 * The lock is a PID file, as PostgreSQL's postmaster.pid: created with O_EXCL; a lock whose
 * process is gone is stale and taken over. Node has no flock(2), so two processes taking over
 * the same stale lock at the same instant could both succeed; servers are started by an
 * operator or supervisor, one at a time, which makes that race theoretical.
 */
import { open, readFile, rename, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { StorageLockedError, StorageVersionError } from '../errors.js';

export const dataFormatVersion = 1;
const versionPrefix = 'conclave-data';

/** Directories locked by this process: a LOCK holding our own PID is ours only if listed here. */
const lockedByThisProcess = new Set<string>();

export interface DataDirLock {
  release(): Promise<void>;
}

export async function acquireLock(dir: string): Promise<DataDirLock> {
  const lockPath = join(dir, 'LOCK');
  const key = resolve(dir);
  if (lockedByThisProcess.has(key)) throw new StorageLockedError(lockPath, process.pid);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const handle = await open(lockPath, 'wx');
      try {
        await handle.writeFile(`${process.pid}\n`);
        await handle.sync();
      } finally {
        await handle.close();
      }
      lockedByThisProcess.add(key);
      return {
        release: async () => {
          lockedByThisProcess.delete(key);
          const holder = await readLockPid(lockPath);
          if (holder === process.pid) await rm(lockPath, { force: true });
        },
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = await readLockPid(lockPath);
    // Our own PID in a lock we did not take is a previous incarnation (containers reuse PIDs).
    if (holder !== null && holder !== process.pid && isProcessAlive(holder)) {
      throw new StorageLockedError(lockPath, holder);
    }
    await rm(lockPath, { force: true });
  }
  throw new Error(`could not take the lock file ${lockPath}: it keeps reappearing`);
}

async function readLockPid(lockPath: string): Promise<number | null> {
  try {
    const pid = Number.parseInt((await readFile(lockPath, 'utf8')).trim(), 10);
    return Number.isSafeInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Check `VERSION`, writing it for a new directory. `hasData` says whether the directory already
 * holds WAL or snapshot files: data without a VERSION file is refused, not guessed at.
 */
export async function checkVersion(dir: string, hasData: boolean): Promise<void> {
  const versionPath = join(dir, 'VERSION');
  let text: string | null = null;
  try {
    text = await readFile(versionPath, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  if (text === null) {
    if (hasData) {
      throw new StorageVersionError(
        `data directory ${dir} holds data but no VERSION file; refusing to guess its format`,
      );
    }
    const temp = `${versionPath}.tmp`;
    const handle = await open(temp, 'w');
    try {
      await handle.writeFile(`${versionPrefix} ${dataFormatVersion}\n`);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, versionPath);
    return;
  }
  const match = /^conclave-data (\d+)\s*$/.exec(text);
  if (match === null)
    throw new StorageVersionError(`${versionPath} is not a Conclave VERSION file: '${text.trim()}'`);
  const version = Number(match[1]);
  if (version !== dataFormatVersion) {
    throw new StorageVersionError(
      `data directory ${dir} has format version ${version}; this build reads version ${dataFormatVersion}` +
        (version > dataFormatVersion
          ? ' (written by a newer Conclave: upgrade this server)'
          : ' (migrate it first)'),
    );
  }
}
