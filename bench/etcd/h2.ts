import { connect, type Socket } from 'node:net';
import { frameMessage } from '../../src/grpc/call.js';
import {
  Flag,
  FrameType,
  frame,
  H2Error,
  MAX_WINDOW,
  PREFACE,
  rstStreamFrame,
  Setting,
  settingsFrame,
  windowUpdateFrame,
} from '../../src/grpc/frames.js';
import { HpackDecoder, literalField } from '../../src/grpc/hpack.js';

/**
 * A minimal gRPC-over-HTTP/2 client on a raw TCP socket, for the load generator's hot path.
 *
 * Why: on the 2-core machine this benchmark was written on, a @grpc/grpc-js unary call costs the
 * client 300-500 µs of CPU (and node:http2 ~110 µs) — more than an etcd member spends serving
 * it, so a grpc-js generator would measure itself. This client does only what a benchmark needs:
 * prior-knowledge HTTP/2 (no TLS), a header block encoded once per method (HPACK literals, no
 * dynamic table of ours), requests batched into one socket write per event-loop turn, a full
 * HPACK decoder (static and dynamic tables, Huffman) for the server's responses so that every
 * call gets its grpc-status and grpc-message, connection-level flow control both ways, and
 * unary calls plus bidirectional streams (Watch). No retries, no name resolution, no TLS. The
 * frame layout and the HPACK code are the server's own (src/grpc).
 */

export class GrpcError extends Error {
  override name = 'GrpcError';
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(`${code} ${GRPC_CODES[code] ?? 'UNKNOWN'}: ${message}`);
  }
}

const GRPC_CODES = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
];

const { DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION } = FrameType;
const { END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY } = Flag;

/** Received bytes after which a WINDOW_UPDATE gives them back. */
const REPLENISH_AT = 0x40000000;
const DEFAULT_TIMEOUT_MS = 30_000;

function requestHeaderBlock(authority: string, path: string): Buffer {
  return Buffer.from([
    0x83, // :method POST (static 3)
    0x86, // :scheme http (static 6)
    ...literalField(4, ':path', path),
    ...literalField(1, ':authority', authority),
    ...literalField(31, 'content-type', 'application/grpc'),
    ...literalField(0, 'te', 'trailers'),
    ...literalField(58, 'user-agent', 'conclave-bench-h2'),
  ]);
}

// ---- the connection

interface Stream {
  id: number;
  started: number;
  timeoutMs: number;
  /** unary: DATA payload chunks until the end */
  chunks: Buffer[] | null;
  /** streaming: partial gRPC message bytes */
  partial: Buffer | null;
  onMessage: ((m: Buffer) => void) | null;
  status: number | undefined;
  message: string;
  received: number;
  done: (err: Error | null, data: Buffer | null) => void;
}

export interface H2Stream {
  send(message: Buffer): void;
  /** RST_STREAM(CANCEL); the stream ends without calling its end callback */
  cancel(): void;
}

export class H2Channel {
  private socket: Socket | null = null;
  private readonly host: string;
  private readonly port: number;
  private nextId = 1;
  private readonly streams = new Map<number, Stream>();
  private readonly headerBlocks = new Map<string, Buffer>();
  private hpack = new HpackDecoder();
  private out: Buffer[] = [];
  private flushScheduled = false;
  /** DATA frames waiting for the server's connection window */
  private blocked: { stream: number; frame: Buffer; bytes: number }[] = [];
  private sendWindow = 65_535;
  private receivedSinceUpdate = 0;
  private inbox: Buffer | null = null;
  private headerParts: { stream: number; endStream: boolean; parts: Buffer[] } | null = null;
  private sweeper: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(readonly address: string) {
    const colon = address.lastIndexOf(':');
    this.host = address.slice(0, colon);
    this.port = Number(address.slice(colon + 1));
  }

  private connection(): void {
    if (this.socket) return;
    const socket = connect({ host: this.host, port: this.port, noDelay: true });
    this.socket = socket;
    this.hpack = new HpackDecoder();
    this.nextId = 1;
    this.sendWindow = 65_535;
    this.receivedSinceUpdate = 0;
    this.inbox = null;
    this.headerParts = null;
    const settings = settingsFrame([
      [Setting.ENABLE_PUSH, 0],
      [Setting.INITIAL_WINDOW_SIZE, MAX_WINDOW],
    ]);
    this.out.unshift(PREFACE, settings, windowUpdateFrame(0, MAX_WINDOW - 65_535));
    this.scheduleFlush();
    // A replaced connection's late events are ignored.
    socket.on('data', (chunk: Buffer) => {
      if (this.socket === socket) this.receive(chunk);
    });
    socket.on('error', (err) => {
      if (this.socket === socket) this.failAll(err);
    });
    socket.on('close', () => {
      if (this.socket === socket) this.failAll(new GrpcError(14, `connection to ${this.address} closed`));
    });
    this.sweeper ??= setInterval(() => this.sweep(), 1000);
    this.sweeper.unref();
  }

  private failAll(err: Error): void {
    this.socket?.destroy();
    this.socket = null;
    this.out = [];
    this.blocked = [];
    const streams = [...this.streams.values()];
    this.streams.clear();
    for (const s of streams) s.done(err, null);
  }

  private sweep(): void {
    const now = Date.now();
    for (const s of this.streams.values()) {
      if (s.timeoutMs > 0 && now - s.started > s.timeoutMs) {
        this.reset(s.id);
        s.done(new GrpcError(4, `no response within ${s.timeoutMs} ms`), null);
      }
    }
  }

  private reset(id: number): void {
    this.streams.delete(id);
    this.write(rstStreamFrame(id, H2Error.CANCEL));
  }

  private write(buf: Buffer): void {
    this.out.push(buf);
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      if (!this.socket || this.out.length === 0) return;
      const out = this.out;
      this.out = [];
      this.socket.write(out.length === 1 ? out[0]! : Buffer.concat(out));
    });
  }

  private sendData(stream: number, payload: Buffer, endStream: boolean): void {
    if (payload.length > 16_384) throw new Error('message larger than one HTTP/2 frame');
    const f = frame(DATA, endStream ? END_STREAM : 0, stream, payload);
    if (this.blocked.length > 0 || this.sendWindow < payload.length) {
      this.blocked.push({ stream, frame: f, bytes: payload.length });
      return;
    }
    this.sendWindow -= payload.length;
    this.write(f);
  }

  private headerBlock(path: string): Buffer {
    let b = this.headerBlocks.get(path);
    if (!b) {
      b = requestHeaderBlock(this.address, path);
      this.headerBlocks.set(path, b);
    }
    return b;
  }

  private open(
    path: string,
    timeoutMs: number,
    done: Stream['done'],
    onMessage: Stream['onMessage'],
  ): Stream {
    if (this.closed) throw new Error('channel closed');
    this.connection();
    const id = this.nextId;
    this.nextId += 2;
    const s: Stream = {
      id,
      started: Date.now(),
      timeoutMs,
      chunks: onMessage ? null : [],
      partial: null,
      onMessage,
      status: undefined,
      message: '',
      received: 0,
      done,
    };
    this.streams.set(id, s);
    const block = this.headerBlock(path);
    this.write(frame(HEADERS, END_HEADERS, id, block));
    return s;
  }

  /** A unary call: the request's protobuf bytes in, the response's out. */
  unary(path: string, request: Buffer, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const s = this.open(path, timeoutMs, (err, data) => (err ? reject(err) : resolve(data!)), null);
      this.sendData(s.id, frameMessage(request), true);
    });
  }

  /** A bidirectional stream; `onEnd` is called once, when the server ends it or it fails. */
  stream(path: string, onMessage: (m: Buffer) => void, onEnd: (err: Error | null) => void): H2Stream {
    const s = this.open(path, 0, (err) => onEnd(err), onMessage);
    return {
      send: (m) => {
        if (this.streams.has(s.id)) this.sendData(s.id, frameMessage(m), false);
      },
      cancel: () => {
        if (this.streams.has(s.id)) this.reset(s.id);
      },
    };
  }

  close(): void {
    this.closed = true;
    if (this.sweeper) clearInterval(this.sweeper);
    this.failAll(new GrpcError(1, 'channel closed'));
  }

  // ---- receiving

  private receive(chunk: Buffer): void {
    let buf = this.inbox ? Buffer.concat([this.inbox, chunk]) : chunk;
    this.inbox = null;
    let at = 0;
    while (buf.length - at >= 9) {
      const length = (buf[at]! << 16) | (buf[at + 1]! << 8) | buf[at + 2]!;
      if (buf.length - at < 9 + length) break;
      const type = buf[at + 3]!;
      const flags = buf[at + 4]!;
      const stream = buf.readUInt32BE(at + 5) & MAX_WINDOW;
      const payload = buf.subarray(at + 9, at + 9 + length);
      at += 9 + length;
      try {
        this.onFrame(type, flags, stream, payload);
      } catch (err) {
        this.failAll(err instanceof Error ? err : new Error(String(err)));
      }
      if (!this.socket) return; // failed while handling
    }
    if (at < buf.length) {
      buf = buf.subarray(at);
      // keep only the unparsed tail (a copy, so the big chunk can be collected)
      this.inbox = Buffer.from(buf);
    }
  }

  private onFrame(type: number, flags: number, id: number, payload: Buffer): void {
    switch (type) {
      case DATA: {
        this.replenish(payload.length);
        const s = this.streams.get(id);
        if (!s) return;
        let data = payload;
        if (flags & PADDED) data = payload.subarray(1, payload.length - payload[0]!);
        s.received += payload.length;
        if (s.received >= REPLENISH_AT) {
          this.write(windowUpdateFrame(id, s.received));
          s.received = 0;
        }
        if (s.chunks) s.chunks.push(data);
        else this.deliver(s, data);
        if (flags & END_STREAM) this.finish(s);
        return;
      }
      case HEADERS: {
        let block = payload;
        if (flags & PADDED) block = block.subarray(1, block.length - payload[0]!);
        if (flags & PRIORITY) block = block.subarray(5);
        const endStream = (flags & END_STREAM) !== 0;
        if (flags & END_HEADERS) this.onHeaders(id, block, endStream);
        else this.headerParts = { stream: id, endStream, parts: [Buffer.from(block)] };
        return;
      }
      case CONTINUATION: {
        const hp = this.headerParts;
        if (!hp || hp.stream !== id) {
          this.failAll(new Error('HTTP/2: unexpected CONTINUATION'));
          return;
        }
        hp.parts.push(Buffer.from(payload));
        if (flags & END_HEADERS) {
          this.headerParts = null;
          this.onHeaders(id, Buffer.concat(hp.parts), hp.endStream);
        }
        return;
      }
      case RST_STREAM: {
        const s = this.streams.get(id);
        if (!s) return;
        this.streams.delete(id);
        s.done(
          new GrpcError(14, `stream reset by the server (HTTP/2 error ${payload.readUInt32BE(0)})`),
          null,
        );
        return;
      }
      case SETTINGS:
        if (!(flags & ACK)) this.write(frame(SETTINGS, ACK, 0, Buffer.alloc(0)));
        return;
      case PING:
        if (!(flags & ACK)) this.write(frame(PING, ACK, 0, Buffer.from(payload)));
        return;
      case GOAWAY:
        // Whatever is in flight fails (counted as errors); the next call opens a new connection.
        this.failAll(
          new GrpcError(14, `GOAWAY from ${this.address} (HTTP/2 error ${payload.readUInt32BE(4)})`),
        );
        return;
      case WINDOW_UPDATE: {
        if (id !== 0) return; // our requests are far below any stream window
        this.sendWindow += payload.readUInt32BE(0) & MAX_WINDOW;
        while (this.blocked.length && this.blocked[0]!.bytes <= this.sendWindow) {
          const b = this.blocked.shift()!;
          this.sendWindow -= b.bytes;
          this.write(b.frame);
        }
        return;
      }
      default:
        return; // PRIORITY, PUSH_PROMISE (disabled), unknown: ignored
    }
  }

  private replenish(bytes: number): void {
    this.receivedSinceUpdate += bytes;
    if (this.receivedSinceUpdate >= REPLENISH_AT) {
      this.write(windowUpdateFrame(0, this.receivedSinceUpdate));
      this.receivedSinceUpdate = 0;
    }
  }

  private onHeaders(id: number, block: Buffer, endStream: boolean): void {
    const s = this.streams.get(id);
    // Every block is decoded, ours or not: the dynamic table must follow the server's.
    this.hpack.decode(block, (name, value) => {
      if (!s) return;
      if (name === 'grpc-status') s.status = Number(value);
      else if (name === 'grpc-message') s.message = value;
    });
    if (s && endStream) this.finish(s);
  }

  private deliver(s: Stream, data: Buffer): void {
    let buf = s.partial ? Buffer.concat([s.partial, data]) : data;
    s.partial = null;
    while (buf.length >= 5) {
      const len = buf.readUInt32BE(1);
      if (buf.length < 5 + len) break;
      s.onMessage!(buf.subarray(5, 5 + len));
      buf = buf.subarray(5 + len);
    }
    if (buf.length) s.partial = Buffer.from(buf);
  }

  private finish(s: Stream): void {
    this.streams.delete(s.id);
    if (s.status !== undefined && s.status !== 0) {
      let message = s.message;
      try {
        message = decodeURIComponent(message);
      } catch {
        // keep it as sent
      }
      s.done(new GrpcError(s.status, message), null);
      return;
    }
    if (!s.chunks) {
      s.done(null, null);
      return;
    }
    const body = s.chunks.length === 1 ? s.chunks[0]! : Buffer.concat(s.chunks);
    if (s.status === undefined) s.done(new GrpcError(13, 'response without grpc-status'), null);
    else if (body.length < 5) s.done(new GrpcError(13, 'response without a message'), null);
    else s.done(null, body.subarray(5, 5 + body.readUInt32BE(1)));
  }
}
