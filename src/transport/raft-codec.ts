import { EntryType, type Message, type MessageType } from '../raft/types.js';

/**
 * A fixed binary layout for the Raft messages that make up nearly all peer traffic (appends,
 * their acknowledgements, heartbeats, read-index rounds), instead of msgpack's self-describing
 * maps: on the leader, msgpack's field names and per-field dispatch were a fifth of the CPU of a
 * write. Messages it does not cover (snapshots, entries carrying a membership change) stay
 * msgpack; the marker byte 0xc1, which msgpack never uses, tells the two apart.
 *
 *   u8 0xc1 | u8 layout version (1) | u8 type | u16 LE field flags
 *   from, to: u16 LE length + UTF-8
 *   term, then each field its flag announces: f64 LE (index, logTerm, commit, rejectHint, readSeq)
 *   context: u16 LE length + UTF-8
 *   entries: u32 LE count, then per entry f64 term, f64 index, u8 type, u32 LE length, data
 *
 * Entry data are copied out of the frame into one buffer per message: the frame is a view of a
 * socket read that would otherwise stay alive as long as any of its entries does.
 */

export const RAFT_CODEC_MARKER = 0xc1;
const VERSION = 1;

const HAS_INDEX = 1 << 0;
const HAS_LOG_TERM = 1 << 1;
const HAS_COMMIT = 1 << 2;
const HAS_REJECT_HINT = 1 << 3;
const HAS_READ_SEQ = 1 << 4;
const HAS_CONTEXT = 1 << 5;
const HAS_ENTRIES = 1 << 6;
const REJECT = 1 << 7;
const TRANSFER = 1 << 8;
const COMMIT_ONLY = 1 << 9;
const KNOWN_FLAGS = (1 << 10) - 1;

const MAX_TYPE = 12;
const HEAD_BYTES = 5;
const ENTRY_HEAD_BYTES = 8 + 8 + 1 + 4;

/** True when `m` fits the layout (no snapshot, no membership entries). */
export function fitsRaftCodec(m: Message): boolean {
  if (m.snapshot !== undefined) return false;
  // Lengths are u16 of UTF-8 bytes: keep well inside them.
  if (m.from.length > 4096 || m.to.length > 4096 || (m.context?.length ?? 0) > 4096) return false;
  if (m.entries) {
    for (const e of m.entries) if (e.change !== undefined || e.config !== undefined) return false;
  }
  return true;
}

export function encodeRaftMessage(m: Message): Buffer {
  const from = Buffer.from(m.from, 'utf8');
  const to = Buffer.from(m.to, 'utf8');
  const context = m.context !== undefined ? Buffer.from(m.context, 'utf8') : null;
  let flags = 0;
  if (m.index !== undefined) flags |= HAS_INDEX;
  if (m.logTerm !== undefined) flags |= HAS_LOG_TERM;
  if (m.commit !== undefined) flags |= HAS_COMMIT;
  if (m.rejectHint !== undefined) flags |= HAS_REJECT_HINT;
  if (m.readSeq !== undefined) flags |= HAS_READ_SEQ;
  // term, and one f64 per numeric field present (the five flags above)
  let numbers = 1;
  for (let bit = HAS_INDEX; bit <= HAS_READ_SEQ; bit <<= 1) if (flags & bit) numbers++;
  if (context) flags |= HAS_CONTEXT;
  if (m.reject) flags |= REJECT;
  if (m.transfer) flags |= TRANSFER;
  if (m.commitOnly) flags |= COMMIT_ONLY;
  let size = HEAD_BYTES + 2 + from.length + 2 + to.length + 8 * numbers;
  if (context) size += 2 + context.length;
  const entries = m.entries;
  if (entries) {
    flags |= HAS_ENTRIES;
    size += 4;
    for (const e of entries) size += ENTRY_HEAD_BYTES + e.data.byteLength;
  }
  const out = Buffer.allocUnsafe(size);
  out[0] = RAFT_CODEC_MARKER;
  out[1] = VERSION;
  out[2] = m.type;
  out.writeUInt16LE(flags, 3);
  let at = HEAD_BYTES;
  at = writeBytes(out, at, from);
  at = writeBytes(out, at, to);
  at = out.writeDoubleLE(m.term, at);
  if (m.index !== undefined) at = out.writeDoubleLE(m.index, at);
  if (m.logTerm !== undefined) at = out.writeDoubleLE(m.logTerm, at);
  if (m.commit !== undefined) at = out.writeDoubleLE(m.commit, at);
  if (m.rejectHint !== undefined) at = out.writeDoubleLE(m.rejectHint, at);
  if (m.readSeq !== undefined) at = out.writeDoubleLE(m.readSeq, at);
  if (context) at = writeBytes(out, at, context);
  if (entries) {
    at = out.writeUInt32LE(entries.length, at);
    for (const e of entries) {
      at = out.writeDoubleLE(e.term, at);
      at = out.writeDoubleLE(e.index, at);
      out[at++] = e.type;
      at = out.writeUInt32LE(e.data.byteLength, at);
      out.set(e.data, at);
      at += e.data.byteLength;
    }
  }
  return out;
}

function writeBytes(out: Buffer, at: number, bytes: Buffer): number {
  out.writeUInt16LE(bytes.length, at);
  bytes.copy(out, at + 2);
  return at + 2 + bytes.length;
}

/** Decode a payload that starts with the marker; throws on anything malformed. */
export function decodeRaftMessage(payload: Buffer): Message {
  const reader = new Reader(payload);
  if (reader.u8() !== RAFT_CODEC_MARKER) throw new Error('raft codec: no marker');
  const version = reader.u8();
  if (version !== VERSION) throw new Error(`raft codec: unknown layout version ${version}`);
  const type = reader.u8();
  if (type < 1 || type > MAX_TYPE) throw new Error(`raft codec: unknown message type ${type}`);
  const flags = reader.u16();
  if ((flags & ~KNOWN_FLAGS) !== 0) throw new Error('raft codec: unknown flags');
  const m: Message = {
    type: type as MessageType,
    from: reader.text(),
    to: reader.text(),
    term: reader.whole(),
  };
  if (flags & HAS_INDEX) m.index = reader.whole();
  if (flags & HAS_LOG_TERM) m.logTerm = reader.whole();
  if (flags & HAS_COMMIT) m.commit = reader.whole();
  if (flags & HAS_REJECT_HINT) m.rejectHint = reader.whole();
  if (flags & HAS_READ_SEQ) m.readSeq = reader.whole();
  if (flags & HAS_CONTEXT) m.context = reader.text();
  if (flags & REJECT) m.reject = true;
  if (flags & TRANSFER) m.transfer = true;
  if (flags & COMMIT_ONLY) m.commitOnly = true;
  if (flags & HAS_ENTRIES) {
    const count = reader.u32();
    // Each entry takes at least its fixed head: a count the payload cannot hold is malformed.
    if (count * ENTRY_HEAD_BYTES > reader.remaining()) throw new Error('raft codec: entry count too large');
    const spans: [number, number][] = [];
    const heads: [number, number, number][] = [];
    let dataBytes = 0;
    for (let i = 0; i < count; i++) {
      const term = reader.whole();
      const index = reader.whole();
      const entryType = reader.u8();
      if (entryType !== EntryType.Normal) throw new Error('raft codec: membership entries travel as msgpack');
      const length = reader.u32();
      spans.push([reader.skip(length), length]);
      heads.push([term, index, entryType]);
      dataBytes += length;
    }
    const data = Buffer.allocUnsafe(dataBytes);
    let at = 0;
    m.entries = heads.map(([term, index, entryType], i) => {
      const [from, length] = spans[i]!;
      payload.copy(data, at, from, from + length);
      const entry = { term, index, type: entryType as EntryType, data: data.subarray(at, at + length) };
      at += length;
      return entry;
    });
  }
  if (reader.remaining() !== 0) throw new Error('raft codec: trailing bytes');
  return m;
}

class Reader {
  private at = 0;
  constructor(private readonly buf: Buffer) {}

  private need(bytes: number): number {
    const at = this.at;
    if (at + bytes > this.buf.length) throw new Error('raft codec: truncated message');
    this.at = at + bytes;
    return at;
  }

  remaining(): number {
    return this.buf.length - this.at;
  }

  u8(): number {
    return this.buf[this.need(1)]!;
  }

  u16(): number {
    return this.buf.readUInt16LE(this.need(2));
  }

  u32(): number {
    return this.buf.readUInt32LE(this.need(4));
  }

  /**
   * A term, index or counter: an f64 on the wire that must hold a whole number >= 0. One that
   * fits 31 bits is returned as a small integer (`| 0`): V8 reads a double as a boxed number,
   * and one boxed value stored in a Raft entry makes every entry's term and index fields boxed
   * (three more objects per entry kept in the log).
   */
  whole(): number {
    const value = this.buf.readDoubleLE(this.need(8));
    if (!Number.isSafeInteger(value) || value < 0) throw new Error('raft codec: not a whole number');
    return value <= 0x7fffffff ? value | 0 : value;
  }

  text(): string {
    const length = this.u16();
    const at = this.need(length);
    return this.buf.toString('utf8', at, at + length);
  }

  /** Step over `bytes`; returns where they start. */
  skip(bytes: number): number {
    return this.need(bytes);
  }
}
