/**
 * Record payloads. Entries use a hand-rolled header so the entry's data is copied once into the
 * record on write and read back as a view without copying; the rare, small records use msgpackr.
 *
 * Entry payload:  u64 index | u64 term | u8 type | u32 change length | change (msgpack) | data
 *   change: [[type, node, context?] | null, [voters, learners] | null] on ConfChange entries
 *   (the change and the whole configuration it results in), absent on Normal entries.
 * HardState:      msgpack [term, vote, commit]
 * SnapshotMarker: msgpack [index, term, keptLog]
 * Truncate:       msgpack [fromIndex]
 */
import { pack, unpack } from 'msgpackr';
import {
  type ConfChange,
  type ConfChangeType,
  type ConfigState,
  type Entry,
  EntryType,
  type HardState,
} from '../../raft/types.js';
import {
  allocateRecord,
  encodeRecord,
  finishPayload,
  RecordType,
  readUint64,
  recordHeaderBytes,
  writeUint64,
} from './record.js';

const entryPrefixBytes = 8 + 8 + 1 + 4;
const confChangeTypes: readonly ConfChangeType[] = ['addVoter', 'addLearner', 'promoteLearner', 'removeNode'];

/** A payload that passed its checksum but does not decode: corruption or a bug, never a torn write. */
export class PayloadError extends Error {}

export interface SnapshotMarker {
  index: number;
  term: number;
  /** Whether the log after the snapshot was kept (Raft §7) or discarded. */
  keptLog: boolean;
}

export function encodeEntryRecord(entry: Entry): Buffer {
  const change =
    entry.change === undefined && entry.config === undefined
      ? null
      : pack([
          entry.change === undefined ? null : changeToWire(entry.change),
          entry.config === undefined ? null : [entry.config.voters, entry.config.learners],
        ]);
  const changeBytes = change === null ? 0 : change.byteLength;
  const record = allocateRecord(RecordType.Entry, entryPrefixBytes + changeBytes + entry.data.byteLength);
  let at = recordHeaderBytes;
  writeUint64(record, entry.index, at);
  writeUint64(record, entry.term, at + 8);
  record.writeUInt8(entry.type, at + 16);
  record.writeUInt32LE(changeBytes, at + 17);
  at += entryPrefixBytes;
  if (change !== null) {
    record.set(change, at);
    at += changeBytes;
  }
  record.set(entry.data, at);
  return finishPayload(record);
}

export function decodeEntry(payload: Buffer): Entry {
  if (payload.length < entryPrefixBytes)
    throw new PayloadError(`entry payload of ${payload.length} bytes is too short`);
  const index = readUint64(payload, 0);
  const term = readUint64(payload, 8);
  const type = payload.readUInt8(16);
  const changeBytes = payload.readUInt32LE(17);
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(term))
    throw new PayloadError('entry index or term overflows');
  if (type !== EntryType.Normal && type !== EntryType.ConfChange)
    throw new PayloadError(`unknown entry type ${type}`);
  if (entryPrefixBytes + changeBytes > payload.length)
    throw new PayloadError('entry change length overruns payload');
  const dataStart = entryPrefixBytes + changeBytes;
  // A plain Uint8Array view: same prototype as what callers saved, no copy.
  const data = new Uint8Array(payload.buffer, payload.byteOffset + dataStart, payload.length - dataStart);
  const entry: Entry = { index, term, type, data };
  if (changeBytes > 0) {
    const wire = unpackChecked(payload.subarray(entryPrefixBytes, dataStart));
    if (!Array.isArray(wire) || wire.length !== 2) throw new PayloadError('conf change section invalid');
    const [change, config] = wire as unknown[];
    if (change !== null) entry.change = changeFromWire(change);
    if (config !== null) entry.config = configFromWire(config);
  }
  return entry;
}

export function encodeHardStateRecord(hardState: HardState): Buffer {
  return encodeRecord(RecordType.HardState, pack([hardState.term, hardState.vote, hardState.commit]));
}

export function decodeHardState(payload: Buffer): HardState {
  const value = unpackChecked(payload);
  if (!Array.isArray(value) || value.length !== 3)
    throw new PayloadError('hard state is not a 3-element array');
  const [term, vote, commit] = value as unknown[];
  if (!isIndex(term) || typeof vote !== 'string' || !isIndex(commit))
    throw new PayloadError('hard state fields invalid');
  return { term, vote, commit };
}

export function encodeSnapshotMarkerRecord(marker: SnapshotMarker): Buffer {
  return encodeRecord(RecordType.SnapshotMarker, pack([marker.index, marker.term, marker.keptLog]));
}

export function decodeSnapshotMarker(payload: Buffer): SnapshotMarker {
  const value = unpackChecked(payload);
  if (!Array.isArray(value) || value.length !== 3)
    throw new PayloadError('snapshot marker is not a 3-element array');
  const [index, term, keptLog] = value as unknown[];
  if (!isIndex(index) || !isIndex(term) || typeof keptLog !== 'boolean') {
    throw new PayloadError('snapshot marker fields invalid');
  }
  return { index, term, keptLog };
}

export function encodeTruncateRecord(fromIndex: number): Buffer {
  return encodeRecord(RecordType.Truncate, pack([fromIndex]));
}

export function decodeTruncate(payload: Buffer): number {
  const value = unpackChecked(payload);
  if (!Array.isArray(value) || value.length !== 1 || !isIndex(value[0]) || value[0] < 1) {
    throw new PayloadError('truncate record invalid');
  }
  return value[0];
}

function isIndex(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function unpackChecked(bytes: Buffer): unknown {
  try {
    return unpack(bytes);
  } catch (error) {
    throw new PayloadError(`payload does not decode: ${(error as Error).message}`);
  }
}

function changeToWire(change: ConfChange): unknown[] {
  return change.context === undefined
    ? [change.type, change.node]
    : [change.type, change.node, change.context];
}

function configFromWire(value: unknown): ConfigState {
  const isIds = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');
  if (!Array.isArray(value) || value.length !== 2 || !isIds(value[0]) || !isIds(value[1]))
    throw new PayloadError('configuration invalid');
  return { voters: value[0], learners: value[1] };
}

function changeFromWire(value: unknown): ConfChange {
  if (!Array.isArray(value) || value.length < 2 || value.length > 3)
    throw new PayloadError('conf change invalid');
  const [type, node, context] = value as unknown[];
  if (!confChangeTypes.includes(type as ConfChangeType) || typeof node !== 'string') {
    throw new PayloadError('conf change fields invalid');
  }
  const change: ConfChange = { type: type as ConfChangeType, node };
  if (context !== undefined) {
    if (!(context instanceof Uint8Array)) throw new PayloadError('conf change context is not bytes');
    change.context = new Uint8Array(context);
  }
  return change;
}
