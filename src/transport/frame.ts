import { constants } from 'node:buffer';
import { Packr } from 'msgpackr';
import { invariant } from '../raft/assert.js';
import type { Message } from '../raft/types.js';
import { decodeRaftMessage, encodeRaftMessage, fitsRaftCodec, RAFT_CODEC_MARKER } from './raft-codec.js';

/**
 * Length-prefixed frames: a 4-byte big-endian payload length, then a msgpack payload, or for
 * `{ t: 'raft', m }` a payload in the Raft message layout of ./raft-codec.ts.
 * Peer traffic is binary (DESIGN.md principle 4); the length prefix lets a reader reject an
 * oversized frame before buffering it.
 *
 * A message larger than one frame (a snapshot of a big store) travels as several: every frame
 * but the last has the top bit of its length word set, and the reader joins the pieces, up to
 * `maxMessageBytes`. So the frame limit bounds what a reader buffers before it can judge a
 * header, without bounding what the cluster can hold.
 */
export const FRAME_HEADER_BYTES = 4;
const MORE_FOLLOWS = 0x8000_0000;
/** Largest message by default: Node's largest Buffer. */
export const DEFAULT_MAX_MESSAGE_BYTES = constants.MAX_LENGTH;

const packr = new Packr({ useRecords: false, mapsAsObjects: true });

export class FrameTooLargeError extends Error {
  override name = 'FrameTooLargeError';
  constructor(
    readonly frameBytes: number,
    readonly maxFrameBytes: number,
  ) {
    super(`frame of ${frameBytes} bytes exceeds the limit of ${maxFrameBytes} bytes`);
  }
}

/** One message as bytes to write: one frame, or several when it exceeds `maxFrameBytes`. */
export function encodeFrame(
  value: unknown,
  maxFrameBytes: number,
  maxMessageBytes: number = DEFAULT_MAX_MESSAGE_BYTES,
): Buffer {
  invariant(maxFrameBytes > 0 && maxFrameBytes < MORE_FOLLOWS, 'frame limit out of range');
  const payload = encodePayload(value);
  if (payload.length > maxMessageBytes) throw new FrameTooLargeError(payload.length, maxMessageBytes);
  const pieces = Math.max(1, Math.ceil(payload.length / maxFrameBytes));
  const out = Buffer.allocUnsafe(pieces * FRAME_HEADER_BYTES + payload.length);
  let at = 0;
  for (let from = 0, piece = 1; piece <= pieces; piece++) {
    const length = Math.min(maxFrameBytes, payload.length - from);
    out.writeUInt32BE(piece < pieces ? MORE_FOLLOWS + length : length, at);
    payload.copy(out, at + FRAME_HEADER_BYTES, from, from + length);
    at += FRAME_HEADER_BYTES + length;
    from += length;
  }
  return out;
}

function encodePayload(value: unknown): Buffer {
  const raft = value as { t?: unknown; m?: Message };
  if (raft.t === 'raft' && raft.m && fitsRaftCodec(raft.m)) return encodeRaftMessage(raft.m);
  return packr.pack(value);
}

function decodePayload(payload: Buffer): unknown {
  return payload[0] === RAFT_CODEC_MARKER
    ? { t: 'raft', m: decodeRaftMessage(payload) }
    : packr.unpack(payload);
}

/** Reassembles messages from stream chunks; throws FrameTooLargeError on an oversized header. */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Pieces of a message split over several frames, and their total size. */
  private pieces: Buffer[] = [];
  private pieceBytes = 0;

  /**
   * `maxMessageBytes` may be raised later: a server reads a connection with one frame's worth
   * until the peer's hello proves it a member of the cluster (a stranger must not make it
   * buffer gigabytes).
   */
  constructor(
    private readonly maxFrameBytes: number,
    public maxMessageBytes: number = DEFAULT_MAX_MESSAGE_BYTES,
  ) {}

  /** Feed one chunk; returns every complete message's decoded value. */
  push(chunk: Buffer): unknown[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const out: unknown[] = [];
    for (;;) {
      if (this.buffered < FRAME_HEADER_BYTES) break;
      const word = this.peek(FRAME_HEADER_BYTES).readUInt32BE(0);
      const more = word >= MORE_FOLLOWS;
      const length = more ? word - MORE_FOLLOWS : word;
      if (length > this.maxFrameBytes) throw new FrameTooLargeError(length, this.maxFrameBytes);
      if (more && length === 0) throw new Error('an empty frame that says more follow');
      if (this.pieceBytes + length > this.maxMessageBytes) {
        throw new FrameTooLargeError(this.pieceBytes + length, this.maxMessageBytes);
      }
      if (this.buffered < FRAME_HEADER_BYTES + length) break;
      const payload = this.take(FRAME_HEADER_BYTES + length).subarray(FRAME_HEADER_BYTES);
      if (!more && this.pieces.length === 0) {
        out.push(decodePayload(payload));
        continue;
      }
      this.pieces.push(payload);
      this.pieceBytes += length;
      if (more) continue;
      const whole = Buffer.concat(this.pieces, this.pieceBytes);
      this.pieces = [];
      this.pieceBytes = 0;
      out.push(decodePayload(whole));
    }
    return out;
  }

  private peek(bytes: number): Buffer {
    if (this.chunks[0]!.length < bytes) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0]!.subarray(0, bytes);
  }

  private take(bytes: number): Buffer {
    if (this.chunks[0]!.length < bytes) this.chunks = [Buffer.concat(this.chunks)];
    const first = this.chunks[0]!;
    const frame = first.subarray(0, bytes);
    if (first.length === bytes) this.chunks.shift();
    else this.chunks[0] = first.subarray(bytes);
    this.buffered -= bytes;
    return frame;
  }
}
