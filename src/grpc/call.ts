import { EventEmitter } from 'node:events';

/**
 * The server side of one gRPC call, with the surface our service handlers use (the same names
 * as @grpc/grpc-js's server calls, so a handler reads the same either way):
 *
 * - `request` (unary and server-streaming), `metadata.get(key)`, `cancelled`, `getPeer()`,
 *   `getHost()`;
 * - streams: `write(message)` (false: wait for 'drain'), `end()`, `pause()`/`resume()`,
 *   `emit('error', serviceError)` to end the call with that status;
 * - events: 'data' and 'end' (client-streaming and bidi), 'drain', 'cancelled' (the client
 *   reset the stream, the deadline passed or the connection closed) and 'close' (the call is
 *   over, either way).
 *
 * The connection (`./connection.ts`) does the framing and flow control behind it.
 */

/** The status a handler fails a call with (grpc-js's ServiceError has this shape). */
export interface CallError {
  code?: number;
  details?: string;
  message?: string;
}

export interface MethodDefinition {
  path: string;
  requestStream: boolean;
  responseStream: boolean;
  requestDeserialize: (bytes: Buffer) => unknown;
  responseSerialize: (value: never) => Buffer;
}

/** What a call needs from its connection. */
export interface CallTransport {
  sendMessage(call: GrpcCall, framed: Buffer): void;
  finish(call: GrpcCall, code: number, message: string): void;
  /** The stream's receive window may be replenished again (after resume). */
  resumed(call: GrpcCall): void;
  peer(): string;
  /** True when the socket holds more than it should: the stream should wait for 'drain'. */
  congested(): boolean;
}

/** Request headers that are not HTTP/2 pseudo-headers, as gRPC metadata. */
export class RequestMetadata {
  private readonly map = new Map<string, string[]>();

  add(name: string, value: string): void {
    const values = this.map.get(name);
    if (values) values.push(value);
    else this.map.set(name, [value]);
  }

  get(name: string): string[] {
    return this.map.get(name.toLowerCase()) ?? [];
  }

  getMap(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [k, v] of this.map) out[k] = v[0]!;
    return out;
  }
}

/** gRPC status codes (grpc/doc/statuscodes.md). */
export const Status = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;
export type Status = (typeof Status)[keyof typeof Status];

/** An error that ends a call with its status: `details` is the grpc-message. */
export interface ServiceError extends Error {
  code: Status;
  details: string;
}

export class GrpcCall extends EventEmitter {
  request: unknown = undefined;
  cancelled = false;
  /** The request's :authority (host:port the client dialed). */
  authority = '';
  /** Set once the trailers are queued or the stream was reset: nothing more is sent. */
  finished = false;
  /** The client sent END_STREAM. */
  remoteEnded = false;
  paused = false;

  // Send side, kept by the connection.
  sendWindow: number;
  headersSent = false;
  readonly queue: Buffer[] = [];
  queuedBytes = 0;
  pendingTrailers: Buffer | null = null;
  needDrain = false;

  // Receive side.
  /** Bytes of the receive window the client has used and we have not yet given back. */
  unacked = 0;
  partial: Buffer | null = null;
  readonly backlog: unknown[] = [];
  endAfterBacklog = false;
  deadline: NodeJS.Timeout | null = null;

  constructor(
    private readonly transport: CallTransport,
    readonly id: number,
    readonly method: MethodDefinition,
    readonly metadata: RequestMetadata,
    sendWindow: number,
  ) {
    super();
    this.sendWindow = sendWindow;
    // grpc-js's convention: a handler ends a stream with a status by emitting 'error'.
    this.on('error', (err: CallError) => this.fail(err));
  }

  getPeer(): string {
    return this.transport.peer();
  }

  getHost(): string {
    return this.authority;
  }

  /** Send one response message; false when the caller should wait for 'drain'. */
  write(message: unknown): boolean {
    if (this.finished) return false;
    this.transport.sendMessage(this, frameMessage(this.method.responseSerialize(message as never)));
    const ok = this.queuedBytes === 0 && !this.transport.congested();
    if (!ok) this.needDrain = true;
    return ok;
  }

  /** End the call with OK (after whatever was written). */
  end(): void {
    if (!this.finished) this.transport.finish(this, Status.OK, '');
  }

  /** Fail the call with the error's code (UNKNOWN when it has none) and message. */
  fail(err: CallError): void {
    if (this.finished) return;
    const code = typeof err?.code === 'number' && err.code > 0 && err.code <= 16 ? err.code : Status.UNKNOWN;
    this.transport.finish(this, code, err?.details ?? err?.message ?? String(err));
  }

  /** A unary or client-streaming reply. */
  reply(err: CallError | null, value?: unknown): void {
    if (this.finished) return;
    if (err) {
      this.fail(err);
      return;
    }
    let bytes: Buffer;
    try {
      bytes = this.method.responseSerialize(value as never);
    } catch (e) {
      this.transport.finish(this, Status.INTERNAL, `failed to serialize the response: ${String(e)}`);
      return;
    }
    this.transport.sendMessage(this, frameMessage(bytes));
    this.transport.finish(this, Status.OK, '');
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    while (!this.paused && this.backlog.length > 0 && !this.cancelled)
      this.emit('data', this.backlog.shift());
    if (!this.paused && this.endAfterBacklog && this.backlog.length === 0) {
      this.endAfterBacklog = false;
      this.emit('end');
    }
    if (!this.paused) this.transport.resumed(this);
  }

  /** A request message decoded from the client's stream (client-streaming and bidi). */
  deliver(message: unknown): void {
    if (this.paused || this.backlog.length > 0) this.backlog.push(message);
    else this.emit('data', message);
  }

  /** The client half-closed its side. */
  deliverEnd(): void {
    if (this.paused || this.backlog.length > 0) this.endAfterBacklog = true;
    else this.emit('end');
  }
}

/** A message with gRPC's length prefix (§ "Length-Prefixed-Message": uncompressed flag, length). */
export function frameMessage(bytes: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + bytes.length);
  out[0] = 0;
  out.writeUInt32BE(bytes.length, 1);
  out.set(bytes, 5);
  return out;
}

/** A unary (or client-streaming) handler's reply callback, as grpc-js's sendUnaryData. */
export type ReplyCallback<Res> = (err: CallError | null, value?: Res) => void;
export type UnaryHandler<Res> = (call: GrpcCall, callback: ReplyCallback<Res>) => void;
export type StreamHandler = (call: GrpcCall) => void;
