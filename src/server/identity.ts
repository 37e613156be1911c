import { randomUUID } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The small files a server keeps beside its log: `node-id` (a UUID made on first start and kept
 * for life, as Consul does) and `cluster-id` (written when the server bootstraps or joins, so a
 * restart before any log entry arrives still trusts its cluster's traffic).
 */

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function loadOrCreateNodeId(dataDir: string, wanted?: string): string {
  const existing = readText(join(dataDir, 'node-id'));
  if (existing !== null) {
    if (!UUID.test(existing)) throw new Error(`${join(dataDir, 'node-id')} does not hold a UUID`);
    if (wanted && wanted !== existing)
      throw new Error(`node id ${wanted} does not match ${existing} recorded in the data directory`);
    return existing;
  }
  const id = wanted ?? randomUUID();
  if (!UUID.test(id)) throw new Error(`node id ${id} is not a UUID`);
  writeDurably(dataDir, 'node-id', id);
  return id;
}

export function loadClusterId(dataDir: string): string {
  return readText(join(dataDir, 'cluster-id')) ?? '';
}

export function saveClusterId(dataDir: string, clusterId: string): void {
  writeDurably(dataDir, 'cluster-id', clusterId);
}

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** Write, fsync, rename, fsync the directory: the file is either the old one or the new one. */
function writeDurably(dir: string, name: string, text: string): void {
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, `${name}.tmp`);
  writeFileSync(tmp, `${text}\n`);
  const fd = openSync(tmp, 'r+');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, join(dir, name));
  const dfd = openSync(dir, 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}
