import type { FastifyInstance, FastifyRequest } from 'fastify';
import {
  type ConsulFlags,
  type KeyValue,
  type Result,
  StoreErrorCode,
  text,
  utf8,
} from '../../store/index.js';
import { badRequest, HttpError } from './errors.js';
import { blockingRead, type ConsulContext } from './http.js';
import { flag, flagsParam, query, uintParam } from './query.js';
import { formatSessionId, SessionNames } from './session-id.js';

/**
 * Consul's KV endpoint (/v1/kv/<key>): GET (one key, ?recurse, ?keys with ?separator, ?raw),
 * PUT (?flags, ?cas) and DELETE (?recurse, ?cas), each a one-op Consul txn in the store.
 */

interface ConsulKvEntry {
  LockIndex: number;
  Key: string;
  /** A bigint above 2^53, printed as exact digits. */
  Flags: ConsulFlags;
  Value: string | null;
  CreateIndex: number;
  ModifyIndex: number;
  Session?: string;
}

export function toConsulEntry(kv: KeyValue): ConsulKvEntry {
  const entry: ConsulKvEntry = {
    LockIndex: kv.lockIndex,
    Key: text(kv.key),
    Flags: kv.flags,
    // Go marshals an empty []byte read back from the store as null.
    Value: kv.value.byteLength > 0 ? Buffer.from(kv.value).toString('base64') : null,
    CreateIndex: kv.createRevision,
    ModifyIndex: kv.modRevision,
  };
  if (kv.session !== 0) entry.Session = formatSessionId(kv.session);
  return entry;
}

/**
 * ?acquire=<session> / ?release=<session>, or null when absent. A UUID we never issued is a
 * session that does not exist: acquire fails with "invalid session", release answers false.
 */
function sessionQuery(
  q: Record<string, string | undefined>,
  name: string,
  names: SessionNames,
): number | null {
  if (!flag(q, name)) return null;
  const id = names.id(q[name] ?? '');
  if (id === null) throw badRequest(`Invalid session ID for ?${name}: ${JSON.stringify(q[name] ?? '')}`);
  return id;
}

function keyOf(req: FastifyRequest): string {
  return (req.params as { '*': string })['*'] ?? '';
}

function requireKey(key: string, verb: string): void {
  if (key === '') throw badRequest(`Missing key name`);
  if (verb && key.startsWith('/')) throw badRequest('Key may not begin with a /');
}

export function registerKvRoutes(app: FastifyInstance, ctx: ConsulContext): void {
  const { server } = ctx;

  app.get('/v1/kv/*', async (req, reply) => {
    const q = query(req);
    const key = keyOf(req);
    const keyBytes = utf8(key);
    if (flag(q, 'keys')) {
      // `seperator` is Consul's historical spelling, still accepted; `separator` wins.
      const sepText = flag(q, 'separator') ? q.separator : q.seperator;
      const separator = sepText ? utf8(sepText) : undefined;
      const keys = await blockingRead(ctx, req, reply, { kind: 'prefix', prefix: keyBytes }, () =>
        server.store.listKeys(keyBytes, separator).map((k) => text(k)),
      );
      // An empty root listing is `[]`, not 404 (Consul's KVSGetKeys); a prefix with no keys is 404.
      if (keys.length === 0 && key !== '') return reply.code(404).send();
      return keys;
    }
    if (flag(q, 'recurse')) {
      const kvs = await blockingRead(ctx, req, reply, { kind: 'prefix', prefix: keyBytes }, () =>
        server.store.list(keyBytes),
      );
      if (kvs.length === 0) return reply.code(404).send();
      return kvs.map(toConsulEntry);
    }
    requireKey(key, '');
    const kv = await blockingRead(ctx, req, reply, { kind: 'key', key: keyBytes }, () =>
      server.store.get(keyBytes),
    );
    if (!kv) return reply.code(404).send();
    if (flag(q, 'raw')) {
      // Consul serves raw values as text/plain, unsniffed and sandboxed, so a browser cannot be
      // tricked into running a stored value as a page or script.
      return reply
        .type('text/plain; charset=utf-8')
        .header('X-Content-Type-Options', 'nosniff')
        .header('Content-Security-Policy', 'sandbox')
        .send(Buffer.from(kv.value));
    }
    return [toConsulEntry(kv)];
  });

  app.put('/v1/kv/*', async (req) => {
    const q = query(req);
    const key = keyOf(req);
    requireKey(key, 'put');
    const names = new SessionNames();
    const acquire = sessionQuery(q, 'acquire', names);
    const release = sessionQuery(q, 'release', names);
    if (acquire !== null && release !== null) throw badRequest('Conflicting flags: acquire and release');
    const body = (req.body as Buffer | undefined) ?? Buffer.alloc(0);
    if (body.byteLength > ctx.options.maxValueBytes) {
      throw new HttpError(
        413,
        `Request body(${body.byteLength} bytes) too large, max size: ${ctx.options.maxValueBytes} bytes`,
      );
    }
    const flags = flagsParam(q) ?? 0;
    const cas = uintParam(q, 'cas');
    const value = new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
    const keyBytes = utf8(key);
    if (cas !== undefined && (acquire !== null || release !== null))
      throw badRequest('Conflicting flags: cas with acquire or release');
    const op =
      acquire !== null
        ? ({ verb: 'lock', key: keyBytes, value, flags, session: acquire } as const)
        : release !== null
          ? ({ verb: 'unlock', key: keyBytes, value, flags, session: release } as const)
          : cas === undefined
            ? ({ verb: 'set', key: keyBytes, value, flags } as const)
            : ({ verb: 'cas', key: keyBytes, value, flags, index: cas } as const);
    const result = await server.write({ type: 'consulTxn', ops: [op] });
    const session = acquire ?? release;
    if (session !== null && result.type === 'error' && result.error.code === StoreErrorCode.SessionNotFound) {
      // Consul's text for a lock with an unknown or invalidated session.
      throw new HttpError(500, `rpc error making call: invalid session "${names.name(session)}"`);
    }
    return applied(result);
  });

  app.delete('/v1/kv/*', async (req) => {
    const q = query(req);
    const key = keyOf(req);
    const keyBytes = utf8(key);
    // Consul refuses the pair rather than delete a whole tree unconditionally.
    if (flag(q, 'recurse') && flag(q, 'cas'))
      throw badRequest('Conflicting flags: cas cannot be used with recurse');
    if (flag(q, 'recurse')) {
      return applied(
        await server.write({ type: 'consulTxn', ops: [{ verb: 'delete-tree', key: keyBytes }] }),
      );
    }
    requireKey(key, 'delete');
    const cas = uintParam(q, 'cas');
    const op =
      cas === undefined
        ? ({ verb: 'delete', key: keyBytes } as const)
        : ({ verb: 'delete-cas', key: keyBytes, index: cas } as const);
    return applied(await server.write({ type: 'consulTxn', ops: [op] }));
  });
}

/** Consul answers `true` or `false` for KV writes; a failed cas or lock is `false`, not an error. */
function applied(result: Result): boolean {
  if (result.type !== 'error') return true;
  const { code } = result.error;
  if (
    code === StoreErrorCode.CasFailed ||
    code === StoreErrorCode.LockHeld ||
    code === StoreErrorCode.LockDelay
  )
    return false;
  throw result.error;
}
