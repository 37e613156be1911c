import type { Socket } from 'node:net';
import { type CallTransport, GrpcCall, type MethodDefinition, RequestMetadata, Status } from './call.js';
import {
  DEFAULT_MAX_FRAME,
  DEFAULT_WINDOW,
  Flag,
  FRAME_HEADER_BYTES,
  FrameType,
  frame,
  goawayFrame,
  H2Error,
  MAX_WINDOW,
  PREFACE,
  rstStreamFrame,
  Setting,
  settingsFrame,
  windowUpdateFrame,
} from './frames.js';
import { HpackDecoder, HpackError, indexedField, literalField } from './hpack.js';

/**
 * One HTTP/2 connection of our gRPC server (RFC 9113 with prior knowledge, no TLS), on the raw
 * socket: frames are parsed and built here and whatever a turn of the event loop produced goes
 * out in one socket write. It serves gRPC only (the gRPC over HTTP/2 spec): POST with
 * `content-type: application/grpc`, length-prefixed messages, status in trailers.
 *
 * Flow control both ways (§5.2, §6.9): we advertise large receive windows and give bytes back
 * as they are consumed (not while a stream is paused, so a flooding client is held by its
 * window); we send no more than the peer's connection and stream windows allow, queueing the
 * rest per stream. A peer that breaks the protocol gets GOAWAY and the socket is closed.
 */

export interface ConnectionLimits {
  maxReceiveMessageBytes: number;
  maxConcurrentStreams: number;
}

export interface MethodHandler {
  definition: MethodDefinition;
  // biome-ignore lint/suspicious/noExplicitAny: handlers of every call shape share this slot.
  handler: (...args: any[]) => void;
}

/** Our receive windows: a stream may have 1 MiB in flight, the connection 8 MiB. */
const STREAM_WINDOW = 1 << 20;
const CONNECTION_WINDOW = 8 << 20;
/** Queued socket bytes past which streams are asked to wait for 'drain'. */
const CONGESTED_BYTES = 1 << 20;
const MAX_HEADER_BLOCK_BYTES = 64 * 1024;
/** grpc-message as sent (percent-encoded): keeps any trailers block well inside one 16 KiB frame. */
const MAX_GRPC_MESSAGE_BYTES = 4096;

class ProtocolError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

const RESPONSE_HEADERS = Buffer.from([
  ...indexedField(8), // :status 200
  ...literalField(31, 'content-type', 'application/grpc'),
  ...literalField(0, 'grpc-accept-encoding', 'identity'),
]);
const OK_TRAILERS = Buffer.from(literalField(0, 'grpc-status', '0'));

function headersFrame(stream: number, block: Uint8Array, endStream: boolean): Buffer {
  return frame(FrameType.HEADERS, Flag.END_HEADERS | (endStream ? Flag.END_STREAM : 0), stream, block);
}

/** grpc-message is percent-encoded: bytes outside printable ASCII, and '%' itself. */
function percentEncode(message: string): string {
  let out = '';
  // Whole characters only, so a cut message still decodes as UTF-8.
  for (const ch of message) {
    let piece = '';
    for (const b of Buffer.from(ch, 'utf8')) {
      piece +=
        b >= 0x20 && b <= 0x7e && b !== 0x25
          ? String.fromCharCode(b)
          : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
    }
    if (out.length + piece.length > MAX_GRPC_MESSAGE_BYTES) break;
    out += piece;
  }
  return out;
}

function trailersBlock(code: number, message: string, withHeaders: boolean): Buffer {
  if (code === Status.OK && !withHeaders) return OK_TRAILERS;
  const fields: number[] = withHeaders ? [...RESPONSE_HEADERS] : [];
  fields.push(...literalField(0, 'grpc-status', String(code)));
  if (message) fields.push(...literalField(0, 'grpc-message', percentEncode(message)));
  return Buffer.from(fields);
}

/** grpc-timeout: an integer of at most 8 digits and a unit (§ "Requests"). */
function timeoutMs(value: string): number | null {
  const m = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (!m) return null;
  const n = Number(m[1]);
  const unit = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 }[m[2] as 'H'];
  return Math.max(0, Math.ceil(n * unit));
}

export class Http2Connection implements CallTransport {
  private readonly hpack = new HpackDecoder();
  private readonly streams = new Map<number, GrpcCall>();
  /** Calls with data waiting for a window, in the order they blocked. */
  private readonly blocked = new Set<GrpcCall>();
  private inbox: Buffer | null = null;
  private prefaceSeen = false;
  private out: Buffer[] = [];
  /** Bytes in `out`, not yet handed to the socket. */
  private outBytes = 0;
  private flushScheduled = false;
  private sendWindow = DEFAULT_WINDOW;
  private peerInitialWindow = DEFAULT_WINDOW;
  private peerMaxFrame = DEFAULT_MAX_FRAME;
  /** Bytes the client sent that we have not yet given back: its window is ours minus these. */
  private unacked = 0;
  private lastStreamId = 0;
  private headerParts: { stream: number; endStream: boolean; parts: Buffer[]; bytes: number } | null = null;
  private closed = false;
  private goingAway = false;
  private readonly remote: string;

  constructor(
    private readonly socket: Socket,
    private readonly methods: ReadonlyMap<string, MethodHandler>,
    private readonly limits: ConnectionLimits,
    private readonly onClose: (c: Http2Connection) => void,
  ) {
    this.remote = `${socket.remoteAddress}:${socket.remotePort}`;
    this.push(
      settingsFrame([
        [Setting.MAX_CONCURRENT_STREAMS, limits.maxConcurrentStreams],
        [Setting.INITIAL_WINDOW_SIZE, STREAM_WINDOW],
        [Setting.MAX_HEADER_LIST_SIZE, MAX_HEADER_BLOCK_BYTES],
      ]),
    );
    this.push(windowUpdateFrame(0, CONNECTION_WINDOW - DEFAULT_WINDOW));
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('drain', () => this.drained());
    socket.on('error', () => {});
    socket.on('close', () => this.teardown());
  }

  peer(): string {
    return this.remote;
  }

  congested(): boolean {
    return this.socket.writableLength + this.outBytes > CONGESTED_BYTES;
  }

  /** Refuse new streams, let the open ones finish (the server is closing). */
  goAway(): void {
    if (this.closed || this.goingAway) return;
    this.goingAway = true;
    this.push(goawayFrame(this.lastStreamId, H2Error.NO_ERROR));
  }

  destroy(): void {
    this.socket.destroy();
  }

  // ---- output

  private push(buf: Buffer): void {
    this.out.push(buf);
    this.outBytes += buf.length;
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // Everything produced in this turn of the loop (many calls' replies) goes out in one write.
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.closed || this.out.length === 0) return;
    const out = this.out;
    this.out = [];
    this.outBytes = 0;
    // Streams told to wait while this turn's output piled up may go on if the socket took it.
    if (this.socket.write(out.length === 1 ? out[0]! : Buffer.concat(out))) this.drained();
  }

  private fatal(code: number, reason: string): void {
    if (this.closed) return;
    this.push(goawayFrame(this.lastStreamId, code, reason));
    this.flush();
    this.socket.end();
    this.teardown();
  }

  private teardown(): void {
    if (this.closed) return;
    this.closed = true;
    this.out = [];
    this.outBytes = 0;
    const calls = [...this.streams.values()];
    this.streams.clear();
    this.blocked.clear();
    for (const call of calls) this.cancel(call);
    this.socket.destroy();
    this.onClose(this);
  }

  // ---- CallTransport: sending

  sendMessage(call: GrpcCall, framed: Buffer): void {
    if (call.finished || this.closed) return;
    if (!call.headersSent) {
      call.headersSent = true;
      this.push(headersFrame(call.id, RESPONSE_HEADERS, false));
    }
    if (call.queuedBytes > 0) {
      call.queue.push(framed);
      call.queuedBytes += framed.length;
      return;
    }
    const sent = this.sendData(call, framed, 0);
    if (sent < framed.length) {
      const rest = framed.subarray(sent);
      call.queue.push(rest);
      call.queuedBytes += rest.length;
      this.blocked.add(call);
    }
  }

  /** DATA frames for `buf` from `from`, as far as the windows allow; returns the bytes sent. */
  private sendData(call: GrpcCall, buf: Buffer, from: number): number {
    let at = from;
    while (at < buf.length) {
      const n = Math.min(buf.length - at, this.sendWindow, call.sendWindow, this.peerMaxFrame);
      if (n <= 0) break;
      this.push(frame(FrameType.DATA, 0, call.id, buf.subarray(at, at + n)));
      at += n;
      this.sendWindow -= n;
      call.sendWindow -= n;
    }
    return at - from;
  }

  finish(call: GrpcCall, code: number, message: string): void {
    if (call.finished || this.closed) return;
    call.finished = true;
    if (call.deadline) clearTimeout(call.deadline);
    // Trailers-only when nothing was sent (§ "Responses"): one HEADERS frame with the status.
    const block = trailersBlock(code, message, !call.headersSent);
    call.headersSent = true;
    const trailers = headersFrame(call.id, block, true);
    if (call.queuedBytes > 0) {
      call.pendingTrailers = trailers;
      return;
    }
    this.complete(call, trailers);
  }

  private complete(call: GrpcCall, trailers: Buffer): void {
    this.push(trailers);
    // The client may still be sending: tell it to stop (RFC 9113 §8.1).
    if (!call.remoteEnded) this.push(rstStreamFrame(call.id, H2Error.NO_ERROR));
    this.forget(call);
    call.emit('close');
  }

  private forget(call: GrpcCall): void {
    this.streams.delete(call.id);
    this.blocked.delete(call);
    if (call.deadline) clearTimeout(call.deadline);
    if (this.goingAway && this.streams.size === 0 && !this.closed) {
      // The last call is done: its reply and the GOAWAY go out before the socket ends.
      this.flush();
      this.socket.end();
    }
  }

  private cancel(call: GrpcCall): void {
    if (call.cancelled) return;
    call.cancelled = true;
    call.finished = true;
    this.forget(call);
    call.emit('cancelled');
    call.emit('close');
  }

  resumed(call: GrpcCall): void {
    this.giveBack(call);
  }

  /** Windows opened: send what waits, in order, and the trailers behind it. */
  private unblock(): void {
    for (const call of this.blocked) {
      if (this.sendWindow <= 0) break;
      while (call.queue.length > 0) {
        const head = call.queue[0]!;
        const sent = this.sendData(call, head, 0);
        call.queuedBytes -= sent;
        if (sent < head.length) {
          call.queue[0] = head.subarray(sent);
          break;
        }
        call.queue.shift();
      }
      if (call.queuedBytes > 0) continue;
      this.blocked.delete(call);
      if (call.pendingTrailers) {
        const trailers = call.pendingTrailers;
        call.pendingTrailers = null;
        this.complete(call, trailers);
      } else if (call.needDrain && !this.congested()) {
        call.needDrain = false;
        call.emit('drain');
      }
    }
  }

  private drained(): void {
    for (const call of this.streams.values()) {
      if (call.needDrain && call.queuedBytes === 0) {
        call.needDrain = false;
        call.emit('drain');
      }
    }
  }

  // ---- input

  private receive(chunk: Buffer): void {
    const buf = this.inbox ? Buffer.concat([this.inbox, chunk]) : chunk;
    this.inbox = null;
    let at = 0;
    if (!this.prefaceSeen) {
      if (buf.length < PREFACE.length) {
        this.inbox = Buffer.from(buf);
        return;
      }
      if (!buf.subarray(0, PREFACE.length).equals(PREFACE)) {
        this.fatal(H2Error.PROTOCOL_ERROR, 'bad connection preface');
        return;
      }
      this.prefaceSeen = true;
      at = PREFACE.length;
    }
    try {
      while (buf.length - at >= FRAME_HEADER_BYTES && !this.closed) {
        const length = (buf[at]! << 16) | (buf[at + 1]! << 8) | buf[at + 2]!;
        // We never raise SETTINGS_MAX_FRAME_SIZE above the default (§4.2).
        if (length > DEFAULT_MAX_FRAME) throw new ProtocolError(H2Error.FRAME_SIZE_ERROR, 'frame too large');
        if (buf.length - at < FRAME_HEADER_BYTES + length) break;
        const type = buf[at + 3]!;
        const flags = buf[at + 4]!;
        const stream = buf.readUInt32BE(at + 5) & MAX_WINDOW;
        const payload = buf.subarray(at + FRAME_HEADER_BYTES, at + FRAME_HEADER_BYTES + length);
        at += FRAME_HEADER_BYTES + length;
        this.onFrame(type, flags, stream, payload);
      }
    } catch (err) {
      if (err instanceof ProtocolError) this.fatal(err.code, err.message);
      else if (err instanceof HpackError) this.fatal(H2Error.COMPRESSION_ERROR, err.message);
      else throw err;
      return;
    }
    // Keep only the unparsed tail, copied, so the chunk it came from can be collected.
    if (at < buf.length && !this.closed) this.inbox = Buffer.from(buf.subarray(at));
  }

  private onFrame(type: number, flags: number, id: number, payload: Buffer): void {
    if (this.headerParts && type !== FrameType.CONTINUATION)
      throw new ProtocolError(H2Error.PROTOCOL_ERROR, 'expected CONTINUATION');
    switch (type) {
      case FrameType.DATA:
        this.onData(id, flags, payload);
        return;
      case FrameType.HEADERS: {
        if (id === 0) throw new ProtocolError(H2Error.PROTOCOL_ERROR, 'HEADERS on stream 0');
        let block = payload;
        let pad = 0;
        if (flags & Flag.PADDED) {
          pad = block[0] ?? 0;
          block = block.subarray(1);
        }
        if (flags & Flag.PRIORITY) block = block.subarray(5);
        if (pad > block.length) throw new ProtocolError(H2Error.PROTOCOL_ERROR, 'bad padding');
        block = block.subarray(0, block.length - pad);
        const endStream = (flags & Flag.END_STREAM) !== 0;
        if (flags & Flag.END_HEADERS) this.onHeaders(id, block, endStream);
        else this.headerParts = { stream: id, endStream, parts: [Buffer.from(block)], bytes: block.length };
        return;
      }
      case FrameType.CONTINUATION: {
        const hp = this.headerParts;
        if (!hp || hp.stream !== id)
          throw new ProtocolError(H2Error.PROTOCOL_ERROR, 'unexpected CONTINUATION');
        hp.parts.push(Buffer.from(payload));
        hp.bytes += payload.length;
        if (hp.bytes > MAX_HEADER_BLOCK_BYTES)
          throw new ProtocolError(H2Error.ENHANCE_YOUR_CALM, 'header block too large');
        if (flags & Flag.END_HEADERS) {
          this.headerParts = null;
          this.onHeaders(id, Buffer.concat(hp.parts), hp.endStream);
        }
        return;
      }
      case FrameType.RST_STREAM: {
        if (payload.length !== 4) throw new ProtocolError(H2Error.FRAME_SIZE_ERROR, 'bad RST_STREAM');
        if (id === 0 || id > this.lastStreamId)
          throw new ProtocolError(H2Error.PROTOCOL_ERROR, 'RST_STREAM on stream 0 or an idle stream');
        const call = this.streams.get(id);
        if (call) this.cancel(call);
        return;
      }
      case FrameType.SETTINGS:
        this.onSettings(id, flags, payload);
        return;
      case FrameType.PING:
        if (id !== 0) throw new ProtocolError(H2Error.PROTOCOL_ERROR, 'PING on a stream');
        if (payload.length !== 8) throw new ProtocolError(H2Error.FRAME_SIZE_ERROR, 'PING of the wrong size');
        if (!(flags & Flag.ACK)) this.push(frame(FrameType.PING, Flag.ACK, 0, Buffer.from(payload)));
        return;
      case FrameType.GOAWAY:
        // The client opens no more streams; those open finish, then it closes the socket.
        return;
      case FrameType.WINDOW_UPDATE:
        this.onWindowUpdate(id, payload);
        return;
      case FrameType.PUSH_PROMISE:
        throw new ProtocolError(H2Error.PROTOCOL_ERROR, 'PUSH_PROMISE from a client');
      default:
        return; // PRIORITY and unknown types are ignored (§5.5)
    }
  }

  private onSettings(id: number, flags: number, payload: Buffer): void {
    if (id !== 0) throw new ProtocolError(H2Error.PROTOCOL_ERROR, 'SETTINGS on a stream');
    if (flags & Flag.ACK) {
      if (payload.length !== 0)
        throw new ProtocolError(H2Error.FRAME_SIZE_ERROR, 'SETTINGS ACK with a payload');
      return;
    }
    if (payload.length % 6 !== 0) throw new ProtocolError(H2Error.FRAME_SIZE_ERROR, 'bad SETTINGS');
    for (let i = 0; i < payload.length; i += 6) {
      const key = payload.readUInt16BE(i);
      const value = payload.readUInt32BE(i + 2);
      if (key === Setting.INITIAL_WINDOW_SIZE) {
        if (value > MAX_WINDOW) throw new ProtocolError(H2Error.FLOW_CONTROL_ERROR, 'window too large');
        // §6.9.2: the change applies to every open stream's window.
        const delta = value - this.peerInitialWindow;
        this.peerInitialWindow = value;
        for (const call of this.streams.values()) call.sendWindow += delta;
      } else if (key === Setting.MAX_FRAME_SIZE) {
        if (value < DEFAULT_MAX_FRAME || value > 0xffffff)
          throw new ProtocolError(H2Error.PROTOCOL_ERROR, 'bad MAX_FRAME_SIZE');
        this.peerMaxFrame = value;
      }
      // HEADER_TABLE_SIZE concerns an encoder's table: ours has none. The rest apply to clients.
    }
    this.push(frame(FrameType.SETTINGS, Flag.ACK, 0, Buffer.alloc(0)));
    this.unblock();
  }

  private onWindowUpdate(id: number, payload: Buffer): void {
    if (payload.length !== 4) throw new ProtocolError(H2Error.FRAME_SIZE_ERROR, 'bad WINDOW_UPDATE');
    const increment = payload.readUInt32BE(0) & MAX_WINDOW;
    if (id === 0) {
      if (increment === 0) throw new ProtocolError(H2Error.PROTOCOL_ERROR, 'zero window increment');
      this.sendWindow += increment;
      if (this.sendWindow > MAX_WINDOW)
        throw new ProtocolError(H2Error.FLOW_CONTROL_ERROR, 'window overflow');
    } else {
      const call = this.streams.get(id);
      if (!call) return;
      call.sendWindow += increment;
    }
    this.unblock();
  }

  private onData(id: number, flags: number, payload: Buffer): void {
    if (id === 0) throw new ProtocolError(H2Error.PROTOCOL_ERROR, 'DATA on stream 0');
    // Padding counts against the windows too (§6.9.1).
    this.unacked += payload.length;
    if (this.unacked > CONNECTION_WINDOW)
      throw new ProtocolError(H2Error.FLOW_CONTROL_ERROR, 'connection window exceeded');
    if (this.unacked >= CONNECTION_WINDOW / 2) {
      this.push(windowUpdateFrame(0, this.unacked));
      this.unacked = 0;
    }
    const call = this.streams.get(id);
    if (!call || call.remoteEnded) {
      // A stream we already finished (its RST may cross this frame), or one never opened.
      if (id > this.lastStreamId) throw new ProtocolError(H2Error.PROTOCOL_ERROR, 'DATA on an idle stream');
      return;
    }
    call.unacked += payload.length;
    if (call.unacked > STREAM_WINDOW) {
      this.resetStream(call, H2Error.FLOW_CONTROL_ERROR);
      return;
    }
    let data = payload;
    if (flags & Flag.PADDED) {
      const pad = data[0] ?? 0;
      if (pad >= data.length) throw new ProtocolError(H2Error.PROTOCOL_ERROR, 'bad padding');
      data = data.subarray(1, data.length - pad);
    }
    const ending = (flags & Flag.END_STREAM) !== 0;
    // Known before the messages are read: a call they fail must not reset a stream the client closed.
    if (ending) call.remoteEnded = true;
    if (!call.finished) this.readMessages(call, data);
    if (ending) this.onRemoteEnd(call);
    else if (!call.paused) this.giveBack(call);
  }

  private giveBack(call: GrpcCall): void {
    if (call.unacked < STREAM_WINDOW / 2 || call.remoteEnded || call.finished) return;
    this.push(windowUpdateFrame(call.id, call.unacked));
    call.unacked = 0;
  }

  private resetStream(call: GrpcCall, code: number): void {
    this.push(rstStreamFrame(call.id, code));
    this.cancel(call);
  }

  /** Split the stream's bytes into gRPC messages (5-byte prefix: compressed flag, length). */
  private readMessages(call: GrpcCall, data: Buffer): void {
    let buf = call.partial ? Buffer.concat([call.partial, data]) : data;
    call.partial = null;
    while (buf.length >= 5) {
      const compressed = buf[0]!;
      const length = buf.readUInt32BE(1);
      if (length > this.limits.maxReceiveMessageBytes) {
        this.failCall(
          call,
          Status.RESOURCE_EXHAUSTED,
          `Received message larger than max (${length} vs. ${this.limits.maxReceiveMessageBytes})`,
        );
        return;
      }
      if (compressed !== 0) {
        // We answer grpc-accept-encoding: identity, so a compressing client has ignored it.
        this.failCall(
          call,
          Status.UNIMPLEMENTED,
          'compressed messages are not supported (grpc-encoding identity only)',
        );
        return;
      }
      if (buf.length < 5 + length) break;
      const bytes = buf.subarray(5, 5 + length);
      buf = buf.subarray(5 + length);
      let message: unknown;
      try {
        message = call.method.requestDeserialize(bytes);
      } catch (err) {
        this.failCall(call, Status.INTERNAL, `error parsing the request: ${String(err)}`);
        return;
      }
      if (call.method.requestStream) {
        call.deliver(message);
        if (call.finished) return;
      } else if (call.request !== undefined) {
        this.failCall(call, Status.UNIMPLEMENTED, 'a second request message on a unary call');
        return;
      } else {
        call.request = message;
      }
    }
    if (buf.length > 0) call.partial = Buffer.from(buf);
  }

  private failCall(call: GrpcCall, code: number, message: string): void {
    this.finish(call, code, message);
    call.partial = null;
  }

  private onRemoteEnd(call: GrpcCall): void {
    call.remoteEnded = true;
    if (call.finished) return;
    if (call.partial) {
      this.failCall(call, Status.INTERNAL, 'the request ended inside a message');
      return;
    }
    if (call.method.requestStream) {
      call.deliverEnd();
      return;
    }
    if (call.request === undefined) {
      this.failCall(call, Status.UNIMPLEMENTED, 'no request message on a unary call');
      return;
    }
    this.invoke(call);
  }

  private onHeaders(id: number, block: Buffer, endStream: boolean): void {
    let path = '';
    let method = '';
    let authority = '';
    let contentType = '';
    let timeout = '';
    let metadata: RequestMetadata | null = null;
    // Every block is decoded, even one we will refuse: the table must follow the peer's.
    this.hpack.decode(
      block,
      (name, value) => {
        if (name.charCodeAt(0) === 58 /* ':' */) {
          if (name === ':path') path = value;
          else if (name === ':method') method = value;
          else if (name === ':authority') authority = value;
          return;
        }
        if (name === 'content-type') contentType = value;
        else if (name === 'grpc-timeout') timeout = value;
        metadata ??= new RequestMetadata();
        metadata.add(name, value);
      },
      MAX_HEADER_BLOCK_BYTES,
    );
    const existing = this.streams.get(id);
    if (existing) {
      // Trailers from the client: only as the end of its side.
      if (!endStream) throw new ProtocolError(H2Error.PROTOCOL_ERROR, 'second HEADERS without END_STREAM');
      this.onRemoteEnd(existing);
      return;
    }
    if (id % 2 === 0 || id <= this.lastStreamId) {
      // A closed stream's late trailers are harmless; a reused or even id is not.
      if (id % 2 === 0) throw new ProtocolError(H2Error.PROTOCOL_ERROR, 'even stream id from a client');
      return;
    }
    this.lastStreamId = id;
    if (this.goingAway) {
      this.push(rstStreamFrame(id, H2Error.REFUSED_STREAM));
      return;
    }
    if (this.streams.size >= this.limits.maxConcurrentStreams) {
      this.push(rstStreamFrame(id, H2Error.REFUSED_STREAM));
      return;
    }
    if (method !== 'POST' || !contentType.startsWith('application/grpc')) {
      // Not gRPC: 415 as gRPC servers answer (the gRPC over HTTP/2 spec).
      this.push(headersFrame(id, Buffer.from([...literalField(8, ':status', '415')]), true));
      if (!endStream) this.push(rstStreamFrame(id, H2Error.NO_ERROR));
      return;
    }
    const found = this.methods.get(path);
    const definition = found?.definition ?? UNKNOWN_METHOD;
    const call = new GrpcCall(
      this,
      id,
      definition,
      metadata ?? new RequestMetadata(),
      this.peerInitialWindow,
    );
    call.authority = authority;
    this.streams.set(id, call);
    if (!found) {
      call.remoteEnded = endStream;
      this.finish(call, Status.UNIMPLEMENTED, `The server does not implement the method ${path}`);
      return;
    }
    const ms = timeout ? timeoutMs(timeout) : null;
    if (ms !== null) {
      call.deadline = setTimeout(() => {
        call.deadline = null;
        if (call.finished) return;
        this.finish(call, Status.DEADLINE_EXCEEDED, 'Deadline exceeded');
        call.cancelled = true;
        call.emit('cancelled');
      }, ms);
    }
    if (definition.requestStream) this.invoke(call);
    if (endStream) this.onRemoteEnd(call);
  }

  private invoke(call: GrpcCall): void {
    const handler = this.methods.get(call.method.path)!.handler;
    try {
      // grpc-js's shapes: a response stream is written on the call, a single response is
      // passed to the callback (unary and client-streaming).
      if (call.method.responseStream) handler(call);
      else handler(call, (err: Error | null, value?: unknown) => call.reply(err, value));
    } catch (err) {
      call.fail({ code: Status.UNKNOWN, message: err instanceof Error ? err.message : String(err) });
    }
  }
}

const UNKNOWN_METHOD: MethodDefinition = {
  path: '',
  requestStream: false,
  responseStream: false,
  requestDeserialize: (b) => b,
  responseSerialize: (v: never) => v,
};
