import type { FastifyInstance } from 'fastify';
import type { ConsulKvOp, Result } from '../../store/index.js';
import { utf8 } from '../../store/index.js';
import { field } from './decode.js';
import { badRequest, HttpError } from './errors.js';
import type { ConsulContext } from './http.js';
import { toConsulEntry } from './kv.js';
import { formatSessionId, parseSessionId } from './session-id.js';

/**
 * Consul's /v1/txn with the KV verbs: every op applies or none does. A failed op answers 409
 * with `Errors: [{OpIndex, What}]`; success answers `Results` with one KV entry per op that
 * returns one (writes return the entry without its Value, as Consul does).
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

function session(v: unknown, opIndex: number): number {
  const text = str(v, 'Session', opIndex);
  const id = parseSessionId(text);
  if (id === null) throw badRequest(`Operation ${opIndex}: invalid Session ${JSON.stringify(text)}`);
  return id;
}

export function decodeTxnOps(body: unknown, maxValueBytes: number): ConsulKvOp[] {
  if (!Array.isArray(body)) throw badRequest('Failed to parse body: expected a JSON array of operations');
  if (body.length > MAX_OPS)
    throw new HttpError(413, `Transaction contains too many operations (${body.length} > ${MAX_OPS})`);
  return body.map((raw, i): ConsulKvOp => {
    if (typeof raw !== 'object' || raw === null) throw badRequest(`Operation ${i} is not an object`);
    const kv = field(raw as Record<string, unknown>, 'KV');
    if (kv === undefined) {
      throw badRequest(
        `Operation ${i}: only KV operations are supported (Node, Service, Check and Session are not yet)`,
      );
    }
    if (typeof kv !== 'object' || kv === null) throw badRequest(`Operation ${i}: KV must be an object`);
    const o = kv as Record<string, unknown>;
    const verb = str(field(o, 'Verb'), 'Verb', i);
    const key = utf8(str(field(o, 'Key'), 'Key', i));
    const value = () => decodeValue(field(o, 'Value'), i, maxValueBytes);
    const flags = () => uint(field(o, 'Flags'), 'Flags', i);
    const index = () => uint(field(o, 'Index'), 'Index', i);
    switch (verb) {
      case 'set':
        return { verb, key, value: value(), flags: flags() };
      case 'cas':
        return { verb, key, value: value(), flags: flags(), index: index() };
      case 'lock':
      case 'unlock':
        return { verb, key, value: value(), flags: flags(), session: session(field(o, 'Session'), i) };
      case 'get':
      case 'get-tree':
      case 'check-not-exists':
      case 'delete':
      case 'delete-tree':
        return { verb, key };
      case 'check-index':
      case 'delete-cas':
        return { verb, key, index: index() };
      case 'check-session':
        return { verb, key, session: session(field(o, 'Session'), i) };
      default:
        throw badRequest(`Operation ${i}: unknown KV verb "${verb}"`);
    }
  });
}

/** Store messages name sessions by number; clients know them by UUID. */
function withSessionIds(text: string): string {
  return text.replace(/session "?(\d+)"?/g, (_m, n: string) => `session "${formatSessionId(Number(n))}"`);
}

export function registerTxnRoutes(app: FastifyInstance, ctx: ConsulContext): void {
  app.put('/v1/txn', async (req, reply) => {
    const raw = req.body as Buffer | undefined;
    let body: unknown;
    try {
      body = JSON.parse(raw && raw.byteLength > 0 ? raw.toString('utf8') : 'null');
    } catch (err) {
      throw badRequest(`Failed to parse body: ${(err as Error).message}`);
    }
    const ops = decodeTxnOps(body, ctx.options.maxValueBytes);
    const result: Result = await ctx.server.write({ type: 'consulTxn', ops });
    if (result.type === 'error') {
      const { opIndex } = result.error;
      if (opIndex === undefined) throw result.error;
      return reply
        .code(409)
        .send({ Results: null, Errors: [{ OpIndex: opIndex, What: withSessionIds(result.error.message) }] });
    }
    if (result.type !== 'consulTxn') throw new HttpError(500, `unexpected ${result.type} result`);
    const results = result.results.flatMap((r, i) => {
      const verb = ops[i]!.verb;
      const hideValue = verb === 'set' || verb === 'cas' || verb === 'lock' || verb === 'unlock';
      return r.kvs.map((kv) => ({ KV: { ...toConsulEntry(kv), ...(hideValue ? { Value: null } : {}) } }));
    });
    reply.header('X-Consul-Index', String(Math.max(1, result.revision)));
    return { Results: results, Errors: null };
  });
}
