import type { NodeId } from '../raft/types.js';
import type { Command, Result } from '../store/index.js';
import { StoreError, type StoreErrorCode } from '../store/index.js';
import type { ServerInfo } from './directory.js';
import { RetryableError } from './raft-host.js';

/**
 * Requests servers make of each other outside Raft's own messages: discovery and join (from
 * servers not yet in the cluster), writes and membership changes forwarded to the leader.
 * Answers are plain data (msgpack over the peer transport); failures travel as codes, so a
 * retryable refusal on the leader stays retryable on the follower that forwarded it.
 */

/** A command as an API adapter builds it; the leader stamps the time when it proposes. */
export type CommandBody = Command extends infer C ? (C extends unknown ? Omit<C, 'timeMs'> : never) : never;

export type PeerRequest =
  /** `from`: the asking server, so discovery is mutual (as gossip would make it) while servers gather. */
  | { kind: 'discover'; from: ServerInfo }
  | { kind: 'join'; server: ServerInfo }
  | { kind: 'write'; command: CommandBody }
  | { kind: 'remove'; id: NodeId }
  | { kind: 'transfer'; id: NodeId }
  /** A client agent asking for the servers (it is not one, so it is never remembered as one). */
  | { kind: 'servers' }
  /**
   * A client agent's liveness (the stopgap for gossip, issue #8): forwarded to the leader, which
   * keeps the node's serfHealth check passing while heartbeats arrive; `leaving` deregisters it.
   */
  | { kind: 'clientHeartbeat'; node: ClientNode; leaving?: boolean };

export interface ClientNode {
  node: string;
  id: string;
  address: string;
}

export interface DiscoverAnswer {
  self: ServerInfo;
  clusterId: string;
  /** Its -bootstrap-expect (0 if none): servers bootstrap together only when they agree. */
  bootstrapExpect: number;
  /** True while it has no log and may still bootstrap. */
  pristine: boolean;
  /** Voters and learners of its latest configuration. */
  members: NodeId[];
  servers: ServerInfo[];
  leader: NodeId;
}

export type PeerAnswer<T> =
  /**
   * `applied`: on the answer to a forwarded write, an index the leader had applied when it
   * answered, at or past the write's entry; the follower applies that far before it answers its
   * own client. Absent from older leaders.
   */
  { ok: true; value: T; applied?: number } | { ok: false; error: WireError };

export type WireError =
  | { kind: 'retryable'; code: RetryableError['code']; message: string; leader: NodeId }
  | { kind: 'store'; code: StoreErrorCode; message: string; compactRevision?: number; opIndex?: number }
  | { kind: 'other'; message: string };

export function toWireError(err: unknown): WireError {
  if (err instanceof RetryableError)
    return { kind: 'retryable', code: err.code, message: err.message, leader: err.leader };
  if (err instanceof StoreError) {
    const w: WireError = { kind: 'store', code: err.code, message: err.message };
    if (err.compactRevision !== undefined) w.compactRevision = err.compactRevision;
    if (err.opIndex !== undefined) w.opIndex = err.opIndex;
    return w;
  }
  return { kind: 'other', message: err instanceof Error ? err.message : String(err) };
}

export function fromWireError(w: WireError): Error {
  switch (w.kind) {
    case 'retryable':
      return new RetryableError(w.code, w.message, w.leader);
    case 'store': {
      const extra: { compactRevision?: number; opIndex?: number } = {};
      if (w.compactRevision !== undefined) extra.compactRevision = w.compactRevision;
      if (w.opIndex !== undefined) extra.opIndex = w.opIndex;
      return new StoreError(w.code, w.message, extra);
    }
    default:
      return new Error(w.message);
  }
}

/** Results carry StoreError instances for client errors; on the wire they become codes. */
export function resultToWire(result: Result): unknown {
  return result.type === 'error' ? { ...result, error: toWireError(result.error) } : result;
}

export function resultFromWire(value: unknown): Result {
  const r = value as Result | (Omit<Extract<Result, { type: 'error' }>, 'error'> & { error: WireError });
  if (r.type === 'error') return { ...r, error: fromWireError(r.error as WireError) as StoreError };
  return r as Result;
}
