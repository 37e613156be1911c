import assert from 'node:assert/strict';
import { once } from 'node:events';
import http2 from 'node:http2';
import net from 'node:net';
import { describe, type TestContext, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import type { GrpcCall, ReplyCallback } from '../../src/grpc/call.js';
import type { ConnectionLimits } from '../../src/grpc/connection.js';
import {
  DEFAULT_MAX_FRAME,
  Flag,
  FRAME_HEADER_BYTES,
  FrameType,
  frame,
  H2Error,
  PREFACE,
  rstStreamFrame,
  Setting,
  settingsFrame,
  windowUpdateFrame,
  writeFrameHeader,
} from '../../src/grpc/frames.js';
import { HpackDecoder, indexedField, literalField } from '../../src/grpc/hpack.js';
import { GrpcServer, type ServiceImplementation } from '../../src/grpc/server.js';

/**
 * Our gRPC-over-HTTP/2 server (src/grpc) on a plain net.Server, driven three ways:
 *
 * - @grpc/grpc-js clients, for what real clients see (the four call shapes, statuses,
 *   metadata, deadlines, cancellation, big messages, many calls at once);
 * - node:http2 client sessions, for the HTTP/2 view (headers and trailers as sent, 415,
 *   compressed messages, a reader that stalls);
 * - a raw socket writing hand-built frames, for what no well-behaved client sends (protocol
 *   violations must end in GOAWAY and a closed socket, never a crashed process) and for
 *   checking flow control frame by frame.
 *
 * Messages are raw Buffers (identity serializers), so no .proto is involved.
 */

// ---------------------------------------------------------------- service

const identity = (b: Buffer): Buffer => b;

function method(name: string, requestStream: boolean, responseStream: boolean) {
  return {
    path: `/test.Test/${name}`,
    requestStream,
    responseStream,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
    originalName: name,
  };
}

const SERVICE = {
  Unary: method('Unary', false, false),
  ServerStream: method('ServerStream', false, true),
  ClientStream: method('ClientStream', true, false),
  Bidi: method('Bidi', true, true),
  // In the definition but never implemented: callers get UNIMPLEMENTED.
  Missing: method('Missing', false, false),
  // Its deserializer rejects requests that start with 0xff.
  Strict: {
    ...method('Strict', false, false),
    requestDeserialize: (b: Buffer): Buffer => {
      if (b[0] === 0xff) throw new Error('bad request bytes');
      return b;
    },
  },
};

const PATH = {
  unary: SERVICE.Unary.path,
  serverStream: SERVICE.ServerStream.path,
  clientStream: SERVICE.ClientStream.path,
  bidi: SERVICE.Bidi.path,
  missing: SERVICE.Missing.path,
  strict: SERVICE.Strict.path,
  unknown: '/test.Test/NoSuchMethod',
};

type Impl = {
  Unary?: (call: GrpcCall, callback: ReplyCallback<Buffer>) => void;
  ServerStream?: (call: GrpcCall) => void;
  ClientStream?: (call: GrpcCall, callback: ReplyCallback<Buffer>) => void;
  Bidi?: (call: GrpcCall) => void;
  Strict?: (call: GrpcCall, callback: ReplyCallback<Buffer>) => void;
};

const echoUnary = (call: GrpcCall, cb: ReplyCallback<Buffer>) => cb(null, call.request as Buffer);

// ---------------------------------------------------------------- harness

/** Runs `fn`s at the end of the test, last registered first, even when the test failed. */
function cleanups(t: TestContext): (fn: () => unknown) => void {
  const fns: (() => unknown)[] = [];
  t.after(async () => {
    for (const fn of fns.reverse()) {
      try {
        await fn();
      } catch {
        // cleanup is best effort
      }
    }
  });
  return (fn) => fns.push(fn);
}

/** A failure guard for a wait that should end on its own; never a timing assertion. */
function guard<T>(p: Promise<T>, what: string, ms = 20_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`gave up waiting for ${what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

async function until(cond: () => boolean, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

interface TestServer {
  grpcServer: GrpcServer;
  port: number;
  address: string;
}

async function startServer(
  t: TestContext,
  impl: Impl,
  limits: Partial<ConnectionLimits> = {},
): Promise<TestServer> {
  const after = cleanups(t);
  const grpcServer = new GrpcServer(limits);
  grpcServer.addService(SERVICE, impl as ServiceImplementation);
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.setNoDelay(true);
    grpcServer.handleConnection(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  after(async () => {
    grpcServer.close();
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { grpcServer, port, address: `127.0.0.1:${port}` };
}

function grpcClient(t: TestContext, server: TestServer, options: grpc.ChannelOptions = {}): grpc.Client {
  const client = new grpc.Client(server.address, grpc.credentials.createInsecure(), options);
  cleanups(t)(() => client.close());
  return client;
}

function unaryCall(
  client: grpc.Client,
  path: string,
  request: Buffer,
  metadata = new grpc.Metadata(),
  options: grpc.CallOptions = {},
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(path, identity, identity, request, metadata, options, (err, value) =>
      err ? reject(err) : resolve(value!),
    );
  });
}

function isServiceError(err: unknown): err is grpc.ServiceError {
  return err instanceof Error && typeof (err as grpc.ServiceError).code === 'number';
}

async function expectStatus(
  p: Promise<unknown>,
  code: grpc.status,
  details?: string | RegExp,
): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(isServiceError(err), `expected a gRPC error, got ${String(err)}`);
    assert.equal(err.code, code, `status ${err.code} (${err.details}), expected ${code}`);
    if (typeof details === 'string') assert.equal(err.details, details);
    else if (details) assert.match(err.details, details);
    return true;
  });
}

interface StreamOutcome {
  messages: Buffer[];
  status: grpc.StatusObject;
  error: grpc.ServiceError | null;
}

/** Everything a grpc-js readable call yields, once it has both ended and reported its status. */
function collect(stream: grpc.ClientReadableStream<Buffer> | grpc.ClientDuplexStream<Buffer, Buffer>) {
  return new Promise<StreamOutcome>((resolve) => {
    const messages: Buffer[] = [];
    let status: grpc.StatusObject | null = null;
    let error: grpc.ServiceError | null = null;
    let over = false;
    const check = () => {
      if (status && over) resolve({ messages, status, error });
    };
    stream.on('data', (m: Buffer) => messages.push(m));
    stream.on('status', (s: grpc.StatusObject) => {
      status = s;
      check();
    });
    stream.on('error', (e: grpc.ServiceError) => {
      error = e;
      over = true;
      check();
    });
    stream.on('end', () => {
      over = true;
      check();
    });
  });
}

/** gRPC's length-prefixed message. */
function grpcFrame(message: Buffer, compressed = 0): Buffer {
  const out = Buffer.alloc(5 + message.length);
  out[0] = compressed;
  out.writeUInt32BE(message.length, 1);
  message.copy(out, 5);
  return out;
}

function parseGrpcFrames(data: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  while (at < data.length) {
    assert.ok(data.length - at >= 5, 'a truncated message prefix');
    assert.equal(data[at], 0, 'the server sends uncompressed messages');
    const length = data.readUInt32BE(at + 1);
    assert.ok(at + 5 + length <= data.length, 'a truncated message');
    out.push(data.subarray(at + 5, at + 5 + length));
    at += 5 + length;
  }
  return out;
}

/** A recognisable byte pattern, so a reordered or corrupted byte shows. */
function pattern(length: number, seed: number): Buffer {
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i++) out[i] = (i * 31 + seed * 7 + (i >> 8)) & 0xff;
  return out;
}

// ---------------------------------------------------------------- node:http2 client

async function h2session(
  t: TestContext,
  server: TestServer,
  options: http2.ClientSessionOptions = {},
): Promise<http2.ClientHttp2Session> {
  const session = http2.connect(`http://${server.address}`, options);
  session.on('error', () => {});
  cleanups(t)(() => session.destroy());
  await guard(once(session, 'connect'), 'the http2 session to connect');
  return session;
}

interface H2Response {
  headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader;
  /** The HEADERS frame's flags: END_STREAM set on a trailers-only response. */
  headerFlags: number;
  trailers: http2.IncomingHttpHeaders | null;
  data: Buffer;
  rstCode: number;
}

function grpcHeaders(path: string, extra: http2.OutgoingHttpHeaders = {}): http2.OutgoingHttpHeaders {
  return {
    ':method': 'POST',
    ':path': path,
    'content-type': 'application/grpc',
    te: 'trailers',
    ...extra,
  };
}

function h2collect(req: http2.ClientHttp2Stream): Promise<H2Response> {
  return new Promise((resolve) => {
    let headers: H2Response['headers'] = {};
    let headerFlags = 0;
    let trailers: http2.IncomingHttpHeaders | null = null;
    const chunks: Buffer[] = [];
    req.on('response', (h, flags) => {
      headers = h;
      headerFlags = flags;
    });
    req.on('trailers', (h) => {
      trailers = h;
    });
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('error', () => {});
    req.on('close', () =>
      resolve({ headers, headerFlags, trailers, data: Buffer.concat(chunks), rstCode: req.rstCode ?? 0 }),
    );
  });
}

function h2call(
  session: http2.ClientHttp2Session,
  path: string,
  body: Buffer | null,
  extra: http2.OutgoingHttpHeaders = {},
): Promise<H2Response> {
  const req = session.request(grpcHeaders(path, extra));
  const result = h2collect(req);
  if (body) req.end(body);
  else req.end();
  return guard(result, `the response to ${path}`);
}

/** The grpc-status of a response: in its trailers, or in its headers when trailers-only. */
function statusOf(r: H2Response): string | undefined {
  const s = r.trailers?.['grpc-status'] ?? r.headers['grpc-status'];
  return Array.isArray(s) ? s[0] : s;
}

// ---------------------------------------------------------------- raw socket client

interface RawFrame {
  type: number;
  flags: number;
  stream: number;
  payload: Buffer;
}

/** A TCP connection speaking HTTP/2 frames we build by hand; it records every frame received. */
class RawConnection {
  readonly frames: RawFrame[] = [];
  closed = false;
  private inbox = Buffer.alloc(0);
  private readonly hpack = new HpackDecoder();

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.inbox = Buffer.concat([this.inbox, chunk]);
      while (this.inbox.length >= FRAME_HEADER_BYTES) {
        const length = this.inbox.readUIntBE(0, 3);
        if (this.inbox.length < FRAME_HEADER_BYTES + length) break;
        this.frames.push({
          type: this.inbox[3]!,
          flags: this.inbox[4]!,
          stream: this.inbox.readUInt32BE(5) & 0x7fffffff,
          payload: Buffer.from(this.inbox.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + length)),
        });
        this.inbox = this.inbox.subarray(FRAME_HEADER_BYTES + length);
      }
    });
    // The server may reset rather than close (it destroys a socket it has given up on).
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
    });
  }

  static async open(t: TestContext, server: TestServer): Promise<RawConnection> {
    const socket = net.connect(server.port, '127.0.0.1');
    cleanups(t)(() => socket.destroy());
    await guard(once(socket, 'connect'), 'the raw connection');
    socket.setNoDelay(true);
    return new RawConnection(socket);
  }

  /** Preface and an empty (or given) SETTINGS frame: a client's side of the handshake. */
  static async handshake(
    t: TestContext,
    server: TestServer,
    settings: [number, number][] = [],
  ): Promise<RawConnection> {
    const c = await RawConnection.open(t, server);
    c.write(PREFACE, settingsFrame(settings));
    await c.waitFor((f) => f.type === FrameType.SETTINGS && !(f.flags & Flag.ACK), 'the server SETTINGS');
    c.write(frame(FrameType.SETTINGS, Flag.ACK, 0, Buffer.alloc(0)));
    return c;
  }

  write(...bufs: Buffer[]): void {
    this.socket.write(Buffer.concat(bufs));
  }

  async waitFor(pred: (f: RawFrame) => boolean, what: string): Promise<RawFrame> {
    let found: RawFrame | undefined;
    await until(() => {
      found = this.frames.find(pred);
      return found !== undefined || this.closed;
    }, what);
    if (!found) throw new Error(`the connection closed before ${what}`);
    return found;
  }

  async waitClosed(): Promise<void> {
    await until(() => this.closed, 'the server to close the connection');
  }

  /** A round trip: everything the server queued before our PING arrives before its ACK. */
  async sync(): Promise<void> {
    const payload = Buffer.from(String(Math.random()).slice(2, 10).padEnd(8, '0'));
    this.write(frame(FrameType.PING, 0, 0, payload));
    await this.waitFor(
      (f) => f.type === FrameType.PING && (f.flags & Flag.ACK) !== 0 && f.payload.equals(payload),
      'the PING ACK',
    );
  }

  /** Like sync(), but a connection the server closes instead of answering is fine too. */
  async settle(): Promise<void> {
    try {
      await this.sync();
    } catch (err) {
      if (!this.closed) throw err;
    }
  }

  goaway(): { lastStream: number; code: number; debug: string } | null {
    const f = this.frames.find((x) => x.type === FrameType.GOAWAY);
    if (!f) return null;
    return {
      lastStream: f.payload.readUInt32BE(0) & 0x7fffffff,
      code: f.payload.readUInt32BE(4),
      debug: f.payload.subarray(8).toString(),
    };
  }

  /** Decodes the HEADERS frames of a stream, in order (the server never sends CONTINUATION). */
  headerBlocks(stream: number): { fields: Map<string, string>; endStream: boolean }[] {
    return this.frames
      .filter((f) => f.type === FrameType.HEADERS && f.stream === stream)
      .map((f) => {
        const fields = new Map<string, string>();
        this.hpack.decode(f.payload, (n, v) => fields.set(n, v));
        return { fields, endStream: (f.flags & Flag.END_STREAM) !== 0 };
      });
  }

  dataOf(stream: number): Buffer {
    return Buffer.concat(
      this.frames.filter((f) => f.type === FrameType.DATA && f.stream === stream).map((f) => f.payload),
    );
  }

  streamEnded(stream: number): boolean {
    return this.frames.some(
      (f) =>
        f.stream === stream &&
        ((f.type === FrameType.HEADERS && (f.flags & Flag.END_STREAM) !== 0) ||
          f.type === FrameType.RST_STREAM),
    );
  }
}

function requestBlock(path: string, extra: [string, string][] = []): Buffer {
  return Buffer.from([
    ...indexedField(3), // :method POST
    ...indexedField(6), // :scheme http
    ...literalField(4, ':path', path),
    ...literalField(1, ':authority', 'raw.test'),
    ...literalField(31, 'content-type', 'application/grpc'),
    ...literalField(0, 'te', 'trailers'),
    ...extra.flatMap(([n, v]) => literalField(0, n, v)),
  ]);
}

function headersFrame(stream: number, block: Buffer, flags: number = Flag.END_HEADERS): Buffer {
  return frame(FrameType.HEADERS, flags, stream, block);
}

function dataFrame(stream: number, payload: Buffer, flags: number = 0): Buffer {
  return frame(FrameType.DATA, flags, stream, payload);
}

// ================================================================ tests

describe('gRPC server: the four call shapes with grpc-js', { timeout: 60_000 }, () => {
  test('unary echo; metadata, host and peer are visible to the handler', async (t) => {
    let seen: GrpcCall | undefined;
    const server = await startServer(t, {
      Unary: (call, cb) => {
        seen = call;
        cb(null, Buffer.concat([Buffer.from('echo:'), call.request as Buffer]));
      },
    });
    const client = grpcClient(t, server);
    const md = new grpc.Metadata();
    md.set('x-test', 'hello');
    md.set('x-other', 'world');
    const reply = await unaryCall(client, PATH.unary, Buffer.from('ping'), md);
    assert.equal(reply.toString(), 'echo:ping');
    assert.ok(seen);
    assert.deepEqual(seen.metadata.get('x-test'), ['hello']);
    assert.deepEqual(seen.metadata.get('X-Test'), ['hello'], 'metadata keys are case-insensitive');
    assert.deepEqual(seen.metadata.get('x-other'), ['world']);
    assert.deepEqual(seen.metadata.get('x-absent'), []);
    assert.equal(seen.getHost(), server.address);
    assert.match(seen.getPeer(), /^127\.0\.0\.1:\d+$/);
    assert.equal(seen.cancelled, false);
  });

  test('unary: empty request and empty reply', async (t) => {
    const server = await startServer(t, { Unary: echoUnary });
    const client = grpcClient(t, server);
    assert.equal((await unaryCall(client, PATH.unary, Buffer.alloc(0))).length, 0);
  });

  test('server streaming: every message in order, then OK', async (t) => {
    const server = await startServer(t, {
      ServerStream: (call) => {
        const n = Number((call.request as Buffer).toString());
        for (let i = 0; i < n; i++) call.write(Buffer.from(`message ${i}`));
        call.end();
      },
    });
    const client = grpcClient(t, server);
    const outcome = await guard(
      collect(client.makeServerStreamRequest(PATH.serverStream, identity, identity, Buffer.from('1000'))),
      'the server stream',
    );
    assert.equal(outcome.error, null);
    assert.equal(outcome.status.code, grpc.status.OK);
    assert.equal(outcome.messages.length, 1000);
    outcome.messages.forEach((m, i) => {
      assert.equal(m.toString(), `message ${i}`);
    });
  });

  test('server streaming with no messages: a trailers-only OK', async (t) => {
    const server = await startServer(t, { ServerStream: (call) => call.end() });
    const client = grpcClient(t, server);
    const outcome = await guard(
      collect(client.makeServerStreamRequest(PATH.serverStream, identity, identity, Buffer.from('x'))),
      'the empty stream',
    );
    assert.equal(outcome.status.code, grpc.status.OK);
    assert.equal(outcome.messages.length, 0);
  });

  test('client streaming: the handler sees every message, then end, and replies once', async (t) => {
    const server = await startServer(t, {
      ClientStream: (call, cb) => {
        const parts: string[] = [];
        call.on('data', (m: Buffer) => parts.push(m.toString()));
        call.on('end', () => cb(null, Buffer.from(parts.join(','))));
      },
    });
    const client = grpcClient(t, server);
    const reply = await guard(
      new Promise<Buffer>((resolve, reject) => {
        const call = client.makeClientStreamRequest(PATH.clientStream, identity, identity, (err, value) =>
          err ? reject(err) : resolve(value!),
        );
        for (let i = 0; i < 50; i++) call.write(Buffer.from(String(i)));
        call.end();
      }),
      'the client stream',
    );
    assert.equal(reply.toString(), Array.from({ length: 50 }, (_, i) => i).join(','));
  });

  test('client streaming: a reply before the client has finished sending still arrives', async (t) => {
    const server = await startServer(t, {
      ClientStream: (call, cb) => {
        call.once('data', (m: Buffer) => cb(null, Buffer.concat([Buffer.from('first:'), m])));
      },
    });
    const client = grpcClient(t, server);
    const reply = await guard(
      new Promise<Buffer>((resolve, reject) => {
        const call = client.makeClientStreamRequest(PATH.clientStream, identity, identity, (err, value) =>
          err ? reject(err) : resolve(value!),
        );
        call.write(Buffer.from('a'));
        call.write(Buffer.from('b'));
        // never ended by the client: the server answers and resets the rest (NO_ERROR)
      }),
      'the early reply',
    );
    assert.equal(reply.toString(), 'first:a');
  });

  test('bidi streaming: replies interleave with requests; end after end', async (t) => {
    const server = await startServer(t, {
      Bidi: (call) => {
        call.on('data', (m: Buffer) => call.write(Buffer.from(m.toString().toUpperCase())));
        call.on('end', () => call.end());
      },
    });
    const client = grpcClient(t, server);
    const call = client.makeBidiStreamRequest(PATH.bidi, identity, identity);
    const outcome = collect(call);
    // Ping-pong: each reply arrives before the next request is sent.
    const replies: string[] = [];
    for (let i = 0; i < 20; i++) {
      const got = once(call, 'data') as Promise<[Buffer]>;
      call.write(Buffer.from(`word${i}`));
      const [m] = await guard(got, `reply ${i}`);
      replies.push(m.toString());
    }
    call.end();
    const result = await guard(outcome, 'the bidi call to end');
    assert.equal(result.status.code, grpc.status.OK);
    assert.deepEqual(
      replies,
      Array.from({ length: 20 }, (_, i) => `WORD${i}`),
    );
  });

  test('metadata larger than one frame arrives through CONTINUATION frames', async (t) => {
    const server = await startServer(t, {
      Unary: (call, cb) => cb(null, Buffer.from(call.metadata.get('x-big')[0] ?? '')),
    });
    const client = grpcClient(t, server);
    const md = new grpc.Metadata();
    const big = 'abcdefghijklmnopqrstuvwxyz'.repeat(1500); // 39 000 bytes > 16 384
    md.set('x-big', big);
    const reply = await unaryCall(client, PATH.unary, Buffer.from('x'), md);
    assert.equal(reply.toString(), big);
  });

  test('500 concurrent unary calls over one connection all succeed', async (t) => {
    const server = await startServer(t, {
      Unary: (call, cb) => {
        // Half answer at once, half on a later turn, so replies interleave.
        const req = call.request as Buffer;
        const reply = Buffer.concat([Buffer.from('re:'), req]);
        if (req[req.length - 1]! % 2 === 0) cb(null, reply);
        else setImmediate(() => cb(null, reply));
      },
    });
    const client = grpcClient(t, server);
    const replies = await guard(
      Promise.all(
        Array.from({ length: 500 }, (_, i) => unaryCall(client, PATH.unary, Buffer.from(`call-${i}`))),
      ),
      '500 replies',
    );
    replies.forEach((r, i) => {
      assert.equal(r.toString(), `re:call-${i}`);
    });
  });
});

describe('gRPC server: statuses and errors', { timeout: 60_000 }, () => {
  test('a handler error: code and message reach the client', async (t) => {
    const server = await startServer(t, {
      Unary: (_call, cb) => cb({ code: grpc.status.NOT_FOUND, details: 'no such thing' }),
    });
    const client = grpcClient(t, server);
    await expectStatus(
      unaryCall(client, PATH.unary, Buffer.from('x')),
      grpc.status.NOT_FOUND,
      'no such thing',
    );
  });

  test('a message with non-ASCII and % characters is percent-encoded and decodes back intact', async (t) => {
    const message = 'Grüße, 100% ✓ — "quoted"\ttab\nnewline %41 ümlaut 日本';
    const server = await startServer(t, {
      Unary: (_call, cb) => cb({ code: grpc.status.FAILED_PRECONDITION, details: message }),
    });
    const client = grpcClient(t, server);
    await expectStatus(
      unaryCall(client, PATH.unary, Buffer.from('x')),
      grpc.status.FAILED_PRECONDITION,
      message,
    );
    // On the wire (gRPC over HTTP/2, "Responses"): printable ASCII except '%' as is, the rest %XX.
    const session = await h2session(t, server);
    const r = await h2call(session, PATH.unary, grpcFrame(Buffer.from('x')));
    const wire = r.headers['grpc-message'];
    assert.equal(typeof wire, 'string');
    assert.match(wire as string, /^[\x20-\x7e]*$/);
    assert.ok(
      (wire as string).startsWith(
        'Gr%C3%BC%C3%9Fe, 100%25 %E2%9C%93 %E2%80%94 "quoted"%09tab%0Anewline %2541',
      ),
    );
    assert.equal(decodeURIComponent(wire as string), message);
  });

  test('a long non-ASCII message does not break the connection (its trailers must fit the peer frame size)', async (t) => {
    const message = '✓'.repeat(3000);
    const server = await startServer(t, {
      Unary: (_call, cb) => cb({ code: grpc.status.FAILED_PRECONDITION, details: message }),
    });
    const client = grpcClient(t, server);
    // The deadline only keeps this test from hanging when the bug is present.
    await expectStatus(
      unaryCall(client, PATH.unary, Buffer.from('x'), new grpc.Metadata(), { deadline: Date.now() + 5000 }),
      grpc.status.FAILED_PRECONDITION,
      /^✓+$/,
    );
  });

  test('trailers-only response when nothing was sent; trailers after data otherwise', async (t) => {
    const server = await startServer(t, {
      Unary: (_call, cb) => cb({ code: grpc.status.PERMISSION_DENIED, details: 'nope' }),
      ServerStream: (call) => {
        call.write(Buffer.from('one'));
        call.emit('error', { code: grpc.status.ABORTED, details: 'after one' });
      },
    });
    const session = await h2session(t, server);
    const only = await h2call(session, PATH.unary, grpcFrame(Buffer.from('x')));
    assert.equal(only.headers[':status'], 200);
    assert.equal(only.headers['content-type'], 'application/grpc');
    assert.equal(only.headers['grpc-status'], String(grpc.status.PERMISSION_DENIED));
    assert.equal(only.headers['grpc-message'], 'nope');
    assert.ok(only.headerFlags & Flag.END_STREAM, 'one HEADERS frame with END_STREAM');
    assert.equal(only.trailers, null);
    assert.equal(only.data.length, 0);

    const streamed = await h2call(session, PATH.serverStream, grpcFrame(Buffer.from('x')));
    assert.equal(streamed.headers[':status'], 200);
    assert.equal(streamed.headers['grpc-status'], undefined, 'no status in the leading headers');
    assert.equal(streamed.headerFlags & Flag.END_STREAM, 0);
    assert.deepEqual(parseGrpcFrames(streamed.data).map(String), ['one']);
    assert.equal(streamed.trailers?.['grpc-status'], String(grpc.status.ABORTED));
    assert.equal(streamed.trailers?.['grpc-message'], 'after one');

    // grpc-js sees the same: the message, then the error.
    const client = grpcClient(t, server);
    const outcome = await guard(
      collect(client.makeServerStreamRequest(PATH.serverStream, identity, identity, Buffer.from('x'))),
      'the failing stream',
    );
    assert.deepEqual(outcome.messages.map(String), ['one']);
    assert.equal(outcome.error?.code, grpc.status.ABORTED);
    assert.equal(outcome.error?.details, 'after one');
  });

  test('a handler that throws gives UNKNOWN with the thrown message', async (t) => {
    const server = await startServer(t, {
      Unary: () => {
        throw new Error('handler blew up');
      },
      ServerStream: () => {
        throw new Error('stream handler blew up');
      },
    });
    const client = grpcClient(t, server);
    await expectStatus(
      unaryCall(client, PATH.unary, Buffer.from('x')),
      grpc.status.UNKNOWN,
      /handler blew up/,
    );
    const outcome = await guard(
      collect(client.makeServerStreamRequest(PATH.serverStream, identity, identity, Buffer.from('x'))),
      'the throwing stream',
    );
    assert.equal(outcome.error?.code, grpc.status.UNKNOWN);
    assert.match(outcome.error?.details ?? '', /stream handler blew up/);
    // The server still serves.
    await expectStatus(unaryCall(client, PATH.unary, Buffer.from('x')), grpc.status.UNKNOWN);
  });

  test('an error without a valid code gives UNKNOWN; only the first status counts', async (t) => {
    const server = await startServer(t, {
      Unary: (call, cb) => {
        const which = (call.request as Buffer).toString();
        if (which === 'plain') cb(new Error('plain error'));
        else if (which === 'bogus') cb({ code: 99, details: 'bogus code' });
        else {
          cb({ code: grpc.status.ALREADY_EXISTS, details: 'first' });
          cb(null, Buffer.from('second'));
          cb({ code: grpc.status.INTERNAL, details: 'third' });
        }
      },
    });
    const client = grpcClient(t, server);
    await expectStatus(
      unaryCall(client, PATH.unary, Buffer.from('plain')),
      grpc.status.UNKNOWN,
      'plain error',
    );
    await expectStatus(
      unaryCall(client, PATH.unary, Buffer.from('bogus')),
      grpc.status.UNKNOWN,
      'bogus code',
    );
    await expectStatus(
      unaryCall(client, PATH.unary, Buffer.from('twice')),
      grpc.status.ALREADY_EXISTS,
      'first',
    );
  });

  test('an unknown method, or one in the service without a handler, is UNIMPLEMENTED', async (t) => {
    const server = await startServer(t, { Unary: echoUnary });
    const client = grpcClient(t, server);
    await expectStatus(
      unaryCall(client, PATH.unknown, Buffer.from('x')),
      grpc.status.UNIMPLEMENTED,
      /NoSuchMethod/,
    );
    await expectStatus(unaryCall(client, PATH.missing, Buffer.from('x')), grpc.status.UNIMPLEMENTED);
    // A streaming call to an unknown method: the client may keep writing; it gets the status.
    const call = client.makeBidiStreamRequest(PATH.unknown, identity, identity);
    const outcome = collect(call);
    call.write(Buffer.from('a'));
    call.write(Buffer.from('b'));
    const result = await guard(outcome, 'the unknown bidi call');
    assert.equal(result.error?.code, grpc.status.UNIMPLEMENTED);
    // ... and the connection is fine afterwards.
    assert.equal((await unaryCall(client, PATH.unary, Buffer.from('ok'))).toString(), 'ok');
  });

  test('a request that is not gRPC gets HTTP 415', async (t) => {
    const server = await startServer(t, { Unary: echoUnary });
    const session = await h2session(t, server);
    const plain = await h2call(session, PATH.unary, Buffer.from('hello'), { 'content-type': 'text/plain' });
    assert.equal(plain.headers[':status'], 415);
    const none = await h2call(session, PATH.unary, null, { 'content-type': undefined });
    assert.equal(none.headers[':status'], 415);
    // The session stays usable for gRPC.
    const ok = await h2call(session, PATH.unary, grpcFrame(Buffer.from('fine')));
    assert.equal(statusOf(ok), '0');
    assert.deepEqual(parseGrpcFrames(ok.data).map(String), ['fine']);
    // application/grpc+proto is gRPC too.
    const proto = await h2call(session, PATH.unary, grpcFrame(Buffer.from('p')), {
      'content-type': 'application/grpc+proto',
    });
    assert.equal(statusOf(proto), '0');
  });

  test('malformed unary requests: none, two, or a cut message; a failing deserializer', async (t) => {
    let invoked = 0;
    const server = await startServer(t, {
      Unary: (call, cb) => {
        invoked++;
        echoUnary(call, cb);
      },
      Strict: echoUnary,
    });
    const session = await h2session(t, server);
    const none = await h2call(session, PATH.unary, null);
    assert.equal(statusOf(none), String(grpc.status.UNIMPLEMENTED));
    const two = await h2call(
      session,
      PATH.unary,
      Buffer.concat([grpcFrame(Buffer.from('a')), grpcFrame(Buffer.from('b'))]),
    );
    assert.equal(statusOf(two), String(grpc.status.UNIMPLEMENTED));
    const cut = await h2call(session, PATH.unary, grpcFrame(Buffer.from('abcdef')).subarray(0, 8));
    assert.equal(statusOf(cut), String(grpc.status.INTERNAL));
    const bad = await h2call(session, PATH.strict, grpcFrame(Buffer.from([0xff, 1])));
    assert.equal(statusOf(bad), String(grpc.status.INTERNAL));
    assert.equal(invoked, 0, 'the handler never saw a malformed request');
    const good = await h2call(session, PATH.strict, grpcFrame(Buffer.from([1, 2])));
    assert.equal(statusOf(good), '0');
  });
});

describe('gRPC server: message sizes and flow control', { timeout: 120_000 }, () => {
  test('a 3 MiB response and a 1.5 MiB request arrive intact', async (t) => {
    const big = pattern(3 * 1024 * 1024, 1);
    const server = await startServer(t, {
      Unary: (call, cb) => {
        const req = call.request as Buffer;
        cb(null, req.length === 1 ? big : req);
      },
    });
    const client = grpcClient(t, server, {
      'grpc.max_receive_message_length': 8 * 1024 * 1024,
      'grpc.max_send_message_length': 8 * 1024 * 1024,
    });
    const reply = await guard(unaryCall(client, PATH.unary, Buffer.from('x')), 'the 3 MiB reply');
    assert.equal(reply.length, big.length);
    assert.ok(reply.equals(big));
    const request = pattern(1.5 * 1024 * 1024 + 7, 2);
    const echoed = await guard(unaryCall(client, PATH.unary, request), 'the 1.5 MiB echo');
    assert.ok(echoed.equals(request));
  });

  test('large messages both ways on a bidi stream, several in flight', async (t) => {
    const server = await startServer(t, {
      Bidi: (call) => {
        call.on('data', (m: Buffer) => call.write(m));
        call.on('end', () => call.end());
      },
    });
    const client = grpcClient(t, server);
    const call = client.makeBidiStreamRequest(PATH.bidi, identity, identity);
    const outcome = collect(call);
    const sent = Array.from({ length: 6 }, (_, i) => pattern(700_000 + i, 10 + i));
    for (const m of sent) call.write(m);
    call.end();
    const result = await guard(outcome, 'the echoed stream');
    assert.equal(result.status.code, grpc.status.OK);
    assert.equal(result.messages.length, sent.length);
    result.messages.forEach((m, i) => {
      assert.ok(m.equals(sent[i]!), `message ${i}`);
    });
  });

  test('a request over maxReceiveMessageBytes is RESOURCE_EXHAUSTED; one at the limit is fine', async (t) => {
    const server = await startServer(t, { Unary: echoUnary }, { maxReceiveMessageBytes: 1024 });
    const client = grpcClient(t, server);
    assert.equal((await unaryCall(client, PATH.unary, Buffer.alloc(1024, 1))).length, 1024);
    await expectStatus(unaryCall(client, PATH.unary, Buffer.alloc(1025, 1)), grpc.status.RESOURCE_EXHAUSTED);
    await expectStatus(
      unaryCall(client, PATH.unary, Buffer.alloc(2 * 1024 * 1024, 1)),
      grpc.status.RESOURCE_EXHAUSTED,
      /larger than max/,
    );
    // The connection is still good.
    assert.equal((await unaryCall(client, PATH.unary, Buffer.from('ok'))).toString(), 'ok');
  });

  test('a compressed message (flag byte 1) is UNIMPLEMENTED', async (t) => {
    let invoked = false;
    const server = await startServer(t, {
      Unary: (call, cb) => {
        invoked = true;
        echoUnary(call, cb);
      },
    });
    const session = await h2session(t, server);
    const r = await h2call(session, PATH.unary, grpcFrame(Buffer.from('abc'), 1), {
      'grpc-encoding': 'gzip',
    });
    assert.equal(statusOf(r), String(grpc.status.UNIMPLEMENTED));
    assert.equal(invoked, false);
    // And the response advertised identity as all it accepts.
    const ok = await h2call(session, PATH.unary, grpcFrame(Buffer.from('abc')));
    assert.equal(ok.headers['grpc-accept-encoding'], 'identity');
  });

  test('a reader that stalls: write() returns false, drain fires later, every byte arrives', async (t) => {
    const count = 200;
    const size = 32 * 1024; // 6.25 MiB in all
    let sawFalse = false;
    let drains = 0;
    const blocked = deferred();
    const server = await startServer(t, {
      ServerStream: (call) => {
        let i = 0;
        const pump = () => {
          while (i < count) {
            const ok = call.write(pattern(size, i));
            i++;
            if (!ok) {
              sawFalse = true;
              blocked.resolve();
              call.once('drain', () => {
                drains++;
                pump();
              });
              return;
            }
          }
          call.end();
        };
        pump();
      },
    });
    const session = await h2session(t, server);
    const req = session.request(grpcHeaders(PATH.serverStream));
    req.on('error', () => {});
    req.end(grpcFrame(Buffer.from('go')));
    // No 'data' listener yet: the stream is paused, the client's window runs out.
    await guard(blocked.promise, 'write() to return false');
    assert.ok(sawFalse);
    let trailers: http2.IncomingHttpHeaders | null = null;
    req.on('trailers', (h) => {
      trailers = h;
    });
    const chunks: Buffer[] = [];
    let n = 0;
    const done = new Promise<void>((resolve) => req.on('close', resolve));
    req.on('data', (c: Buffer) => {
      chunks.push(c);
      // Read slowly: stop now and then, go on a little later.
      if (++n % 8 === 0) {
        req.pause();
        setTimeout(() => req.resume(), 1);
      }
    });
    await guard(done, 'the whole stream');
    const messages = parseGrpcFrames(Buffer.concat(chunks));
    assert.equal(messages.length, count);
    messages.forEach((m, i) => {
      assert.ok(m.equals(pattern(size, i)), `message ${i}`);
    });
    assert.equal((trailers as http2.IncomingHttpHeaders | null)?.['grpc-status'], '0');
    assert.ok(drains >= 1, 'drain fired');
  });

  test('write() pushes back even when the client window is huge (a synchronous write loop stays bounded)', async (t) => {
    const result = deferred<{ written: number; sawFalse: boolean }>();
    const server = await startServer(t, {
      ServerStream: (call) => {
        const chunk = Buffer.alloc(64 * 1024, 7);
        let written = 0;
        let sawFalse = false;
        while (written < 32 * 1024 * 1024) {
          written += chunk.length;
          if (!call.write(chunk)) {
            sawFalse = true;
            break;
          }
        }
        result.resolve({ written, sawFalse });
        call.end();
      },
    });
    const max = 2 ** 31 - 1;
    const session = await h2session(t, server, { settings: { initialWindowSize: max } });
    session.setLocalWindowSize(max);
    const r = h2call(session, PATH.serverStream, grpcFrame(Buffer.from('go')));
    const { written, sawFalse } = await guard(result.promise, 'the write loop');
    await guard(r, 'the stream to finish');
    assert.ok(sawFalse, `write() never returned false in ${written} bytes`);
    assert.ok(written <= 8 * 1024 * 1024, `write() returned false only after ${written} bytes`);
  });

  test('pause()/resume() on a bidi call: held messages come in order after resume, then end', async (t) => {
    let serverCall: GrpcCall | undefined;
    const received: string[] = [];
    let endedAfter = -1;
    const server = await startServer(t, {
      Bidi: (call) => {
        serverCall = call;
        call.on('data', (m: Buffer) => {
          received.push(m.toString());
          if (received.length === 1) call.pause();
        });
        call.on('end', () => {
          endedAfter = received.length;
          for (const r of received) call.write(Buffer.from(r));
          call.end();
        });
      },
    });
    const client = grpcClient(t, server);
    const call = client.makeBidiStreamRequest(PATH.bidi, identity, identity);
    const outcome = collect(call);
    const sent = Array.from({ length: 20 }, (_, i) => `m${i}`);
    for (const m of sent) call.write(Buffer.from(m));
    call.end();
    // Wait until the server holds all the rest and the end (GrpcCall's own fields show it).
    await until(
      () => serverCall !== undefined && serverCall.backlog.length === 19 && serverCall.endAfterBacklog,
      'the paused call to hold 19 messages and the end',
    );
    assert.deepEqual(received, ['m0'], 'nothing delivered while paused');
    assert.equal(endedAfter, -1, "no 'end' while paused");
    serverCall!.resume();
    assert.deepEqual(received, sent);
    assert.equal(endedAfter, 20, "'end' after the held messages");
    const result = await guard(outcome, 'the bidi call');
    assert.equal(result.status.code, grpc.status.OK);
    assert.deepEqual(result.messages.map(String), sent);
  });

  test('a paused call holds the client back by flow control, then gets everything on resume', async (t) => {
    let serverCall: GrpcCall | undefined;
    const received: Buffer[] = [];
    const server = await startServer(t, {
      Bidi: (call) => {
        serverCall = call;
        call.on('data', (m: Buffer) => {
          received.push(m);
          if (received.length === 1) call.pause();
        });
        call.on('end', () => {
          call.write(Buffer.from(String(received.length)));
          call.end();
        });
      },
    });
    const client = grpcClient(t, server);
    const call = client.makeBidiStreamRequest(PATH.bidi, identity, identity);
    const outcome = collect(call);
    const size = 64 * 1024;
    const total = 40; // 2.5 MiB, well past the 1 MiB stream window
    for (let i = 0; i < total; i++) call.write(pattern(size, i));
    call.end();
    // The 1 MiB stream window lets about 16 messages through, the first delivered, the rest held.
    await until(
      () => serverCall !== undefined && serverCall.backlog.length >= 14,
      'the window to fill while paused',
    );
    // Give a client that ignored the window every chance to show it (a failure guard, not a timing).
    await new Promise((r) => setTimeout(r, 200));
    const held = received.length + serverCall!.backlog.length;
    assert.ok(held <= 16, `${held} messages of 64 KiB arrived while paused (stream window 1 MiB)`);
    assert.ok(serverCall!.unacked <= 1024 * 1024);
    serverCall!.resume();
    const result = await guard(outcome, 'the rest after resume');
    assert.equal(result.status.code, grpc.status.OK);
    assert.deepEqual(result.messages.map(String), [String(total)]);
    assert.equal(received.length, total);
    received.forEach((m, i) => {
      assert.ok(m.equals(pattern(size, i)), `message ${i}`);
    });
  });

  test('the server never sends past the stream window; SETTINGS and WINDOW_UPDATE open it', async (t) => {
    const server = await startServer(t, { Unary: echoUnary });
    // A stream window of 10 bytes.
    const c = await RawConnection.handshake(t, server, [[Setting.INITIAL_WINDOW_SIZE, 10]]);
    const body = pattern(100, 3);
    c.write(headersFrame(1, requestBlock(PATH.unary)), dataFrame(1, grpcFrame(body), Flag.END_STREAM));
    await c.waitFor((f) => f.type === FrameType.DATA && f.stream === 1, 'the first DATA');
    await c.sync();
    assert.equal(c.dataOf(1).length, 10, 'exactly the 10-byte window');
    assert.equal(c.streamEnded(1), false);
    // §6.9.2: raising SETTINGS_INITIAL_WINDOW_SIZE raises open streams' windows by the difference.
    c.write(settingsFrame([[Setting.INITIAL_WINDOW_SIZE, 50]]));
    await c.sync();
    assert.equal(c.dataOf(1).length, 50);
    assert.equal(c.streamEnded(1), false);
    c.write(windowUpdateFrame(1, 1000));
    await c.waitFor(
      (f) => f.type === FrameType.HEADERS && f.stream === 1 && (f.flags & Flag.END_STREAM) !== 0,
      'trailers',
    );
    assert.ok(c.dataOf(1).equals(grpcFrame(body)));
    const blocks = c.headerBlocks(1);
    assert.equal(blocks.length, 2);
    assert.equal(blocks[0]!.fields.get(':status'), '200');
    assert.equal(blocks[1]!.fields.get('grpc-status'), '0');
    assert.equal(c.goaway(), null);
  });

  test('the server never sends past the connection window, and splits DATA at the max frame size', async (t) => {
    const size = 100_000;
    const server = await startServer(t, {
      ServerStream: (call) => call.write(pattern(size, 5)) || undefined,
    });
    // Stream windows of 1 MiB, the connection window left at 65 535.
    const c = await RawConnection.handshake(t, server, [[Setting.INITIAL_WINDOW_SIZE, 1 << 20]]);
    c.write(
      headersFrame(1, requestBlock(PATH.serverStream)),
      dataFrame(1, grpcFrame(Buffer.from('x')), Flag.END_STREAM),
    );
    await c.waitFor((f) => f.type === FrameType.DATA, 'DATA');
    await c.sync();
    assert.equal(c.dataOf(1).length, 65_535);
    c.write(windowUpdateFrame(0, 1 << 20));
    await until(() => c.dataOf(1).length === size + 5, 'the whole message');
    for (const f of c.frames.filter((x) => x.type === FrameType.DATA))
      assert.ok(f.payload.length <= DEFAULT_MAX_FRAME, `a DATA frame of ${f.payload.length}`);
    assert.ok(c.dataOf(1).equals(grpcFrame(pattern(size, 5))));
  });

  test('a larger SETTINGS_MAX_FRAME_SIZE from the client is used', async (t) => {
    const size = 200_000;
    const server = await startServer(t, { Unary: (_call, cb) => cb(null, pattern(size, 9)) });
    const c = await RawConnection.handshake(t, server, [
      [Setting.INITIAL_WINDOW_SIZE, 1 << 20],
      [Setting.MAX_FRAME_SIZE, 65_536],
    ]);
    c.write(windowUpdateFrame(0, 1 << 20));
    c.write(
      headersFrame(1, requestBlock(PATH.unary)),
      dataFrame(1, grpcFrame(Buffer.from('x')), Flag.END_STREAM),
    );
    await c.waitFor((f) => f.type === FrameType.HEADERS && (f.flags & Flag.END_STREAM) !== 0, 'trailers');
    const sizes = c.frames.filter((x) => x.type === FrameType.DATA).map((f) => f.payload.length);
    assert.ok(Math.max(...sizes) > DEFAULT_MAX_FRAME && Math.max(...sizes) <= 65_536, `frames ${sizes}`);
    assert.ok(c.dataOf(1).equals(grpcFrame(pattern(size, 9))));
  });

  test('a client that overruns a paused stream window gets that stream reset (FLOW_CONTROL_ERROR)', async (t) => {
    const server = await startServer(t, { Bidi: (call) => call.pause() });
    const c = await RawConnection.handshake(t, server);
    c.write(headersFrame(1, requestBlock(PATH.bidi)));
    // The server's stream window is 1 MiB; send 1 MiB + 16 KiB of one 2 MiB message (under the
    // 4 MiB limit) without waiting for window updates.
    const chunk = Buffer.alloc(16 * 1024);
    chunk.writeUInt32BE(2 * 1024 * 1024, 1);
    c.write(dataFrame(1, chunk));
    chunk.fill(0);
    for (let i = 1; i < 65; i++) c.write(dataFrame(1, chunk));
    const rst = await c.waitFor((f) => f.type === FrameType.RST_STREAM && f.stream === 1, 'RST_STREAM');
    assert.equal(rst.payload.readUInt32BE(0), H2Error.FLOW_CONTROL_ERROR);
    // A stream error, not a connection error.
    await c.sync();
    assert.equal(c.goaway(), null);
  });
});

describe('gRPC server: cancellation and deadlines', { timeout: 60_000 }, () => {
  function watchCall(call: GrpcCall): { events: string[]; closed: Promise<void> } {
    const events: string[] = [];
    const closed = deferred();
    call.on('cancelled', () => events.push('cancelled'));
    call.on('close', () => {
      events.push('close');
      closed.resolve();
    });
    return { events, closed: closed.promise };
  }

  test("grpc-js call.cancel() on a bidi call: the server call emits 'cancelled' and 'close'", async (t) => {
    let watched: { events: string[]; closed: Promise<void> } | undefined;
    let serverCall: GrpcCall | undefined;
    const gotData = deferred();
    const server = await startServer(t, {
      Bidi: (call) => {
        serverCall = call;
        watched = watchCall(call);
        call.on('data', () => gotData.resolve());
      },
    });
    const client = grpcClient(t, server);
    const call = client.makeBidiStreamRequest(PATH.bidi, identity, identity);
    const outcome = collect(call);
    call.write(Buffer.from('hello'));
    await guard(gotData.promise, 'the first message');
    call.cancel();
    const result = await guard(outcome, 'the cancelled call');
    assert.equal(result.error?.code, grpc.status.CANCELLED);
    await guard(watched!.closed, "the server call's close");
    assert.deepEqual(watched!.events, ['cancelled', 'close']);
    assert.equal(serverCall!.cancelled, true);
    assert.equal(serverCall!.write(Buffer.from('late')), false, 'writes after cancel are refused');
  });

  test("a raw RST_STREAM(CANCEL) on a server stream: 'cancelled' then 'close'", async (t) => {
    let watched: { events: string[]; closed: Promise<void> } | undefined;
    let serverCall: GrpcCall | undefined;
    const server = await startServer(t, {
      ServerStream: (call) => {
        serverCall = call;
        watched = watchCall(call);
        call.write(Buffer.from('first'));
      },
    });
    const session = await h2session(t, server);
    const req = session.request(grpcHeaders(PATH.serverStream));
    req.on('error', () => {});
    req.end(grpcFrame(Buffer.from('x')));
    await guard(once(req, 'data'), 'the first message');
    req.close(http2.constants.NGHTTP2_CANCEL);
    await guard(
      until(() => watched !== undefined, 'the handler'),
      'the handler',
    );
    await guard(watched!.closed, "the server call's close");
    assert.deepEqual(watched!.events, ['cancelled', 'close']);
    assert.equal(serverCall!.cancelled, true);
  });

  test("the client's connection going away cancels its open calls", async (t) => {
    const watchedCalls: { events: string[]; closed: Promise<void> }[] = [];
    const server = await startServer(t, {
      Bidi: (call) => {
        watchedCalls.push(watchCall(call));
      },
    });
    const session = await h2session(t, server);
    for (let i = 0; i < 3; i++) {
      const req = session.request(grpcHeaders(PATH.bidi));
      req.on('error', () => {});
    }
    await until(() => watchedCalls.length === 3, 'three open calls');
    session.destroy();
    for (const w of watchedCalls) {
      await guard(w.closed, 'the calls to close');
      assert.deepEqual(w.events, ['cancelled', 'close']);
    }
  });

  test("grpc-timeout on a call never answered: DEADLINE_EXCEEDED at the client, 'cancelled' at the server", async (t) => {
    const serverCalls: GrpcCall[] = [];
    const cancelled = deferred();
    const server = await startServer(t, {
      Unary: (call) => {
        serverCalls.push(call);
        call.on('cancelled', () => cancelled.resolve());
      },
    });
    // Raw: only the server's own timer can end this call.
    const session = await h2session(t, server);
    const r = await h2call(session, PATH.unary, grpcFrame(Buffer.from('x')), { 'grpc-timeout': '50m' });
    assert.equal(statusOf(r), String(grpc.status.DEADLINE_EXCEEDED));
    await guard(cancelled.promise, "the server call's 'cancelled'");
    assert.equal(serverCalls[0]!.cancelled, true);
    // A late reply from the handler is ignored.
    serverCalls[0]!.reply(null, Buffer.from('too late'));

    // grpc-js with a deadline.
    const client = grpcClient(t, server);
    const before = serverCalls.length;
    await expectStatus(
      unaryCall(client, PATH.unary, Buffer.from('y'), new grpc.Metadata(), { deadline: Date.now() + 100 }),
      grpc.status.DEADLINE_EXCEEDED,
    );
    await until(
      () => serverCalls.length > before && serverCalls[before]!.cancelled,
      "the second call's cancel",
    );
  });

  test('grpc-timeout units: a call that answers in time is not cancelled', async (t) => {
    const calls: GrpcCall[] = [];
    const server = await startServer(t, {
      Unary: (call, cb) => {
        calls.push(call);
        cb(null, call.request as Buffer);
      },
    });
    const session = await h2session(t, server);
    for (const timeout of ['1H', '10M', '30S', '20000m', '99999999u', '99999999n']) {
      const r = await h2call(session, PATH.unary, grpcFrame(Buffer.from(timeout)), {
        'grpc-timeout': timeout,
      });
      assert.equal(statusOf(r), '0', timeout);
    }
    assert.ok(calls.every((c) => !c.cancelled));
  });
});

describe('gRPC server: raw HTTP/2 details', { timeout: 60_000 }, () => {
  test("the server's SETTINGS, SETTINGS ACK and PING ACK", async (t) => {
    const server = await startServer(t, { Unary: echoUnary }, { maxConcurrentStreams: 77 });
    const c = await RawConnection.handshake(t, server);
    const settings = c.frames.find((f) => f.type === FrameType.SETTINGS && !(f.flags & Flag.ACK))!;
    assert.equal(settings.stream, 0);
    const values = new Map<number, number>();
    for (let i = 0; i < settings.payload.length; i += 6)
      values.set(settings.payload.readUInt16BE(i), settings.payload.readUInt32BE(i + 2));
    assert.equal(values.get(Setting.MAX_CONCURRENT_STREAMS), 77);
    assert.equal(values.get(Setting.INITIAL_WINDOW_SIZE), 1 << 20);
    assert.ok((values.get(Setting.MAX_HEADER_LIST_SIZE) ?? 0) > 0);
    await c.waitFor(
      (f) => f.type === FrameType.SETTINGS && (f.flags & Flag.ACK) !== 0,
      'our SETTINGS acknowledged',
    );
    const ack = c.frames.find((f) => f.type === FrameType.SETTINGS && (f.flags & Flag.ACK) !== 0)!;
    assert.equal(ack.payload.length, 0);
    await c.sync(); // PING answered with the same payload
    assert.equal(c.goaway(), null);
  });

  test('a request trickled one byte per write is parsed the same', async (t) => {
    const server = await startServer(t, { Unary: echoUnary });
    const c = await RawConnection.open(t, server);
    const bytes = Buffer.concat([
      PREFACE,
      settingsFrame([]),
      headersFrame(1, requestBlock(PATH.unary)),
      dataFrame(1, grpcFrame(Buffer.from('trickle')), Flag.END_STREAM),
    ]);
    for (const b of bytes) {
      c.socket.write(Buffer.from([b]));
      await new Promise((r) => setImmediate(r));
    }
    await c.waitFor((f) => f.type === FrameType.HEADERS && (f.flags & Flag.END_STREAM) !== 0, 'trailers');
    assert.deepEqual(parseGrpcFrames(c.dataOf(1)).map(String), ['trickle']);
    assert.equal(c.headerBlocks(1)[1]!.fields.get('grpc-status'), '0');
  });

  test('HEADERS with padding and priority, CONTINUATION, padded DATA, trailers from the client', async (t) => {
    const server = await startServer(t, {
      Unary: echoUnary,
      ClientStream: (call, cb) => {
        const parts: Buffer[] = [];
        call.on('data', (m: Buffer) => parts.push(m));
        call.on('end', () => cb(null, Buffer.concat(parts)));
      },
    });
    const c = await RawConnection.handshake(t, server);
    // Stream 1: PADDED | PRIORITY HEADERS, a padded DATA with END_STREAM.
    const block = requestBlock(PATH.unary);
    const padded = Buffer.concat([Buffer.from([3]), Buffer.from([0, 0, 0, 0, 16]), block, Buffer.alloc(3)]);
    const body = grpcFrame(Buffer.from('padded'));
    const paddedData = Buffer.concat([Buffer.from([4]), body, Buffer.alloc(4)]);
    c.write(
      headersFrame(1, padded, Flag.END_HEADERS | Flag.PADDED | Flag.PRIORITY),
      dataFrame(1, paddedData, Flag.END_STREAM | Flag.PADDED),
    );
    // Stream 3: the header block split over HEADERS and two CONTINUATIONs; the request ends
    // with a trailing HEADERS (END_STREAM) rather than an empty DATA.
    const block3 = requestBlock(PATH.clientStream, [['x-pad', 'p'.repeat(100)]]);
    c.write(
      headersFrame(3, block3.subarray(0, 10), 0),
      frame(FrameType.CONTINUATION, 0, 3, block3.subarray(10, 50)),
      frame(FrameType.CONTINUATION, Flag.END_HEADERS, 3, block3.subarray(50)),
      dataFrame(3, grpcFrame(Buffer.from('con'))),
      dataFrame(3, grpcFrame(Buffer.from('tinued'))),
      headersFrame(3, Buffer.from(literalField(0, 'x-trailer', 'yes')), Flag.END_HEADERS | Flag.END_STREAM),
    );
    for (const stream of [1, 3])
      await c.waitFor(
        (f) => f.type === FrameType.HEADERS && f.stream === stream && (f.flags & Flag.END_STREAM) !== 0,
        `trailers of stream ${stream}`,
      );
    assert.deepEqual(parseGrpcFrames(c.dataOf(1)).map(String), ['padded']);
    assert.deepEqual(parseGrpcFrames(c.dataOf(3)).map(String), ['continued']);
    assert.equal(c.goaway(), null);
  });

  test('streams past maxConcurrentStreams are refused (REFUSED_STREAM), the others go on', async (t) => {
    const server = await startServer(t, { Bidi: () => {} }, { maxConcurrentStreams: 2 });
    const c = await RawConnection.handshake(t, server);
    c.write(headersFrame(1, requestBlock(PATH.bidi)), headersFrame(3, requestBlock(PATH.bidi)));
    c.write(headersFrame(5, requestBlock(PATH.bidi)));
    const rst = await c.waitFor((f) => f.type === FrameType.RST_STREAM, 'RST_STREAM');
    assert.equal(rst.stream, 5);
    assert.equal(rst.payload.readUInt32BE(0), H2Error.REFUSED_STREAM);
    await c.sync();
    assert.equal(c.frames.filter((f) => f.type === FrameType.RST_STREAM).length, 1);
    assert.equal(c.goaway(), null);
  });

  test('no RST_STREAM after the response when the client had already ended its side', async (t) => {
    const server = await startServer(t, { Unary: echoUnary });
    const c = await RawConnection.handshake(t, server);
    c.write(
      headersFrame(1, requestBlock(PATH.unary)),
      dataFrame(1, grpcFrame(Buffer.from('zzz'), 1), Flag.END_STREAM),
    );
    await c.waitFor((f) => f.type === FrameType.HEADERS && (f.flags & Flag.END_STREAM) !== 0, 'trailers');
    await c.sync();
    assert.equal(c.headerBlocks(1)[0]!.fields.get('grpc-status'), String(grpc.status.UNIMPLEMENTED));
    assert.equal(c.frames.filter((f) => f.type === FrameType.RST_STREAM).length, 0);
  });
});

describe('gRPC server: protocol violations end the connection with GOAWAY', { timeout: 60_000 }, () => {
  const violations: { name: string; bytes: () => Buffer[]; code: number; noHandshake?: boolean }[] = [
    {
      name: 'a bad connection preface (HTTP/1.1)',
      bytes: () => [Buffer.from('GET / HTTP/1.1\r\nHost: example\r\n\r\n')],
      code: H2Error.PROTOCOL_ERROR,
      noHandshake: true,
    },
    {
      name: 'DATA on stream 0',
      bytes: () => [dataFrame(0, Buffer.from('abc'))],
      code: H2Error.PROTOCOL_ERROR,
    },
    {
      name: 'a frame over 16 384 bytes',
      bytes: () => [dataFrame(1, Buffer.alloc(DEFAULT_MAX_FRAME + 1))],
      code: H2Error.FRAME_SIZE_ERROR,
    },
    {
      name: 'only the 9-byte header of a frame over 16 384 bytes',
      bytes: () => {
        const h = Buffer.alloc(FRAME_HEADER_BYTES);
        writeFrameHeader(h, 0, 1 << 20, FrameType.HEADERS, Flag.END_HEADERS, 1);
        return [h];
      },
      code: H2Error.FRAME_SIZE_ERROR,
    },
    {
      name: 'garbage HPACK (index 0)',
      bytes: () => [headersFrame(1, Buffer.from([0x80]))],
      code: H2Error.COMPRESSION_ERROR,
    },
    {
      name: 'garbage HPACK (random bytes)',
      bytes: () => [headersFrame(1, Buffer.from('ffffffffffff0102030405', 'hex'))],
      code: H2Error.COMPRESSION_ERROR,
    },
    {
      name: 'garbage HPACK (a truncated string after a valid field)',
      bytes: () => [headersFrame(1, Buffer.from([...indexedField(3), 0x00, 0x7e, 0x61]))],
      code: H2Error.COMPRESSION_ERROR,
    },
    {
      name: 'HEADERS on stream 0',
      bytes: () => [headersFrame(0, requestBlock(PATH.unary))],
      code: H2Error.PROTOCOL_ERROR,
    },
    {
      name: 'a stream id that is even',
      bytes: () => [headersFrame(2, requestBlock(PATH.unary))],
      code: H2Error.PROTOCOL_ERROR,
    },
    {
      name: 'CONTINUATION without HEADERS',
      bytes: () => [frame(FrameType.CONTINUATION, Flag.END_HEADERS, 1, requestBlock(PATH.unary))],
      code: H2Error.PROTOCOL_ERROR,
    },
    {
      name: 'another frame where a CONTINUATION must come',
      bytes: () => [
        headersFrame(1, requestBlock(PATH.unary).subarray(0, 5), 0),
        frame(FrameType.PING, 0, 0, Buffer.alloc(8)),
      ],
      code: H2Error.PROTOCOL_ERROR,
    },
    {
      name: 'a header block over 64 KiB in CONTINUATIONs',
      bytes: () => [
        headersFrame(1, Buffer.alloc(16_000, 0x82), 0),
        ...Array.from({ length: 5 }, () => frame(FrameType.CONTINUATION, 0, 1, Buffer.alloc(16_000, 0x82))),
      ],
      code: H2Error.ENHANCE_YOUR_CALM,
    },
    {
      name: 'HEADERS with more padding than payload',
      bytes: () => [headersFrame(1, Buffer.from([200, 0x82]), Flag.END_HEADERS | Flag.PADDED)],
      code: H2Error.PROTOCOL_ERROR,
    },
    {
      name: 'DATA on a stream never opened',
      bytes: () => [dataFrame(7, grpcFrame(Buffer.from('x')))],
      code: H2Error.PROTOCOL_ERROR,
    },
    {
      name: 'SETTINGS on a stream',
      bytes: () => [frame(FrameType.SETTINGS, 0, 1, Buffer.alloc(0))],
      code: H2Error.PROTOCOL_ERROR,
    },
    {
      name: 'SETTINGS of a length not a multiple of 6',
      bytes: () => [frame(FrameType.SETTINGS, 0, 0, Buffer.alloc(7))],
      code: H2Error.FRAME_SIZE_ERROR,
    },
    {
      name: 'SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1',
      bytes: () => [settingsFrame([[Setting.INITIAL_WINDOW_SIZE, 2 ** 31]])],
      code: H2Error.FLOW_CONTROL_ERROR,
    },
    {
      name: 'SETTINGS_MAX_FRAME_SIZE below 16 384',
      bytes: () => [settingsFrame([[Setting.MAX_FRAME_SIZE, 100]])],
      code: H2Error.PROTOCOL_ERROR,
    },
    {
      name: 'a zero WINDOW_UPDATE on the connection',
      bytes: () => [windowUpdateFrame(0, 0)],
      code: H2Error.PROTOCOL_ERROR,
    },
    {
      name: 'a connection window over 2^31-1',
      bytes: () => [windowUpdateFrame(0, 2 ** 31 - 1)],
      code: H2Error.FLOW_CONTROL_ERROR,
    },
    {
      name: 'WINDOW_UPDATE of a wrong length',
      bytes: () => [frame(FrameType.WINDOW_UPDATE, 0, 0, Buffer.alloc(3))],
      code: H2Error.FRAME_SIZE_ERROR,
    },
    {
      name: 'RST_STREAM of a wrong length',
      bytes: () => [frame(FrameType.RST_STREAM, 0, 1, Buffer.alloc(5))],
      code: H2Error.FRAME_SIZE_ERROR,
    },
    {
      name: 'PING on a stream',
      bytes: () => [frame(FrameType.PING, 0, 1, Buffer.alloc(8))],
      code: H2Error.PROTOCOL_ERROR,
    },
    {
      name: 'PUSH_PROMISE from a client',
      bytes: () => [frame(FrameType.PUSH_PROMISE, Flag.END_HEADERS, 1, Buffer.alloc(4))],
      code: H2Error.PROTOCOL_ERROR,
    },
  ];

  for (const v of violations) {
    test(v.name, async (t) => {
      let invoked = 0;
      const server = await startServer(t, {
        Unary: (call, cb) => {
          invoked++;
          echoUnary(call, cb);
        },
      });
      const c = v.noHandshake
        ? await RawConnection.open(t, server)
        : await RawConnection.handshake(t, server);
      c.write(...v.bytes());
      await c.waitClosed();
      const goaway = c.goaway();
      assert.ok(goaway, `a GOAWAY frame (type 0x7) among ${c.frames.map((f) => f.type).join(',')}`);
      assert.equal(goaway.code, v.code, `GOAWAY code ${goaway.code} (${goaway.debug})`);
      assert.equal(goaway.lastStream, 0);
      assert.equal(invoked, 0);
      // The process did not crash and the server still serves.
      const client = grpcClient(t, server);
      assert.equal((await unaryCall(client, PATH.unary, Buffer.from('alive'))).toString(), 'alive');
    });
  }

  test('GOAWAY names the last stream the server processed', async (t) => {
    const server = await startServer(t, { Unary: echoUnary });
    const c = await RawConnection.handshake(t, server);
    c.write(
      headersFrame(1, requestBlock(PATH.unary)),
      dataFrame(1, grpcFrame(Buffer.from('a')), Flag.END_STREAM),
    );
    c.write(
      headersFrame(3, requestBlock(PATH.unary)),
      dataFrame(3, grpcFrame(Buffer.from('b')), Flag.END_STREAM),
    );
    await c.waitFor(
      (f) => f.type === FrameType.HEADERS && f.stream === 3 && (f.flags & Flag.END_STREAM) !== 0,
      '3',
    );
    c.write(dataFrame(0, Buffer.from('bad')));
    await c.waitClosed();
    assert.equal(c.goaway()?.lastStream, 3);
    assert.equal(c.goaway()?.code, H2Error.PROTOCOL_ERROR);
  });

  test('a violation on one connection leaves calls on other connections alone', async (t) => {
    const release = deferred();
    const server = await startServer(t, {
      Unary: (call, cb) => {
        void release.promise.then(() => cb(null, call.request as Buffer));
      },
    });
    const client = grpcClient(t, server);
    const pending = unaryCall(client, PATH.unary, Buffer.from('survivor'));
    const c = await RawConnection.handshake(t, server);
    c.write(headersFrame(1, Buffer.from([0x80])));
    await c.waitClosed();
    release.resolve();
    assert.equal((await guard(pending, 'the other call')).toString(), 'survivor');
  });
});

describe('gRPC server: minor RFC 9113 conformance points', { timeout: 60_000 }, () => {
  test('PING with a length other than 8 is FRAME_SIZE_ERROR', async (t) => {
    const server = await startServer(t, { Unary: echoUnary });
    const c = await RawConnection.handshake(t, server);
    c.write(frame(FrameType.PING, 0, 0, Buffer.alloc(7)));
    await c.settle();
    assert.equal(c.goaway()?.code, H2Error.FRAME_SIZE_ERROR);
  });

  test('a SETTINGS ACK with a payload is FRAME_SIZE_ERROR', async (t) => {
    const server = await startServer(t, { Unary: echoUnary });
    const c = await RawConnection.handshake(t, server);
    c.write(frame(FrameType.SETTINGS, Flag.ACK, 0, Buffer.alloc(6)));
    await c.settle();
    assert.equal(c.goaway()?.code, H2Error.FRAME_SIZE_ERROR);
  });

  test('RST_STREAM on stream 0 is PROTOCOL_ERROR', async (t) => {
    const server = await startServer(t, { Unary: echoUnary });
    const c = await RawConnection.handshake(t, server);
    c.write(rstStreamFrame(0, H2Error.CANCEL));
    await c.settle();
    assert.equal(c.goaway()?.code, H2Error.PROTOCOL_ERROR);
  });
});

describe('gRPC server: closing', { timeout: 60_000 }, () => {
  test('GrpcServer.close() sends GOAWAY (NO_ERROR) and the client sees the connection end', async (t) => {
    const server = await startServer(t, { Unary: echoUnary });
    const session = await h2session(t, server);
    const ok = await h2call(session, PATH.unary, grpcFrame(Buffer.from('before')));
    assert.equal(statusOf(ok), '0');
    const goaway = new Promise<[number, number]>((resolve) =>
      session.once('goaway', (code: number, lastStream: number) => resolve([code, lastStream])),
    );
    const closed = once(session, 'close');
    server.grpcServer.close();
    const [code, lastStream] = await guard(goaway, "the session's goaway");
    assert.equal(code, http2.constants.NGHTTP2_NO_ERROR);
    assert.equal(lastStream, 1);
    await guard(closed, "the session's close");
  });

  test('close() seen on a raw socket: a GOAWAY frame, then the socket closes', async (t) => {
    const server = await startServer(t, { Unary: echoUnary });
    const c = await RawConnection.handshake(t, server);
    server.grpcServer.close();
    await c.waitClosed();
    const goaway = c.goaway();
    assert.ok(goaway, 'a GOAWAY frame');
    assert.equal(goaway.code, H2Error.NO_ERROR);
  });

  test("close() cancels calls still open: 'cancelled' at the server, an error at the client", async (t) => {
    const cancelled = deferred();
    let started = false;
    const server = await startServer(t, {
      Bidi: (call) => {
        started = true;
        call.on('cancelled', () => cancelled.resolve());
      },
    });
    const client = grpcClient(t, server);
    const call = client.makeBidiStreamRequest(PATH.bidi, identity, identity);
    const outcome = collect(call);
    call.write(Buffer.from('x'));
    await until(() => started, 'the call to start');
    server.grpcServer.close();
    await guard(cancelled.promise, "the server call's 'cancelled'");
    const result = await guard(outcome, 'the client to see the end');
    assert.notEqual(result.status.code, grpc.status.OK);
  });

  test('a reply sent in the same turn as close() still reaches the client', async (t) => {
    let server: TestServer | undefined;
    server = await startServer(t, {
      Unary: (call, cb) => {
        // e.g. an admin "shut down" call answering as it closes the server
        server!.grpcServer.close();
        cb(null, Buffer.concat([Buffer.from('bye:'), call.request as Buffer]));
      },
    });
    const session = await h2session(t, server);
    const r = await h2call(session, PATH.unary, grpcFrame(Buffer.from('x')));
    assert.equal(statusOf(r), '0');
    assert.deepEqual(parseGrpcFrames(r.data).map(String), ['bye:x']);
  });
});
