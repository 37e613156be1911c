/**
 * Types shared by the pure Raft core and the layers that persist and carry its output
 * (storage, transport, server). Nothing here does I/O.
 */

/** A server's identity in the Raft configuration (Consul's node ID, etcd's member ID as text). */
export type NodeId = string;

export const EntryType = {
  /** Application command; an empty `data` is the no-op a new leader appends (Raft §8). */
  Normal: 0,
  /** A single-server membership change (thesis §4.1). */
  ConfChange: 1,
} as const;
export type EntryType = (typeof EntryType)[keyof typeof EntryType];

export type ConfChangeType = 'addVoter' | 'addLearner' | 'promoteLearner' | 'removeNode';

/** One single-server configuration change. Context is opaque to Raft (the server puts addresses there). */
export interface ConfChange {
  type: ConfChangeType;
  node: NodeId;
  context?: Uint8Array;
}

export interface Entry {
  term: number;
  index: number;
  type: EntryType;
  /** Application payload for Normal entries; empty for the leader's no-op. */
  data: Uint8Array;
  /** The change this entry makes; absent on the bootstrap entry, which only carries `config`. */
  change?: ConfChange;
  /**
   * The whole configuration in force from this entry on (ConfChange entries only). Carrying
   * the result, not just the delta, lets any server take the latest configuration in its log
   * without replaying history, and makes truncation a matter of dropping entries (thesis §4.1).
   */
  config?: ConfigState;
}

/** The state Raft must persist before answering any message (Figure 2, "Persistent state"). */
export interface HardState {
  term: number;
  /** Candidate voted for in `term`, or '' for none. */
  vote: NodeId;
  /** Commit index; persisted so a restart does not re-apply from zero, never required for safety. */
  commit: number;
}

/** Voters and learners of one configuration. Sorted, disjoint. */
export interface ConfigState {
  voters: NodeId[];
  learners: NodeId[];
}

export interface SnapshotMeta {
  index: number;
  term: number;
  /** The configuration as of `index` (the latest ConfChange at or before it). */
  config: ConfigState;
}

export interface Snapshot {
  meta: SnapshotMeta;
  /**
   * The application's serialised state machine at `meta.index`, or `SNAPSHOT_DATA_ON_DISK`
   * once storage holds it durably and the node dropped its copy (`releaseSnapshotData`).
   */
  data: Uint8Array;
}

/**
 * Stands for a snapshot's data that only storage holds. A leader's snapshot message carries it
 * when the node released its copy; the shell reads the data back before sending (identity is
 * what counts: this one instance, never an empty snapshot's data).
 */
export const SNAPSHOT_DATA_ON_DISK: Uint8Array = new Uint8Array(0);

export const MessageType = {
  PreVote: 1,
  PreVoteResp: 2,
  Vote: 3,
  VoteResp: 4,
  App: 5,
  AppResp: 6,
  Heartbeat: 7,
  HeartbeatResp: 8,
  Snap: 9,
  TimeoutNow: 10,
  ReadIndex: 11,
  ReadIndexResp: 12,
} as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

/**
 * One Raft message. A flat shape (optional fields by type) keeps the wire encoding compact.
 *
 * - PreVote/Vote: `index`/`logTerm` = candidate's last log position; `transfer` set when
 *   the election was started by TimeoutNow (leader transfer bypasses the leader lease).
 * - App: `index`/`logTerm` = position before `entries`; `commit` = leader commit.
 * - AppResp: `index` = follower's last matching index (accept) or the rejected probe index;
 *   `rejectHint`/`logTerm` = where the leader should look next (fast backtracking).
 * - Heartbeat: `commit`, `readSeq` = ReadIndex round the heartbeat confirms.
 * - ReadIndex/ReadIndexResp: `context` = the reader's request id; `index` = read index.
 */
export interface Message {
  type: MessageType;
  from: NodeId;
  to: NodeId;
  term: number;
  index?: number;
  logTerm?: number;
  entries?: Entry[];
  commit?: number;
  reject?: boolean;
  rejectHint?: number;
  readSeq?: number;
  context?: string;
  snapshot?: Snapshot;
  transfer?: boolean;
  /**
   * App without entries sent only to carry the leader's commit index to a follower in
   * replicate state: the follower applies it and does not answer (the leader learns nothing
   * from the answer, and it was half of the messages of a lone write).
   */
  commitOnly?: boolean;
}

/** A confirmed ReadIndex: the reader may answer once its applied index reaches `index`. */
export interface ReadState {
  context: string;
  index: number;
}

/** A ReadIndex that could not be served (no leader, leadership lost, transfer under way). */
export interface ReadFailure {
  context: string;
  reason: 'no-leader' | 'not-leader' | 'dropped';
}

export type Role = 'follower' | 'pre-candidate' | 'candidate' | 'leader';

export interface SoftState {
  leader: NodeId;
  role: Role;
}

/**
 * The output of one round of the core. The shell must, in this order:
 *   1. persist `snapshot` (if any), then `entries` (truncating any stored suffix from
 *      entries[0].index) and `hardState` (if any) — durably, fsynced;
 *   2. only then send `messages` (a vote or an append acknowledgement must never be sent
 *      for state a crash could lose: Figure 2, "respond to RPCs only after updating stable storage");
 *   3. apply `snapshot` to the state machine, then `committedEntries` in order;
 *   4. call `advance(ready)`.
 * `messagesNow` are the leader's own traffic (appends, heartbeats, snapshots, TimeoutNow) and
 * forwarded ReadIndex requests: they promise nothing about this server's disk, so the shell
 * sends them at once, before persisting. The leader writes its log in parallel with its
 * followers (thesis §10.2.1) and counts itself toward commit only once its write is durable;
 * heartbeats never wait behind a slow fsync (etcd #13587).
 * `readStates` may be handed to waiting readers at any time; each is served once the
 * state machine has applied `index`.
 */
export interface Ready {
  softState?: SoftState;
  hardState?: HardState;
  snapshot?: Snapshot;
  entries: Entry[];
  committedEntries: Entry[];
  /** Send before persisting (see above). */
  messagesNow: Message[];
  /** Send only after persisting. */
  messages: Message[];
  readStates: ReadState[];
  readFailures: ReadFailure[];
}
