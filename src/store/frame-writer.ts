/**
 * A msgpack writer for the snapshot's bulk frames, straight into one buffer: no array of the
 * frame's items is built first (a third of a capture's garbage), and keys and values, which the
 * store holds as latin1 byte strings, go out as msgpack `bin` in one native copy each, where a
 * general encoder writes them as UTF-8 `str` (two bytes for every byte of 0x80 or more).
 *
 * What it writes decodes with msgpackr as msgpackr's own output would (numbers above 2^32 as
 * float64, bigints as 64-bit integers, so they come back as number and bigint respectively).
 */
import { invariant } from './errors.js';

const TWO_32 = 2 ** 32;
/**
 * Buffer's own latin1 writer, without `write`'s argument juggling (most keys are a few dozen
 * bytes, where that costs as much as the copy). Node has had it on Buffer.prototype throughout.
 */
const latin1Write = (
  Buffer.prototype as unknown as { latin1Write: (s: string, at: number, n: number) => number }
).latin1Write;
const TWO_63 = 2n ** 63n;

export class FrameWriter {
  private buffer: Buffer;
  private at = 0;

  constructor(initialBytes = 64 * 1024) {
    this.buffer = Buffer.allocUnsafe(initialBytes);
  }

  get length(): number {
    return this.at;
  }

  /** Make room for `bytes` more. */
  private room(bytes: number): void {
    if (this.at + bytes <= this.buffer.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.at + bytes));
    this.buffer.copy(grown, 0, 0, this.at);
    this.buffer = grown;
  }

  /** Reserve `bytes` to fill in later with `patchUint32`; returns their offset. */
  reserve(bytes: number): number {
    this.room(bytes);
    const offset = this.at;
    this.at += bytes;
    return offset;
  }

  /** A uint32 item whose value is filled in later with `patchUint32`; returns the offset. */
  uint32Item(): number {
    this.byte(0xce);
    return this.reserve(4);
  }

  patchUint32(offset: number, value: number): void {
    this.buffer.writeUInt32BE(value, offset);
  }

  byte(value: number): void {
    this.room(1);
    this.buffer[this.at++] = value;
  }

  /** An array header whose length is filled in later (array32); returns the offset to patch. */
  arrayHeader32(): number {
    this.byte(0xdd);
    return this.reserve(4);
  }

  fixArray(length: number): void {
    invariant(length < 16, 'a fixarray holds fewer than 16 items');
    this.byte(0x90 | length);
  }

  /** A short ASCII string (a section name). */
  fixString(text: string): void {
    invariant(text.length < 32, 'a fixstr holds fewer than 32 bytes');
    this.room(1 + text.length);
    this.buffer[this.at++] = 0xa0 | text.length;
    this.at += this.buffer.write(text, this.at, 'latin1');
  }

  /** A byte string (one byte per char) as msgpack bin. */
  bin(bytes: string): void {
    const n = bytes.length;
    this.room(5 + n);
    const b = this.buffer;
    if (n < 0x100) {
      b[this.at++] = 0xc4;
      b[this.at++] = n;
    } else if (n < 0x10000) {
      b[this.at++] = 0xc5;
      b.writeUInt16BE(n, this.at);
      this.at += 2;
    } else {
      b[this.at++] = 0xc6;
      b.writeUInt32BE(n, this.at);
      this.at += 4;
    }
    if (n > 0) this.at += latin1Write.call(b, bytes, this.at, n);
  }

  /** A safe integer, in the smallest msgpack form that decodes to the same number. */
  integer(value: number): void {
    invariant(Number.isSafeInteger(value), () => `${value} is not a safe integer`);
    this.room(9);
    const b = this.buffer;
    if (value >= 0) {
      if (value < 0x80) b[this.at++] = value;
      else if (value < 0x100) {
        b[this.at++] = 0xcc;
        b[this.at++] = value;
      } else if (value < 0x10000) {
        b[this.at++] = 0xcd;
        b.writeUInt16BE(value, this.at);
        this.at += 2;
      } else if (value < TWO_32) {
        b[this.at++] = 0xce;
        b.writeUInt32BE(value, this.at);
        this.at += 4;
      } else this.float64(value);
    } else if (value >= -32) b[this.at++] = value & 0xff;
    else if (value >= -0x80) {
      b[this.at++] = 0xd0;
      b.writeInt8(value, this.at++);
    } else if (value >= -0x8000) {
      b[this.at++] = 0xd1;
      b.writeInt16BE(value, this.at);
      this.at += 2;
    } else if (value >= -0x80000000) {
      b[this.at++] = 0xd2;
      b.writeInt32BE(value, this.at);
      this.at += 4;
    } else this.float64(value);
  }

  /** A number or a bigint (Consul's 64-bit flags); bigints come back as bigints. */
  numberOrBigint(value: number | bigint): void {
    if (typeof value === 'number') {
      this.integer(value);
      return;
    }
    this.room(9);
    if (value >= TWO_63) {
      this.buffer[this.at++] = 0xcf;
      this.buffer.writeBigUInt64BE(value, this.at);
    } else {
      this.buffer[this.at++] = 0xd3;
      this.buffer.writeBigInt64BE(value, this.at);
    }
    this.at += 8;
  }

  private float64(value: number): void {
    this.buffer[this.at++] = 0xcb;
    this.buffer.writeDoubleBE(value, this.at);
    this.at += 8;
  }

  /** Drop what was written (keeping the buffer). */
  reset(): void {
    this.at = 0;
  }

  /** The bytes written, copied out; the writer starts over (keeping its buffer). */
  take(): Buffer {
    const out = Buffer.allocUnsafe(this.at);
    this.buffer.copy(out, 0, 0, this.at);
    this.at = 0;
    return out;
  }
}
