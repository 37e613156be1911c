import { createHash } from 'node:crypto';
import { Packr } from 'msgpackr';
import { type GrpcCall, Status, type StreamHandler } from '../../grpc/call.js';
import type { ServiceImplementation } from '../../grpc/server.js';
import { crc32 } from '../../store/crc32.js';
import { type Store, StoreError, StoreErrorCode, snapshot, stateHash } from '../../store/index.js';
import { findMember } from './cluster.js';
import { type EtcdContext, etcdError, header, int64, toEtcdError, unary } from './context.js';
import { memberIdOf } from './ids.js';

/**
 * etcd's Maintenance service: Status, Alarm, Snapshot, Defragment, Hash, HashKV, MoveLeader.
 *
 * - Alarm: the store's quota alarm is replicated state (every member holds the same), so GET
 *   lists NOSPACE once per member while it is on. It clears itself once stored bytes are back
 *   under 90% of the quota (delete keys, then compact), so DEACTIVATE has nothing to clear and
 *   deactivates nothing (an empty list; the alarm, if still on, stays on until usage drops).
 *   ACTIVATE is refused: only the store raises alarms.
 * - Snapshot streams the store's own snapshot format (snapshot.ts: self-checking, CRC-32
 *   trailer), not a bbolt file: etcdctl can save it, but `etcdctl snapshot status/restore`
 *   cannot read it; `snapshotFromFile` below gets the store snapshot back from a saved file.
 *   As etcd does, it streams 32 KiB blobs with remaining_bytes, then a last message whose blob
 *   is the SHA-256 of everything before it. The data is zero-padded to a multiple of 512 bytes
 *   (bbolt files are page-aligned), because etcdctl's save checks `size % 512 == 32` to find the
 *   digest. The snapshot is taken in memory at once (the store may not change while it is
 *   serialised), so it costs its size in memory while it streams.
 * - Defragment succeeds and does nothing: the store is in memory and the Raft log compacts
 *   itself behind snapshots, so there is no file with free pages to give back.
 * - Hash: CRC-32 of the whole store snapshot (KV with history, leases, sessions, catalog).
 * - HashKV: CRC-32 over every retained KV version with mod revision <= the revision, in key
 *   then revision order (as etcd hashes its retained revisions up to the requested one); the
 *   same on every member at the same revision and compaction. compact_revision is -1 before any
 *   compaction, as etcd reports it.
 * - MoveLeader hands leadership to a voter; unlike etcd it may be sent to any member (it is
 *   forwarded to the leader) instead of failing with "etcdserver: not leader".
 */

// biome-ignore lint/suspicious/noExplicitAny: decoded protobuf messages.
type Msg = any;

const SNAPSHOT_CHUNK_BYTES = 32 * 1024;
const SNAPSHOT_ALIGN_BYTES = 512;
const SHA256_BYTES = 32;
/** etcd's AlarmType.NOSPACE. */
const ALARM_NOSPACE = 1;

/** etcd's Maintenance service: Status. */
export function status(ctx: EtcdContext): Msg {
  const { server } = ctx;
  const s = server.raftStatus();
  const store = server.store.status();
  const leader = server.leaderId();
  return {
    header: header(ctx),
    version: ctx.version,
    dbSize: String(store.storedBytes),
    dbSizeInUse: String(store.storedBytes),
    leader: leader ? memberIdOf(leader) : '0',
    raftIndex: String(s.commit),
    raftTerm: String(s.term),
    raftAppliedIndex: String(s.applied),
    errors: store.quotaAlarm ? ['memberID:' + memberIdOf(server.id) + ' alarm:NOSPACE '] : [],
    isLearner: s.config.learners.includes(server.id),
  };
}

function alarmAction(raw: unknown): 'GET' | 'ACTIVATE' | 'DEACTIVATE' {
  const v = String(raw ?? 'GET').toUpperCase();
  if (v === 'GET' || v === '0') return 'GET';
  if (v === 'ACTIVATE' || v === '1') return 'ACTIVATE';
  if (v === 'DEACTIVATE' || v === '2') return 'DEACTIVATE';
  throw etcdError(Status.INVALID_ARGUMENT, `etcdserver: unknown alarm action ${String(raw)}`);
}

const alarmType = (raw: unknown): number => {
  const v = String(raw ?? 'NONE').toUpperCase();
  return v === 'NOSPACE' || v === '1' ? 1 : v === 'CORRUPT' || v === '2' ? 2 : 0;
};

export async function alarm(ctx: EtcdContext, r: Msg): Promise<Msg> {
  const action = alarmAction(r.action);
  if (action === 'ACTIVATE')
    throw etcdError(
      Status.UNIMPLEMENTED,
      'etcdserver: alarms are raised by the store itself (NOSPACE when the quota is exceeded); they cannot be activated by request',
    );
  if (action === 'DEACTIVATE') return { header: header(ctx), alarms: [] };
  const wantedType = alarmType(r.alarm);
  const wantedMember = String(r.memberID ?? '0');
  const on = ctx.server.store.status().quotaAlarm && (wantedType === 0 || wantedType === ALARM_NOSPACE);
  const alarms = on
    ? ctx.server
        .raftConfiguration()
        .servers.map((s) => memberIdOf(s.id))
        .filter((id) => wantedMember === '0' || id === wantedMember)
        .map((memberID) => ({ memberID, alarm: ALARM_NOSPACE }))
    : [];
  return { header: header(ctx), alarms };
}

/** The snapshot as etcd's Snapshot stream sends it: padded data, then its SHA-256. */
export function snapshotStream(store: Store): { data: Buffer; digest: Buffer } {
  const raw = snapshot(store);
  const padded = Math.ceil(raw.byteLength / SNAPSHOT_ALIGN_BYTES) * SNAPSHOT_ALIGN_BYTES;
  const data = Buffer.alloc(padded);
  data.set(raw, 0);
  return { data, digest: createHash('sha256').update(data).digest() };
}

const MAGIC = Buffer.from('CONCLAVE-STORE-SNAPSHOT\u0001', 'latin1');
const packr = new Packr({ useRecords: false });

/**
 * The store snapshot inside a file saved from the Snapshot stream (e.g. `etcdctl snapshot
 * save`): checks the trailing SHA-256, then walks the snapshot's frames to its end, dropping
 * the padding. Feed the result to the store's restore().
 */
export function snapshotFromFile(file: Uint8Array): Uint8Array {
  const bytes = Buffer.from(file.buffer, file.byteOffset, file.byteLength);
  const corrupt = (why: string) => new StoreError(StoreErrorCode.CorruptSnapshot, `snapshot file: ${why}`);
  if (bytes.length < SHA256_BYTES + MAGIC.length) throw corrupt('too short');
  const data = bytes.subarray(0, bytes.length - SHA256_BYTES);
  const digest = createHash('sha256').update(data).digest();
  if (!digest.equals(bytes.subarray(bytes.length - SHA256_BYTES))) throw corrupt('SHA-256 mismatch');
  if (!data.subarray(0, MAGIC.length).equals(MAGIC)) throw corrupt('not a Conclave store snapshot');
  let offset = MAGIC.length;
  while (offset + 4 <= data.length) {
    const length = data.readUInt32BE(offset);
    const end = offset + 4 + length;
    if (end + 4 > data.length) break;
    const [section] = packr.unpack(data.subarray(offset + 4, end)) as [unknown];
    offset = end;
    if (section === 'end') return data.subarray(0, offset + 4);
  }
  throw corrupt('no end frame');
}

/** Wait for a full stream buffer to drain, or for the client to go away (no drain then). */
function drainedOrCancelled(call: GrpcCall): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      call.off('drain', done);
      call.off('cancelled', done);
      resolve();
    };
    call.once('drain', done);
    call.once('cancelled', done);
  });
}

function snapshotHandler(ctx: EtcdContext): StreamHandler {
  return (call) => {
    void (async () => {
      const { data, digest } = snapshotStream(ctx.server.store);
      const first = header(ctx);
      for (let sent = 0; sent < data.length; ) {
        if (call.cancelled) return;
        const blob = data.subarray(sent, Math.min(data.length, sent + SNAPSHOT_CHUNK_BYTES));
        sent += blob.length;
        const message: Msg = { remaining_bytes: String(data.length - sent), blob };
        if (sent === blob.length) message.header = first;
        if (!call.write(message)) await drainedOrCancelled(call);
      }
      if (call.cancelled) return;
      call.write({ remaining_bytes: '0', blob: digest });
      call.end();
    })().catch((err: unknown) => call.emit('error', toEtcdError(err)));
  };
}

/** CRC-32 of every retained KV version with mod revision <= `revision`. */
export function hashKv(store: Store, revision: number): number {
  let crc = 0;
  const fields = Buffer.alloc(6 * 8 + 1);
  for (const versions of store.internals().mvcc.allHistories()) {
    for (const v of versions) {
      if (v.modRevision > revision) break;
      const key = Buffer.from(v.key, 'latin1');
      const value = Buffer.from(v.value, 'latin1');
      fields.writeDoubleBE(key.length, 0);
      fields.writeDoubleBE(v.createRevision, 8);
      fields.writeDoubleBE(v.modRevision, 16);
      fields.writeDoubleBE(v.version, 24);
      fields.writeDoubleBE(v.lease, 32);
      fields.writeDoubleBE(value.length, 40);
      fields.writeUInt8(v.live ? 1 : 0, 48);
      crc = crc32(fields, crc);
      crc = crc32(key, crc);
      crc = crc32(value, crc);
    }
  }
  return crc;
}

export async function hashKV(ctx: EtcdContext, r: Msg): Promise<Msg> {
  const store = ctx.server.store;
  const requested = int64(r.revision, 'revision');
  const revision = requested > 0 ? requested : store.revision;
  if (revision > store.revision)
    throw toEtcdError(
      new StoreError(StoreErrorCode.FutureRevision, 'required revision is a future revision'),
    );
  if (revision < store.compactRevision)
    throw toEtcdError(new StoreError(StoreErrorCode.Compacted, 'required revision has been compacted'));
  return {
    header: header(ctx),
    hash: hashKv(store, revision),
    compact_revision: String(store.compactRevision > 0 ? store.compactRevision : -1),
  };
}

export async function moveLeader(ctx: EtcdContext, r: Msg): Promise<Msg> {
  const target = findMember(ctx, r.targetID);
  if (!target?.voter) throw etcdError(Status.FAILED_PRECONDITION, 'etcdserver: bad leader transferee');
  if (ctx.server.leaderId() !== target.id) await ctx.server.transferLeadership(target.id);
  return { header: header(ctx) };
}

export function maintenanceService(ctx: EtcdContext): ServiceImplementation {
  return {
    Status: unary(async () => status(ctx)),
    Alarm: unary((r: Msg) => alarm(ctx, r)),
    Snapshot: snapshotHandler(ctx),
    Defragment: unary(async () => ({ header: header(ctx) })),
    Hash: unary(async () => ({ header: header(ctx), hash: stateHash(ctx.server.store) })),
    HashKV: unary((r: Msg) => hashKV(ctx, r)),
    MoveLeader: unary((r: Msg) => moveLeader(ctx, r)),
  };
}
