import { type IncomingMessage, type ServerResponse, STATUS_CODES } from 'node:http';
import { StringDecoder } from 'node:string_decoder';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { type ServiceError, Status } from '../../grpc/call.js';
import { memberList, memberPromote, memberRemove } from './cluster.js';
import { type EtcdContext, etcdError, header, int64, toEtcdError } from './context.js';
import { campaign, leader, observe, proclaim, resign } from './election.js';
import {
  fromJsonMessage,
  JsonIncomplete,
  JsonMappingError,
  type JsonValue,
  jsonString,
  type MessageInfo,
  messageType,
  parseJsonBody,
  parseJsonValue,
  skipWhitespace,
  toJsonMessage,
} from './jsonpb.js';
import { compact, deleteRange, put, range, txn } from './kv.js';
import { leaseGrant, leaseKeepAliveOnce, leaseLeases, leaseRevoke, leaseTimeToLive } from './lease.js';
import { lock, unlock } from './lock.js';
import { alarm, hashKV, moveLeader, status } from './maintenance.js';
import { etcdService } from './proto.js';
import { recipeError } from './recipes.js';
import { WatchSession } from './watch.js';

/**
 * etcd 3.4's HTTP/1.1 JSON gateway (grpc-gateway v1.9.5 in front of etcd's gRPC services), on
 * the etcd port's HTTP side, plus etcd's /version and /health. The routes are the
 * `google.api.http` bindings of etcd's rpc.proto, v3lock.proto and v3election.proto, under
 * /v3/ and (etcd 3.4 rewrites it) /v3beta/. A request body is one JSON message (jsonpb.ts has
 * the mapping) encoded and decoded exactly as a gRPC request to this server would be, so the
 * handlers (the same plain functions the gRPC services call) see the same objects either way;
 * a response goes through protobuf too and is written as jsonpb writes it.
 *
 * As grpc-gateway does it:
 * - unary calls answer with the message, or with `{"error","code","message"}` and the HTTP
 *   status grpc-gateway maps from the gRPC code; an empty body is an empty request; a client
 *   that leaves cancels the call (a waiting Lock or Campaign gives up);
 * - streaming calls (Watch, LeaseKeepAlive, Election Observe) answer with chunked
 *   `{"result":{...}}\n` lines; an error after the start is one last
 *   `{"error":{"grpc_code","http_code","message","http_status"}}` chunk. Watch and
 *   LeaseKeepAlive read a sequence of JSON messages from the body as it arrives. A keep-alive
 *   stream ends once the body has ended and every request was answered (etcd's LeaseKeepAlive
 *   returns at the client's EOF); a watch stays open until the client goes (etcd's Watch
 *   outlives EOF);
 * - a method this server does not implement over the gateway answers Unimplemented, as grpc-js
 *   does for a method it lacks (Auth; Snapshot; MemberAdd/MemberUpdate, which gRPC
 *   refuses with its own text).
 */

// biome-ignore lint/suspicious/noExplicitAny: decoded protobuf messages.
type Msg = any;

/** Same limit as the gRPC server's max receive message length (etcd-api.ts). */
const MAX_REQUEST_BYTES = 2 * 1024 * 1024;
/** A JSON body larger than this cannot encode below MAX_REQUEST_BYTES. */
const MAX_JSON_BODY_BYTES = 16 * 1024 * 1024;

/** etcd's version answer: this server speaks etcd 3.4's API. */
const CLUSTER_VERSION = '3.4.0';

interface LoadedMethod {
  path: string;
  requestStream: boolean;
  responseStream: boolean;
  requestSerialize(value: unknown): Buffer;
  requestDeserialize(bytes: Buffer): Msg;
  responseSerialize(value: unknown): Buffer;
  responseDeserialize(bytes: Buffer): Msg;
  requestType: { type: { name: string } };
  responseType: { type: { name: string } };
  options?: Record<string, unknown>;
}

interface Binding {
  /** `KV/Range`. */
  name: string;
  method: LoadedMethod;
  request: MessageInfo;
  response: MessageInfo;
}

/** What a unary handler may need of the HTTP call. */
interface HttpCall {
  raw: IncomingMessage;
  /** Aborted when the client goes away before the answer (grpc-gateway cancels the gRPC call). */
  signal: AbortSignal;
  /** host:port the client dialled (gRPC's :authority; the Host header here). */
  authority: string;
}

type UnaryImpl = (ctx: EtcdContext, request: Msg, call: HttpCall) => Promise<Msg> | Msg;
type StreamImpl = (
  ctx: EtcdContext,
  b: Binding,
  request: FastifyRequest,
  reply: FastifyReply,
) => Promise<void>;

/** Lock and Election report failures as their gRPC services do (recipes.ts). */
const recipe =
  (impl: UnaryImpl): UnaryImpl =>
  async (ctx, r, call) => {
    try {
      return await impl(ctx, r, call);
    } catch (err) {
      throw recipeError(err);
    }
  };

/** The gateway's methods, by `Service/Method`; a binding without one answers Unimplemented. */
const UNARY: Record<string, UnaryImpl> = {
  'KV/Range': range,
  'KV/Put': put,
  'KV/DeleteRange': deleteRange,
  'KV/Txn': txn,
  'KV/Compact': compact,
  'Lease/LeaseGrant': leaseGrant,
  'Lease/LeaseRevoke': leaseRevoke,
  'Lease/LeaseTimeToLive': leaseTimeToLive,
  'Lease/LeaseLeases': (ctx) => leaseLeases(ctx),
  'Cluster/MemberList': (ctx, r, call) => memberList(ctx, r, call.authority),
  'Cluster/MemberRemove': (ctx, r, call) => memberRemove(ctx, r, call.authority),
  'Cluster/MemberPromote': (ctx, r, call) => memberPromote(ctx, r, call.authority),
  'Maintenance/Status': (ctx) => status(ctx),
  'Maintenance/Alarm': alarm,
  'Maintenance/HashKV': hashKV,
  'Maintenance/MoveLeader': moveLeader,
  'Maintenance/Defragment': (ctx) => ({ header: header(ctx) }), // a no-op here, as over gRPC
  'Lock/Lock': recipe((ctx, r, call) => lock(ctx, r, call.signal)),
  'Lock/Unlock': recipe(unlock),
  'Election/Campaign': recipe((ctx, r, call) => campaign(ctx, r, call.signal)),
  'Election/Proclaim': recipe(proclaim),
  'Election/Leader': recipe(leader),
  'Election/Resign': recipe(resign),
};

const STREAMS: Record<string, StreamImpl> = {
  'Watch/Watch': watchStream,
  'Lease/LeaseKeepAlive': keepAliveStream,
  'Election/Observe': observeStream,
};

interface ServiceSpec {
  pkg: 'etcdserverpb' | 'v3lockpb' | 'v3electionpb';
  service: string;
  /** Paths for a service whose .proto here has no `google.api.http` options. */
  paths?: Record<string, string>;
}

/**
 * etcd's rpc.proto carries its HTTP bindings; our v3lock/v3election definitions do not, so
 * their paths (from etcd's v3lock.proto and v3election.proto annotations) are listed here.
 */
const SERVICES: ServiceSpec[] = [
  { pkg: 'etcdserverpb', service: 'KV' },
  { pkg: 'etcdserverpb', service: 'Watch' },
  { pkg: 'etcdserverpb', service: 'Lease' },
  { pkg: 'etcdserverpb', service: 'Cluster' },
  { pkg: 'etcdserverpb', service: 'Maintenance' },
  { pkg: 'etcdserverpb', service: 'Auth' },
  { pkg: 'v3lockpb', service: 'Lock', paths: { Lock: '/v3/lock/lock', Unlock: '/v3/lock/unlock' } },
  {
    pkg: 'v3electionpb',
    service: 'Election',
    paths: {
      Campaign: '/v3/election/campaign',
      Proclaim: '/v3/election/proclaim',
      Leader: '/v3/election/leader',
      Observe: '/v3/election/observe',
      Resign: '/v3/election/resign',
    },
  },
];

/** Every HTTP binding of etcd 3.4's gateway: path → method. */
function bindings(): Map<string, Binding> {
  const out = new Map<string, Binding>();
  for (const { pkg, service, paths: listed } of SERVICES) {
    for (const [name, method] of Object.entries(
      etcdService(`${pkg}.${service}`) as Record<string, LoadedMethod>,
    )) {
      const http = method.options?.['(google.api.http)'] as
        | { post?: string; additional_bindings?: { post?: string } | { post?: string }[] }
        | undefined;
      const extra = http?.additional_bindings;
      const paths = [
        listed?.[name] ?? http?.post,
        ...(Array.isArray(extra) ? extra : extra ? [extra] : []).map((x) => x.post),
      ];
      const binding: Binding = {
        name: `${service}/${name}`,
        method,
        request: messageType(`${pkg}.${method.requestType.type.name}`),
        response: messageType(`${pkg}.${method.responseType.type.name}`),
      };
      // grpc-gateway: of two methods on one path (Hash, HashKV) the last registered wins.
      for (const p of paths) if (p) out.set(p, binding);
    }
  }
  return out;
}

/** Serve etcd's JSON gateway, /version and /health on this Fastify instance (the etcd port's HTTP side). */
export function registerEtcdGateway(app: FastifyInstance, ctx: EtcdContext): void {
  // grpc-gateway reads every body as JSON whatever its Content-Type (curl -d sends a form
  // type); the handlers read the raw body themselves, streams incrementally.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, _payload, done) => done(null, undefined));

  // etcd's default --cors is "*": every answer carries these, and OPTIONS is answered here.
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('access-control-allow-methods', 'POST, GET, OPTIONS, PUT, DELETE');
    reply.header('access-control-allow-origin', '*');
    reply.header('access-control-allow-headers', 'accept, content-type, authorization');
    if (request.method === 'OPTIONS') {
      reply.code(200).send();
      return;
    }
    done();
  });

  const methodNotAllowed =
    (allow: string | null) => async (_request: FastifyRequest, reply: FastifyReply) => {
      if (allow) reply.header('allow', allow);
      textError(reply, 405, 'Method Not Allowed');
    };
  const otherMethods = ['GET', 'HEAD', 'PUT', 'DELETE', 'PATCH'];

  for (const [path, b] of bindings()) {
    const unary = UNARY[b.name];
    const stream = STREAMS[b.name];
    const handler = async (request: FastifyRequest, reply: FastifyReply) => {
      if (stream) return stream(ctx, b, request, reply);
      return serveUnary(ctx, b, unary, request, reply);
    };
    for (const url of [path, path.replace(/^\/v3\//, '/v3beta/')]) {
      app.post(url, handler);
      app.route({ method: otherMethods, url, handler: methodNotAllowed(null) });
    }
  }

  app.get('/version', { exposeHeadRoute: false }, async (_request, reply) => {
    sendJson(
      reply,
      200,
      `{"etcdserver":${jsonString(ctx.version)},"etcdcluster":${jsonString(CLUSTER_VERSION)}}`,
    );
  });
  app.get('/health', { exposeHeadRoute: false }, async (request, reply) => {
    const healthy = await checkHealth(ctx, excludedAlarms(request.query));
    const body = `{"health":"${healthy}"}`;
    if (healthy) reply.code(200).header('content-type', 'text/plain; charset=utf-8').send(body);
    else textError(reply, 503, body);
  });
  for (const url of ['/version', '/health'])
    app.route({ method: ['HEAD', 'POST', 'PUT', 'DELETE', 'PATCH'], url, handler: methodNotAllowed('GET') });

  app.setNotFoundHandler((request, reply) => {
    // The gateway's own 404, or Go's http.NotFound for everything else.
    const gateway = /^\/v3(beta)?\//.test(request.url);
    textError(reply, 404, gateway ? 'Not Found' : '404 page not found');
  });
}

// ------------------------------------------------------------------ errors

interface RpcStatus {
  code: Status;
  message: string;
}

function statusOf(err: unknown): RpcStatus {
  const e = toEtcdError(err);
  return {
    code: e.code ?? Status.UNKNOWN,
    message: typeof e.details === 'string' ? e.details : e.message,
  };
}

/** grpc-gateway's HTTPStatusFromCode. */
export function httpStatusFromCode(code: Status): number {
  switch (code) {
    case Status.OK:
      return 200;
    case Status.CANCELLED:
      return 408;
    case Status.INVALID_ARGUMENT:
    case Status.FAILED_PRECONDITION:
    case Status.OUT_OF_RANGE:
      return 400;
    case Status.DEADLINE_EXCEEDED:
      return 504;
    case Status.NOT_FOUND:
      return 404;
    case Status.ALREADY_EXISTS:
    case Status.ABORTED:
      return 409;
    case Status.PERMISSION_DENIED:
      return 403;
    case Status.UNAUTHENTICATED:
      return 401;
    case Status.RESOURCE_EXHAUSTED:
      return 429;
    case Status.UNIMPLEMENTED:
      return 501;
    case Status.UNAVAILABLE:
      return 503;
    default:
      return 500; // Unknown, Internal, DataLoss
  }
}

/** grpc-gateway's errorBody as etcd 3.4 writes it: error, code, message (empty strings left out). */
function errorBody(s: RpcStatus): string {
  const parts: string[] = [];
  if (s.message) parts.push(`"error":${jsonString(s.message)}`);
  if (s.code) parts.push(`"code":${s.code}`);
  if (s.message) parts.push(`"message":${jsonString(s.message)}`);
  return `{${parts.join(',')}}`;
}

/** The last chunk of a failed stream: grpc-gateway's StreamError under "error". */
function streamErrorChunk(s: RpcStatus): string {
  const http = httpStatusFromCode(s.code);
  const parts: string[] = [];
  if (s.code) parts.push(`"grpc_code":${s.code}`);
  parts.push(`"http_code":${http}`);
  if (s.message) parts.push(`"message":${jsonString(s.message)}`);
  parts.push(`"http_status":${jsonString(STATUS_CODES[http] ?? '')}`);
  return `{"error":{${parts.join(',')}}}`;
}

/** JSON as grpc-gateway sends it: `application/json`, no charset (a Buffer keeps Fastify from adding one). */
function sendJson(reply: FastifyReply, code: number, json: string): void {
  reply.code(code).header('content-type', 'application/json').send(Buffer.from(json));
}

/** grpc-gateway forwards the gRPC response headers; a successful call always has this one. */
const GRPC_METADATA = ['grpc-metadata-content-type', 'application/grpc'] as const;

function sendError(reply: FastifyReply, err: unknown): void {
  const s = statusOf(err);
  sendJson(reply, httpStatusFromCode(s.code), errorBody(s));
}

/** Go's http.Error: text/plain, the message and a newline. */
function textError(reply: FastifyReply, code: number, message: string): void {
  reply
    .code(code)
    .header('content-type', 'text/plain; charset=utf-8')
    .header('x-content-type-options', 'nosniff')
    .send(`${message}\n`);
}

/** A body grpc-gateway could not decode: InvalidArgument for unary calls, Unknown for streams. */
class DecodeError extends Error {}

function decodeFailure(err: unknown): never {
  if (err instanceof JsonMappingError || err instanceof SyntaxError || err instanceof JsonIncomplete)
    throw new DecodeError(err.message);
  throw err;
}

// ------------------------------------------------------------------ requests and responses

/** A JSON request as the gRPC handler would receive it (or undefined JSON: an empty request). */
function decodeRequest(b: Binding, json: JsonValue | undefined): Msg {
  let plain: Record<string, unknown>;
  try {
    plain = json === undefined || json === null ? {} : fromJsonMessage(b.request, json);
  } catch (err) {
    decodeFailure(err);
  }
  const wire = b.method.requestSerialize(plain);
  if (wire.length > MAX_REQUEST_BYTES)
    throw etcdError(
      Status.RESOURCE_EXHAUSTED,
      `Received message larger than max (${wire.length} vs. ${MAX_REQUEST_BYTES})`,
    );
  return b.method.requestDeserialize(wire);
}

/** A handler's response as a gRPC client would decode it, written as jsonpb does. */
function encodeResponse(b: Binding, response: Msg): string {
  return toJsonMessage(b.response, b.method.responseDeserialize(b.method.responseSerialize(response)));
}

class BodyTooLarge extends Error {}

async function readBody(raw: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of raw as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_JSON_BODY_BYTES) throw new BodyTooLarge();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** The one request message of a body (unary and server-streaming calls). */
async function readRequest(b: Binding, request: FastifyRequest, reply: FastifyReply): Promise<Msg> {
  let text: string;
  try {
    text = await readBody(request.raw);
  } catch (err) {
    if (!(err instanceof BodyTooLarge)) throw err;
    reply.header('connection', 'close');
    throw etcdError(
      Status.RESOURCE_EXHAUSTED,
      `Received message larger than max (more than ${MAX_REQUEST_BYTES} bytes)`,
    );
  }
  let json: JsonValue | undefined;
  try {
    json = parseJsonBody(text);
  } catch (err) {
    decodeFailure(err);
  }
  return decodeRequest(b, json);
}

/** grpc-gateway answers a request body it cannot decode with InvalidArgument. */
const badRequest = (err: unknown) =>
  err instanceof DecodeError ? etcdError(Status.INVALID_ARGUMENT, err.message) : err;

/** The authority the client dialled: the Host header, else this socket's address. */
function authorityOf(raw: IncomingMessage): string {
  if (raw.headers.host) return raw.headers.host;
  let host = raw.socket.localAddress ?? '127.0.0.1';
  if (host.startsWith('::ffff:')) host = host.slice(7);
  if (host.includes(':')) host = `[${host}]`;
  return `${host}:${raw.socket.localPort}`;
}

async function serveUnary(
  ctx: EtcdContext,
  b: Binding,
  impl: UnaryImpl | undefined,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<void> {
  const abort = new AbortController();
  const res = reply.raw;
  res.on('close', () => {
    if (!res.writableFinished) abort.abort();
  });
  try {
    const message = await readRequest(b, request, reply);
    if (!impl) throw unimplemented(b);
    const call: HttpCall = { raw: request.raw, signal: abort.signal, authority: authorityOf(request.raw) };
    const response = await impl(ctx, message, call);
    reply.header(...GRPC_METADATA);
    sendJson(reply, 200, encodeResponse(b, response));
  } catch (err) {
    sendError(reply, badRequest(err));
  }
}

/** grpc-js's answer for a method the server does not have. */
function unimplemented(b: Binding): ServiceError {
  return etcdError(Status.UNIMPLEMENTED, `The server does not implement the method ${b.method.path}`);
}

/** The JSON messages of a request body, as they arrive (a Go json.Decoder over the body). */
async function* jsonMessages(raw: IncomingMessage): AsyncGenerator<JsonValue> {
  const decoder = new StringDecoder('utf8');
  let text = '';
  let pos = 0;
  const drain = function* (final: boolean): Generator<JsonValue> {
    for (;;) {
      pos = skipWhitespace(text, pos);
      if (pos >= text.length) return;
      let parsed: { value: JsonValue; end: number };
      try {
        parsed = parseJsonValue(final ? text + ' ' : text, pos);
      } catch (err) {
        if (err instanceof JsonIncomplete && !final) return;
        throw err;
      }
      pos = parsed.end;
      yield parsed.value;
    }
  };
  for await (const chunk of raw as AsyncIterable<Buffer>) {
    text = text.slice(pos) + decoder.write(chunk);
    pos = 0;
    yield* drain(false);
  }
  text = text.slice(pos) + decoder.end();
  pos = 0;
  yield* drain(true);
}

/** A chunked JSON stream answer, written as grpc-gateway's ForwardResponseStream writes it. */
class StreamReply {
  private started = false;
  private finished = false;

  constructor(private readonly reply: FastifyReply) {
    reply.hijack();
  }

  get res(): ServerResponse {
    return this.reply.raw;
  }

  get closed(): boolean {
    return this.finished || this.res.destroyed;
  }

  private start(code: number): void {
    if (this.started) return;
    this.started = true;
    const headers: Record<string, string | number | string[]> = {};
    for (const [k, v] of Object.entries(this.reply.getHeaders())) if (v !== undefined) headers[k] = v;
    headers[GRPC_METADATA[0]] = GRPC_METADATA[1];
    headers['content-type'] = 'application/json';
    headers['transfer-encoding'] = 'chunked';
    this.res.writeHead(code, headers);
    this.res.socket?.setNoDelay(true);
  }

  /** One response message; false when the socket is backed up (wait for 'drain'). */
  result(json: string): boolean {
    if (this.closed) return true;
    this.start(200);
    return this.res.write(`{"result":${json}}\n`);
  }

  /** A failure after the call started: the error chunk ends the stream. */
  fail(err: unknown): void {
    if (this.closed) return;
    const s = statusOf(err);
    this.start(httpStatusFromCode(s.code));
    this.finished = true;
    this.res.end(streamErrorChunk(s));
  }

  /** A failure before the call started (the first request did not decode): a plain error answer. */
  reject(err: unknown): void {
    if (this.closed) return;
    this.finished = true;
    const s = statusOf(err);
    const headers: Record<string, string | number | string[]> = {};
    for (const [k, v] of Object.entries(this.reply.getHeaders())) if (v !== undefined) headers[k] = v;
    headers['content-type'] = 'application/json';
    this.res.writeHead(httpStatusFromCode(s.code), headers);
    this.res.end(errorBody(s));
  }

  end(): void {
    if (this.closed) return;
    this.start(200);
    this.finished = true;
    this.res.end();
  }
}

/** grpc-gateway reports an undecodable first message of a stream as a plain error (Unknown). */
const undecodable = (err: DecodeError) => etcdError(Status.UNKNOWN, err.message);

/**
 * etcd's Watch over HTTP: a WatchSession fed by the body's requests; it lives on after the
 * body ends, until the client closes the connection (or the session fails).
 */
async function watchStream(ctx: EtcdContext, b: Binding, request: FastifyRequest, reply: FastifyReply) {
  const out = new StreamReply(reply);
  let session: WatchSession | null = null;
  const close = () => session?.close();
  out.res.on('close', close);
  out.res.on('drain', () => session?.resume());
  let first = true;
  try {
    for await (const json of jsonMessages(request.raw)) {
      const message = decodeRequest(b, json);
      first = false;
      session ??= new WatchSession(ctx, {
        onResponse: (response) => out.result(encodeResponse(b, response)),
        onError: (err) => {
          out.fail(err);
          close();
        },
      });
      session.handleRequest(message);
      if (out.closed) break;
    }
  } catch (err) {
    // grpc-gateway stops sending at the first bad message after the first; the stream goes on.
    if (first) {
      out.reject(err instanceof DecodeError ? undecodable(err) : err);
      close();
    }
  }
}

/**
 * etcd's LeaseKeepAlive over HTTP: one answer per request in the body (Patroni sends one), in
 * order; the stream ends when the body has ended and every answer is out, or at the first
 * failure (a missing lease is not one: it answers with TTL 0, which jsonpb leaves out).
 */
async function keepAliveStream(ctx: EtcdContext, b: Binding, request: FastifyRequest, reply: FastifyReply) {
  const out = new StreamReply(reply);
  let chain: Promise<void> = Promise.resolve();
  let failed = false;
  let first = true;
  try {
    for await (const json of jsonMessages(request.raw)) {
      const message = decodeRequest(b, json);
      first = false;
      const answer = (async () => leaseKeepAliveOnce(ctx, int64(message.ID, 'ID')))();
      answer.catch(() => {}); // observed in order below
      chain = chain.then(async () => {
        if (failed) return;
        try {
          out.result(encodeResponse(b, await answer));
        } catch (err) {
          failed = true;
          out.fail(err);
        }
      });
      if (out.closed) break;
    }
  } catch (err) {
    if (first) {
      out.reject(err instanceof DecodeError ? undecodable(err) : err);
      return;
    }
  }
  await chain;
  out.end();
}

/**
 * etcd's Election.Observe over HTTP (a server stream): one request, then a `{"result": ...}`
 * line per leader change until the client goes.
 */
async function observeStream(ctx: EtcdContext, b: Binding, request: FastifyRequest, reply: FastifyReply) {
  let message: Msg;
  try {
    message = await readRequest(b, request, reply);
  } catch (err) {
    sendError(reply, badRequest(err));
    return;
  }
  const out = new StreamReply(reply);
  const abort = new AbortController();
  out.res.on('close', () => abort.abort());
  try {
    await observe(ctx, message, abort.signal, (m) => out.result(encodeResponse(b, m)));
    out.end();
  } catch (err) {
    if (!abort.signal.aborted) out.fail(recipeError(err));
  }
}

// ------------------------------------------------------------------ health

function excludedAlarms(query: unknown): Set<string> {
  const raw = (query as Record<string, unknown> | undefined)?.exclude;
  return new Set((Array.isArray(raw) ? raw : raw === undefined ? [] : [raw]).map(String));
}

/** etcd 3.4's /health: no active alarm (unless excluded), a leader, and a linearizable read within 1 s. */
async function checkHealth(ctx: EtcdContext, excluded: Set<string>): Promise<boolean> {
  const { server } = ctx;
  if (server.store.status().quotaAlarm && !excluded.has('NOSPACE')) return false;
  if (!server.leaderId()) return false;
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      server.readBarrier('default').then(() => true),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), 1000);
      }),
    ]);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}
