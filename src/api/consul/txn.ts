import type { FastifyInstance } from 'fastify';
import type {
  ConsulCatalogVerb,
  ConsulFlags,
  ConsulKvOp,
  ConsulOpResult,
  ConsulTxnOp,
  NodeInput,
  Result,
} from '../../store/index.js';
import { consulFlags, isReadOnlyConsulTxn, MAX_CONSUL_FLAGS, StoreError, utf8 } from '../../store/index.js';
import {
  checkJson,
  decodeCatalogCheck,
  decodeNode,
  decodeService,
  nodeJson,
  serviceJson,
} from './catalog-json.js';
import { field, fieldOf, isObject, type JsonObject, optString } from './decode.js';
import { badRequest, HttpError } from './errors.js';
import type { ConsulContext } from './http.js';
import { parseJson } from './json.js';
import { toConsulEntry } from './kv.js';
import { consistency, query, setIndexHeaders } from './query.js';
import { SessionNames } from './session-id.js';

/**
 * Consul's /v1/txn (api-docs/txn): KV, Node, Service, Check and Session operations in one
 * ordered list; every op applies or none does. A failed op answers 409 with
 * `Errors: [{OpIndex, What}]`; success answers `Results` with one entry per op that returns
 * one: KV ops other than get and get-tree return the entry without its Value, catalog gets
 * and writes the record (`{Node}`, `{Service}`, `{Check}`), deletes nothing.
 */

/** Consul's limit on operations per transaction (txn_max_req_len is separate: the body limit). */
const MAX_OPS = 64;

function str(v: unknown, what: string, opIndex: number): string {
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string') throw badRequest(`Operation ${opIndex}: ${what} must be a string`);
  return v;
}

function uint(v: unknown, what: string, opIndex: number): number {
  if (v === undefined || v === null) return 0;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
    throw badRequest(`Operation ${opIndex}: ${what} must be a non-negative integer`);
  return v;
}

/** KV Flags: a Go uint64, so integers beyond 2^53 arrive as bigints (see parseJson). */
function flagsOf(v: unknown, opIndex: number): ConsulFlags {
  if (v === undefined || v === null) return 0;
  const flags = typeof v === 'number' || typeof v === 'bigint' ? consulFlags(v) : undefined;
  if (flags === undefined)
    throw badRequest(`Operation ${opIndex}: Flags must be an integer between 0 and ${MAX_CONSUL_FLAGS}`);
  return flags;
}

function decodeValue(v: unknown, opIndex: number, maxBytes: number): Uint8Array {
  if (v === undefined || v === null) return new Uint8Array(0);
  if (typeof v !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(v))
    throw badRequest(`Operation ${opIndex}: Value must be base64`);
  const bytes = Buffer.from(v, 'base64');
  // Consul counts the decoded size against kv_max_value_size.
  if (bytes.byteLength > maxBytes)
    throw new HttpError(
      413,
      `Value for key at operation ${opIndex} is too large (${bytes.byteLength} > ${maxBytes} bytes)`,
    );
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * A Session field. Any well-formed UUID is accepted: one this server never issued names a
 * session that does not exist, and the op fails in the store as Consul's would. check-session
 * may name no session at all: it then checks that the key is not locked.
 */
function session(v: unknown, opIndex: number, names: SessionNames, emptyAllowed = false): number {
  const text = str(v, 'Session', opIndex);
  if (text === '' && emptyAllowed) return 0;
  const id = names.id(text);
  if (id === null) throw badRequest(`Operation ${opIndex}: invalid Session ${JSON.stringify(text)}`);
  return id;
}

function decodeKvOp(kv: unknown, i: number, maxValueBytes: number, names: SessionNames): ConsulKvOp {
  if (!isObject(kv)) throw badRequest(`Operation ${i}: KV must be an object`);
  const o = kv;
  const verb = str(field(o, 'Verb'), 'Verb', i);
  const key = utf8(str(field(o, 'Key'), 'Key', i));
  const value = () => decodeValue(field(o, 'Value'), i, maxValueBytes);
  const flags = () => flagsOf(field(o, 'Flags'), i);
  const index = () => uint(field(o, 'Index'), 'Index', i);
  switch (verb) {
    case 'set':
      return { verb, key, value: value(), flags: flags() };
    case 'cas':
      return { verb, key, value: value(), flags: flags(), index: index() };
    case 'lock':
    case 'unlock':
      return { verb, key, value: value(), flags: flags(), session: session(field(o, 'Session'), i, names) };
    case 'get':
    case 'get-or-empty':
    case 'get-tree':
    case 'check-not-exists':
    case 'delete':
    case 'delete-tree':
      return { verb, key };
    case 'check-index':
    case 'delete-cas':
      return { verb, key, index: index() };
    case 'check-session':
      return { verb, key, session: session(field(o, 'Session'), i, names, true) };
    default:
      throw badRequest(`Operation ${i}: unknown KV verb "${verb}"`);
  }
}

const CATALOG_VERBS: readonly string[] = ['set', 'cas', 'get', 'delete', 'delete-cas'];

/** `{Verb, <inner>}` of a catalog op, with the verb checked. */
function catalogOp(raw: unknown, what: string, inner: string, i: number) {
  if (!isObject(raw)) throw badRequest(`Operation ${i}: ${what} must be an object`);
  const verb = str(field(raw, 'Verb'), 'Verb', i);
  if (!CATALOG_VERBS.includes(verb)) throw badRequest(`Operation ${i}: unknown ${what} verb "${verb}"`);
  const body = field(raw, inner);
  if (!isObject(body)) throw badRequest(`Operation ${i}: ${what}.${inner} must be an object`);
  const writes = verb === 'set' || verb === 'cas';
  return { raw, verb: verb as ConsulCatalogVerb, body, writes };
}

/** Decoding errors of the shared catalog helpers, named by operation. */
function inOp<T>(i: number, decode: () => T): T {
  try {
    return decode();
  } catch (err) {
    if (err instanceof HttpError && err.status === 400) throw badRequest(`Operation ${i}: ${err.message}`);
    throw err;
  }
}

/** The ModifyIndex a cas / delete-cas compares against. */
function modifyIndex(body: JsonObject, i: number): number {
  return uint(field(body, 'ModifyIndex'), 'ModifyIndex', i);
}

function decodeNodeOp(raw: unknown, i: number): ConsulTxnOp {
  const { verb, body, writes } = catalogOp(raw, 'Node', 'Node', i);
  let node: NodeInput;
  if (writes) {
    // The txn's Node object is api.Node: its metadata field is "Meta" (the catalog's is "NodeMeta").
    node = inOp(i, () => decodeNode({ ...body, NodeMeta: fieldOf(body, 'Meta', 'NodeMeta') }));
    const datacenter = inOp(i, () => optString(field(body, 'Datacenter'), 'Node.Datacenter'));
    if (datacenter) node.datacenter = datacenter;
  } else {
    node = { node: str(field(body, 'Node'), 'Node.Node', i) };
    const id = str(field(body, 'ID'), 'Node.ID', i);
    if (id !== '') node.id = id;
    if (node.node === '' && (verb !== 'get' || id === '')) {
      throw badRequest(`Operation ${i}: Node.Node is required`);
    }
  }
  return { target: 'node', verb, node, index: modifyIndex(body, i) };
}

function decodeServiceOp(raw: unknown, i: number): ConsulTxnOp {
  const op = catalogOp(raw, 'Service', 'Service', i);
  const node = str(field(op.raw, 'Node'), 'Node', i);
  if (node === '') throw badRequest(`Operation ${i}: Node is required`);
  const service = op.writes
    ? inOp(i, () => decodeService(op.body))
    : { id: str(field(op.body, 'ID'), 'Service.ID', i), service: '' };
  if (service.id === '') throw badRequest(`Operation ${i}: Service.ID is required`);
  return { target: 'service', verb: op.verb, node, service, index: modifyIndex(op.body, i) };
}

function decodeCheckOp(raw: unknown, i: number): ConsulTxnOp {
  const op = catalogOp(raw, 'Check', 'Check', i);
  const node = str(field(op.body, 'Node'), 'Check.Node', i);
  if (node === '') throw badRequest(`Operation ${i}: Check.Node is required`);
  const check = op.writes
    ? inOp(i, () => decodeCatalogCheck(op.body))
    : { checkId: str(field(op.body, 'CheckID'), 'Check.CheckID', i) };
  if (check.checkId === '') throw badRequest(`Operation ${i}: Check.CheckID is required`);
  return { target: 'check', verb: op.verb, node, check, index: modifyIndex(op.body, i) };
}

/** `{"Session": {"Verb": "delete", "Session": {"ID": ..., "Node": ...}}}` (api.SessionTxnOp). */
function decodeSessionOp(raw: unknown, i: number, names: SessionNames): ConsulTxnOp {
  if (!isObject(raw)) throw badRequest(`Operation ${i}: Session must be an object`);
  const verb = str(field(raw, 'Verb'), 'Verb', i);
  if (verb !== 'delete') throw badRequest(`Operation ${i}: unknown Session verb "${verb}"`);
  const body = field(raw, 'Session');
  if (!isObject(body)) throw badRequest(`Operation ${i}: Session.Session must be an object`);
  return { target: 'session', verb, session: session(field(body, 'ID'), i, names) };
}

export function decodeTxnOps(body: unknown, maxValueBytes: number, names: SessionNames): ConsulTxnOp[] {
  if (!Array.isArray(body)) throw badRequest('Failed to parse body: expected a JSON array of operations');
  // Consul's maxTxnOps (agent/txn_endpoint.go) counts every kind of op.
  if (body.length > MAX_OPS)
    throw new HttpError(413, `Transaction contains too many operations (${body.length} > ${MAX_OPS})`);
  return body.map((raw, i): ConsulTxnOp => {
    if (!isObject(raw)) throw badRequest(`Operation ${i} is not an object`);
    // Consul's txnDispatch takes the first of KV, Node, Service, Check, Session that is set.
    const kv = field(raw, 'KV');
    if (kv !== undefined && kv !== null) return decodeKvOp(kv, i, maxValueBytes, names);
    const node = field(raw, 'Node');
    if (node !== undefined && node !== null) return decodeNodeOp(node, i);
    const service = field(raw, 'Service');
    if (service !== undefined && service !== null) return decodeServiceOp(service, i);
    const check = field(raw, 'Check');
    if (check !== undefined && check !== null) return decodeCheckOp(check, i);
    const sessionOp = field(raw, 'Session');
    if (sessionOp !== undefined && sessionOp !== null) return decodeSessionOp(sessionOp, i, names);
    throw badRequest(`Operation ${i}: no operation specified (KV, Node, Service, Check or Session)`);
  });
}

/** One op's entries in Consul's `Results` list. */
function resultJson(op: ConsulTxnOp, result: ConsulOpResult, datacenter: string): JsonObject[] {
  if (result.node !== undefined) return [{ Node: nodeJson(result.node, datacenter) }];
  if (result.service !== undefined) return [{ Service: serviceJson(result.service) }];
  if (result.check !== undefined) return [{ Check: checkJson(result.check) }];
  // Consul's txnKVS returns the value only for get, get-or-empty and get-tree; every other verb
  // that answers an entry (set, cas, lock, unlock, check-index, check-session) answers it
  // without its Value.
  const hideValue =
    !('target' in op) && op.verb !== 'get' && op.verb !== 'get-or-empty' && op.verb !== 'get-tree';
  return result.kvs.map((kv) => ({ KV: { ...toConsulEntry(kv), ...(hideValue ? { Value: null } : {}) } }));
}

/** Store messages name sessions by number; clients know them by UUID (0 is no session). */
function withSessionIds(text: string, names: SessionNames): string {
  return text.replace(/session "?(-?\d+)"?/g, (_m, n: string) => {
    const id = Number(n);
    return `session "${id === 0 ? '' : names.name(id)}"`;
  });
}

export function registerTxnRoutes(app: FastifyInstance, ctx: ConsulContext): void {
  app.put('/v1/txn', async (req, reply) => {
    const raw = req.body as Buffer | undefined;
    let body: unknown;
    try {
      body = parseJson(raw && raw.byteLength > 0 ? raw.toString('utf8') : 'null');
    } catch (err) {
      throw badRequest(`Failed to parse body: ${(err as Error).message}`);
    }
    const names = new SessionNames();
    const ops = decodeTxnOps(body, ctx.options.maxValueBytes, names);
    const failed = (error: StoreError) => {
      const { opIndex } = error;
      if (opIndex === undefined) throw error;
      return reply.code(409).send({
        Results: null,
        Errors: [{ OpIndex: opIndex, What: withSessionIds(error.message, names) }],
      });
    };
    if (isReadOnlyConsulTxn(ops)) {
      // Consul's Txn.Read: no Raft entry, and the request's consistency mode (?stale serves it
      // here even without a leader; ?consistent and the default after a read barrier).
      await ctx.server.readBarrier(consistency(query(req)));
      let read: ReturnType<typeof ctx.server.store.evaluateReadOnlyConsulTxn>;
      try {
        read = ctx.server.store.evaluateReadOnlyConsulTxn(ops);
      } catch (error) {
        if (error instanceof StoreError) return failed(error);
        throw error;
      }
      setIndexHeaders(reply, read.revision, ctx.server);
      return {
        Results: read.results.flatMap((r, i) => resultJson(ops[i]!, r, ctx.agent.datacenter)),
        Errors: null,
      };
    }
    const result: Result = await ctx.server.write({ type: 'consulTxn', ops });
    if (result.type === 'error') return failed(result.error);
    if (result.type !== 'consulTxn') throw new HttpError(500, `unexpected ${result.type} result`);
    if (result.results.length !== ops.length)
      throw new HttpError(500, 'txn result count does not match its ops');
    const results = result.results.flatMap((r, i) => resultJson(ops[i]!, r, ctx.agent.datacenter));
    reply.header('X-Consul-Index', String(Math.max(1, result.revision)));
    return { Results: results, Errors: null };
  });
}
