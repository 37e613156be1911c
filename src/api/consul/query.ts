import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ReadConsistency } from '../../server/server.js';
import { type ConsulFlags, consulFlags } from '../../store/index.js';
import { badRequest } from './errors.js';

/** Query-string helpers shared by the Consul endpoints. */

export type Query = Record<string, string | undefined>;

export function query(req: FastifyRequest): Query {
  return (req.query ?? {}) as Query;
}

/** Consul flags are present-or-absent (`?recurse`, `?stale`); a value of "false" does not unset them. */
export function flag(q: Query, name: string): boolean {
  return Object.hasOwn(q, name);
}

export function uintParam(q: Query, name: string): number | undefined {
  const raw = q[name];
  if (raw === undefined || raw === '') return undefined;
  if (!/^\d+$/.test(raw)) throw badRequest(`Invalid ${name} value: ${JSON.stringify(raw)}`);
  const n = Number(raw);
  if (!Number.isSafeInteger(n)) throw badRequest(`${name} out of range: ${raw}`);
  return n;
}

/** Consul's ?flags=: a uint64 (strconv.ParseUint), exact beyond 2^53. */
export function flagsParam(q: Query): ConsulFlags | undefined {
  const raw = q.flags;
  if (raw === undefined || raw === '') return undefined;
  if (!/^\d+$/.test(raw)) throw badRequest(`Invalid flags value: ${JSON.stringify(raw)}`);
  const flags = consulFlags(BigInt(raw));
  if (flags === undefined) throw badRequest(`flags out of range: ${raw}`);
  return flags;
}

export function consistency(q: Query): ReadConsistency {
  const stale = flag(q, 'stale');
  const consistent = flag(q, 'consistent');
  if (stale && consistent) throw badRequest('Cannot specify ?stale with ?consistent, conflicting semantics.');
  return stale ? 'stale' : consistent ? 'consistent' : 'default';
}

const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** A Go duration ("10s", "1m30s", "250ms"); a bare number is seconds, as Consul's ?wait= accepts. */
export function durationMs(raw: string, name: string): number {
  if (/^\d+$/.test(raw)) return Number(raw) * 1000;
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let consumed = 0;
  for (let m = re.exec(raw); m; m = re.exec(raw)) {
    total += Number(m[1]) * (UNIT_MS[m[2] as string] ?? 0);
    consumed = re.lastIndex;
  }
  if (consumed !== raw.length || raw.length === 0)
    throw badRequest(`Invalid ${name}: ${JSON.stringify(raw)}`);
  return total;
}

/** Blocking queries: Consul's default and longest wait, and its jitter fraction (agent/structs). */
export const DEFAULT_WAIT_MS = 5 * 60_000;
export const MAX_WAIT_MS = 10 * 60_000;
const WAIT_JITTER_FRACTION = 16;

/**
 * Consul's ?wait= (time.ParseDuration): a duration with units ("10s", "1m30s"); "0" is the one
 * bare number Go accepts. undefined when absent; 400 "Invalid wait time" otherwise, as Consul.
 */
export function waitParam(q: Query): number | undefined {
  const raw = q.wait;
  if (raw === undefined || raw === '') return undefined;
  const sign = raw.startsWith('-') ? -1 : 1;
  const unsigned = raw.replace(/^[+-]/, '');
  if (/^0+$/.test(unsigned)) return 0;
  if (/^[\d.]+$/.test(unsigned)) throw badRequest('Invalid wait time');
  try {
    return sign * durationMs(unsigned, 'wait');
  } catch {
    throw badRequest('Invalid wait time');
  }
}

/**
 * How long a blocking query waits: the requested time, or the default when none or not positive
 * (Consul treats wait=0 so), capped at the maximum, plus up to 1/16 more of jitter so watchers
 * that started together do not all return together. `random01` is in [0, 1).
 */
export function clampWait(requestedMs: number | undefined, random01: number): number {
  const base =
    requestedMs === undefined || !(requestedMs > 0) ? DEFAULT_WAIT_MS : Math.min(requestedMs, MAX_WAIT_MS);
  return base + random01 * (base / WAIT_JITTER_FRACTION);
}

export function setIndexHeaders(
  reply: FastifyReply,
  index: number,
  server: { leaderId(): string; lastContactMs(): number },
): void {
  // Consul never reports index 0: clients treat 0 as "no blocking" and would spin (agent/blocking.go).
  reply.header('X-Consul-Index', String(Math.max(1, index)));
  reply.header('X-Consul-KnownLeader', server.leaderId() !== '' ? 'true' : 'false');
  // How stale a follower's answer may be; 0 on the leader (and for reads after a read barrier).
  reply.header('X-Consul-LastContact', String(Math.max(0, server.lastContactMs())));
}

/** Every value of a repeatable parameter (`?tag=a&tag=b`). */
export function allParams(q: Query, name: string): string[] {
  const v = (q as Record<string, string | string[] | undefined>)[name];
  if (v === undefined) return [];
  return Array.isArray(v) ? v : [v];
}

/** Consul's `?node-meta=key:value` pairs (repeatable; every pair must match). */
export function nodeMetaParams(q: Query): [string, string][] {
  return allParams(q, 'node-meta').map((pair) => {
    const i = pair.indexOf(':');
    return i < 0 ? [pair, ''] : [pair.slice(0, i), pair.slice(i + 1)];
  });
}

export function matchesNodeMeta(meta: Record<string, string>, pairs: [string, string][]): boolean {
  return pairs.every(([k, v]) => meta[k] === v);
}
