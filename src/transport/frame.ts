import { Packr } from 'msgpackr';

/**
 * Length-prefixed frames: a 4-byte big-endian payload length, then a msgpack payload.
 * Peer traffic is binary (DESIGN.md principle 4); the length prefix lets a reader reject an
 * oversized frame before buffering it.
 */
export const FRAME_HEADER_BYTES = 4;

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

export function encodeFrame(value: unknown, maxFrameBytes: number): Buffer {
  const payload = packr.pack(value);
  if (payload.length > maxFrameBytes) throw new FrameTooLargeError(payload.length, maxFrameBytes);
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  frame.writeUInt32BE(payload.length, 0);
  payload.copy(frame, FRAME_HEADER_BYTES);
  return frame;
}

/** Reassembles frames from stream chunks; throws FrameTooLargeError on an oversized header. */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;

  constructor(private readonly maxFrameBytes: number) {}

  /** Feed one chunk; returns every complete frame's decoded value. */
  push(chunk: Buffer): unknown[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const out: unknown[] = [];
    for (;;) {
      if (this.buffered < FRAME_HEADER_BYTES) break;
      const head = this.peek(FRAME_HEADER_BYTES);
      const length = head.readUInt32BE(0);
      if (length > this.maxFrameBytes) throw new FrameTooLargeError(length, this.maxFrameBytes);
      if (this.buffered < FRAME_HEADER_BYTES + length) break;
      const frame = this.take(FRAME_HEADER_BYTES + length);
      out.push(packr.unpack(frame.subarray(FRAME_HEADER_BYTES)));
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
