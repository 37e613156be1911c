/**
 * Snapshot and restore of the whole state: KV history back to the compact revision, leases and
 * sessions with their locks, lock-delays, catalog, topic indexes and counters.
 *
 * Format: magic, then frames of [u32 big-endian length][msgpack [section, data]], then an
 * 'end' frame, then the CRC-32 of every preceding byte. Every table is written in sorted
 * order, so two replicas that applied the same log produce byte-identical snapshots (and the
 * CRC doubles as the cross-member consistency hash, etcd #13766).
 *
 * Streaming: `snapshotChunks` yields bounded frames so the bytes can be written out as they
 * are produced. The snapshot is of the state when the first chunk is pulled; applies may go on
 * while the rest is pulled (the small tables are copied at once, the KV histories are read
 * through a copy-on-write `HistoryCapture`), and the bytes are the same as if they had not.
 */
import { Packr } from 'msgpackr';
import { fromByteString, toByteString } from './bytes.js';
import type { CatalogCheck, CatalogNode, CatalogService } from './catalog.js';
import { crc32 } from './crc32.js';
import { StoreError, StoreErrorCode, StoreInvariantError } from './errors.js';
import { FrameWriter } from './frame-writer.js';
import { Lease } from './leases.js';
import { type HistoryCapture, Version } from './mvcc.js';
import { Store, type StoreOptions } from './store.js';
import { type ConsulFlags, isConsulFlags, type LeaseBehavior } from './types.js';

const MAGIC = Buffer.from('CONCLAVE-STORE-SNAPSHOT\u0001', 'latin1');
const FORMAT = 1;
/**
 * Versions per 'kv' frame (a key's versions are never split): a frame is encoded in one go, so
 * this bounds how long one step of the capture holds the event loop, however long the keys'
 * histories. With 256-byte values, 256 versions take about half a millisecond; 4,096 took
 * 10-24 ms, which a 5 ms slice could not bound. The total is no slower (measured on 175,000
 * versions).
 */
const VERSIONS_PER_FRAME = 256;
/** A restored key must be a byte string (every char 0..255). */
function isByteString(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0xff) return false;
  return true;
}
const packr = new Packr({ useRecords: false });

/**
 * A version of the oldest 'kv' section. Its keys and values, like those of 'kvFlat' after it,
 * are msgpack strings of their byte strings (UTF-8 of chars 0..255); 'kvBin' writes them as bin.
 * Flags above 2^53 are bigints, which msgpack writes as 64-bit integers and reads back as bigints.
 */
type VersionTuple = [string, number, number, number, number, ConsulFlags, number, number];
type LeaseTuple = [
  number,
  number,
  number,
  number,
  LeaseBehavior,
  number,
  string,
  string[],
  string,
  number,
  [Uint8Array, number][],
];

interface Meta {
  format: number;
  revision: number;
  compactRevision: number;
  appliedIndex: number;
  timeMs: number;
  quotaAlarm: boolean;
  nextLeaseId: number;
  compactedTombstoneMax: number;
  topicIndexes: [string, number][];
  clock: [number[], number[]];
}

function frame(section: string, data: unknown): Uint8Array {
  const payload = packr.pack([section, data]);
  const out = Buffer.allocUnsafe(4 + payload.length);
  out.writeUInt32BE(payload.length, 0);
  out.set(payload, 4);
  return out;
}

/**
 * Stream the store's state as of this call, in chunks; the store may change while they are
 * pulled. The state is captured here, not at the first pull (a generator's body would only run
 * then), so the caller knows exactly which applied index the stream holds. Pull it to the end or
 * `return()` it: that ends the capture.
 */
export function snapshotChunks(
  store: Store,
  options: { versionsPerFrame?: number } = {},
): Generator<Uint8Array, void, undefined> {
  const internals = store.internals();
  const { counters } = internals;
  const revision = counters.revision;
  const meta: Meta = {
    format: FORMAT,
    revision,
    compactRevision: counters.compactRevision,
    appliedIndex: counters.appliedIndex,
    timeMs: counters.timeMs,
    quotaAlarm: counters.quotaAlarm,
    nextLeaseId: internals.leases.nextId,
    compactedTombstoneMax: internals.mvcc.compactedTombstoneMax,
    topicIndexes: [...internals.topicIndexes].sort((a, b) => (a[0] < b[0] ? -1 : 1)),
    clock: [[...internals.clock.revisions], [...internals.clock.times]],
  };
  const leases: LeaseTuple[] = internals.leases
    .sorted()
    .map((lease) => [
      lease.id,
      lease.ttlMs,
      lease.deadlineMs,
      lease.checkpointRemainingMs,
      lease.behavior,
      lease.lockDelayMs,
      lease.node,
      [...lease.checks],
      lease.name,
      lease.createRevision,
      [...lease.locks]
        .sort((a, b) => (a[0] < b[0] ? -1 : 1))
        .map(([key, token]): [Uint8Array, number] => [fromByteString(key), token]),
    ]);
  const lockDelays = internals.lockDelays
    .entries(counters.timeMs)
    .map(([key, until]): [Uint8Array, number] => [fromByteString(key), until]);
  // The small tables are encoded now, so later applies cannot reach into them.
  const tables = [
    frame('leases', leases),
    frame('lockDelays', lockDelays),
    frame('catalog', internals.catalog.dump()),
  ];
  const capture = internals.mvcc.beginCapture();
  return streamChunks(meta, tables, capture, revision, options.versionsPerFrame ?? VERSIONS_PER_FRAME);
}

function* streamChunks(
  meta: Meta,
  tables: Uint8Array[],
  capture: HistoryCapture,
  revision: number,
  versionsPerFrame: number,
): Generator<Uint8Array, void, undefined> {
  let crc = crc32(MAGIC);
  let frames = 0;
  const emit = (bytes: Uint8Array) => {
    crc = crc32(bytes, crc);
    frames++;
    return bytes;
  };
  try {
    yield MAGIC;
    yield emit(frame('meta', meta));
    yield* kvFrames(capture, revision, versionsPerFrame, emit);
  } finally {
    capture.end();
  }
  for (const table of tables) yield emit(table);
  yield emit(frame('end', { frames: frames + 1 }));
  const trailer = Buffer.allocUnsafe(4);
  trailer.writeUInt32BE(crc, 0);
  yield trailer;
}

/**
 * The 'kvBin' frames: every key's versions up to `revision`, about `versionsPerFrame` a frame.
 * A frame is msgpack ['kvBin', flat], where flat is key, version count, then VERSION_FIELDS per
 * version, for every key of the frame (one array per frame rather than three per key); keys and
 * values are msgpack bin. Written by `FrameWriter`, which builds no array of the items.
 */
function* kvFrames(
  capture: HistoryCapture,
  revision: number,
  versionsPerFrame: number,
  emit: (bytes: Uint8Array) => Uint8Array,
): Generator<Uint8Array, void, undefined> {
  const out = new FrameWriter();
  for (;;) {
    const lengthAt = out.reserve(4);
    out.fixArray(2);
    out.fixString('kvBin');
    const itemsAt = out.arrayHeader32();
    let items = 0;
    const visited = capture.visitBatch(versionsPerFrame, (key, history) => {
      const versions = history instanceof Version ? [history] : history;
      let count = 0;
      let countAt = -1;
      for (const version of versions) {
        if (version.modRevision > revision) break; // written after the snapshot started
        if (count === 0) {
          out.bin(key);
          countAt = out.uint32Item(); // patched once the versions are counted
        }
        out.bin(version.value);
        out.integer(version.createRevision);
        out.integer(version.modRevision);
        out.integer(version.version);
        out.integer(version.lease);
        out.numberOrBigint(version.flags);
        out.integer(version.lockIndex);
        out.integer(version.session);
        count++;
      }
      if (count > 0) {
        out.patchUint32(countAt, count);
        items += 2 + count * VERSION_FIELDS;
      }
      return count;
    });
    if (items > 0) {
      out.patchUint32(itemsAt, items);
      out.patchUint32(lengthAt, out.length - 4);
      yield emit(out.take());
    } else {
      out.reset();
    }
    if (visited === 0) return;
  }
}

const VERSION_FIELDS = 8;

function restoreFlatKv(
  data: unknown,
  mvcc: ReturnType<Store['internals']>['mvcc'],
  compactRevision: number,
): void {
  if (!Array.isArray(data)) throw corrupt('kv frame is not an array');
  let at = 0;
  while (at < data.length) {
    const key = byteStringItem(data[at], 'key');
    const count = data[at + 1];
    if (!Number.isSafeInteger(count) || count < 1 || at + 2 + count * VERSION_FIELDS > data.length)
      throw corrupt('bad version count');
    at += 2;
    const versions: Version[] = [];
    for (let i = 0; i < count; i++, at += VERSION_FIELDS) {
      const [bytes, create, mod, version, lease, flags, lockIndex, session] = data.slice(
        at,
        at + VERSION_FIELDS,
      );
      const value = byteStringItem(bytes, 'value');
      if (!isConsulFlags(flags)) throw corrupt('bad flags');
      versions.push(new Version(key, value, create, mod, version, lease, flags, lockIndex, session));
    }
    mvcc.restoreHistory(versions, compactRevision);
  }
}

/** A key or value of a flat kv frame: bin ('kvBin') or a str of a byte string ('kvFlat'). */
function byteStringItem(item: unknown, what: string): string {
  if (item instanceof Uint8Array) return toByteString(item);
  if (typeof item === 'string' && isByteString(item)) return item;
  throw corrupt(`bad ${what}`);
}

/** The whole snapshot as one buffer. */
export function snapshot(store: Store): Uint8Array {
  return Buffer.concat([...snapshotChunks(store)]);
}

/** CRC-32 of the snapshot: equal across replicas at the same applied index iff their state is. */
export function stateHash(store: Store): number {
  const bytes = snapshot(store);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).readUInt32BE(bytes.length - 4);
}

function corrupt(message: string): StoreError {
  return new StoreError(StoreErrorCode.CorruptSnapshot, `corrupt snapshot: ${message}`);
}

/** Rebuild a store from snapshot bytes (or chunks). Verifies magic, framing and checksum. */
export function restore(input: Uint8Array | Iterable<Uint8Array>, options: StoreOptions = {}): Store {
  const bytes =
    input instanceof Uint8Array
      ? Buffer.from(input.buffer, input.byteOffset, input.byteLength)
      : Buffer.concat([...input]);
  if (bytes.length < MAGIC.length + 4 || !bytes.subarray(0, MAGIC.length).equals(MAGIC))
    throw corrupt('bad magic');
  const expected = bytes.readUInt32BE(bytes.length - 4);
  if (crc32(bytes.subarray(0, bytes.length - 4)) !== expected) throw corrupt('checksum mismatch');

  const store = new Store(options);
  const internals = store.internals();
  let offset = MAGIC.length;
  let meta: Meta | undefined;
  let ended = false;
  let frames = 0;
  try {
    while (offset < bytes.length - 4) {
      if (ended) throw corrupt('data after end frame');
      const length = bytes.readUInt32BE(offset);
      offset += 4;
      if (offset + length > bytes.length - 4) throw corrupt('truncated frame');
      const [section, data] = packr.unpack(bytes.subarray(offset, offset + length)) as [string, unknown];
      offset += length;
      frames++;
      if (section !== 'meta' && meta === undefined) throw corrupt('first frame is not meta');
      switch (section) {
        case 'meta':
          meta = data as Meta;
          if (meta.format !== FORMAT) throw corrupt(`unknown format ${meta.format}`);
          break;
        case 'kvBin':
        case 'kvFlat': // written before kvBin: keys and values as msgpack str
          restoreFlatKv(data, internals.mvcc, meta!.compactRevision);
          break;
        case 'kv': // written before kvFlat
          for (const [key, tuples] of data as [string, VersionTuple[]][]) {
            if (typeof key !== 'string' || !isByteString(key)) throw corrupt('bad key');
            const versions = tuples.map(([value, create, mod, version, lease, flags, lockIndex, session]) => {
              if (typeof value !== 'string' || !isByteString(value)) throw corrupt('bad value');
              if (!isConsulFlags(flags)) throw corrupt('bad flags');
              return new Version(key, value, create, mod, version, lease, flags, lockIndex, session);
            });
            internals.mvcc.restoreHistory(versions, meta!.compactRevision);
          }
          break;
        case 'leases':
          for (const tuple of data as LeaseTuple[]) {
            const [
              id,
              ttlMs,
              deadlineMs,
              checkpoint,
              behavior,
              lockDelayMs,
              node,
              checks,
              name,
              createRevision,
              locks,
            ] = tuple;
            const lease = new Lease({
              id,
              ttlMs,
              deadlineMs,
              behavior,
              lockDelayMs,
              node,
              checks,
              name,
              createRevision,
            });
            lease.checkpointRemainingMs = checkpoint;
            for (const [key, token] of locks) lease.locks.set(toByteString(key), token);
            internals.leases.add(lease);
          }
          break;
        case 'lockDelays':
          for (const [key, until] of data as [Uint8Array, number][])
            internals.lockDelays.set(toByteString(key), until);
          break;
        case 'catalog':
          internals.catalog.load(
            data as { nodes: CatalogNode[]; services: CatalogService[]; checks: CatalogCheck[] },
          );
          break;
        case 'end':
          if ((data as { frames: number }).frames !== frames) throw corrupt('frame count mismatch');
          ended = true;
          break;
        default:
          throw corrupt(`unknown section ${String(section)}`);
      }
    }
    if (!ended || meta === undefined) throw corrupt('missing end frame');
    internals.mvcc.finishRestore();
    internals.mvcc.compactedTombstoneMax = meta.compactedTombstoneMax;
    internals.leases.nextId = meta.nextLeaseId;
    for (const [topic, index] of meta.topicIndexes) internals.topicIndexes.set(topic, index);
    internals.clock.revisions = meta.clock[0];
    internals.clock.times = meta.clock[1];
    store.loadCounters({
      revision: meta.revision,
      compactRevision: meta.compactRevision,
      appliedIndex: meta.appliedIndex,
      timeMs: meta.timeMs,
      quotaAlarm: meta.quotaAlarm,
    });
    store.checkInvariants();
  } catch (error) {
    if (error instanceof StoreError) throw error;
    if (error instanceof StoreInvariantError || error instanceof TypeError || error instanceof RangeError) {
      throw corrupt(error.message);
    }
    throw error;
  }
  return store;
}
