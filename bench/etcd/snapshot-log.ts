/**
 * Which Conclave servers were taking a snapshot during a step, from their logs (`--server-logs`):
 * a capture or save in the measured window is the usual cause of a step's tail latency.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface SnapshotDuringStep {
  server: string;
  bytes: number;
  captureMs: number;
  saveMs: number;
}

/** Snapshots whose capture or save overlapped [fromMs, toMs] (wall clock), per server log. */
export function snapshotsDuring(
  logDir: string,
  servers: readonly string[],
  fromMs: number,
  toMs: number,
): SnapshotDuringStep[] {
  const found: SnapshotDuringStep[] = [];
  for (const server of servers) {
    let text: string;
    try {
      text = readFileSync(join(logDir, `${server}.log`), 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      if (!line.includes('saved a snapshot')) continue;
      let entry: { time?: string; bytes?: number; captureMs?: number; saveMs?: number };
      try {
        entry = JSON.parse(line);
      } catch {
        continue;
      }
      const savedAt = Date.parse(entry.time ?? '');
      const captureMs = entry.captureMs ?? 0;
      const saveMs = entry.saveMs ?? 0;
      if (Number.isNaN(savedAt) || savedAt < fromMs || savedAt - saveMs - captureMs > toMs) continue;
      found.push({ server, bytes: entry.bytes ?? 0, captureMs, saveMs });
    }
  }
  return found;
}
