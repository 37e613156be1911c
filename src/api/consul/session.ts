import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { CatalogCheck, LeaseInfo, Result } from '../../store/index.js';
import { StoreErrorCode, Topic } from '../../store/index.js';
import { field, isObject } from './decode.js';
import { badRequest, HttpError } from './errors.js';
import { blockingRead, type ConsulContext } from './http.js';
import { durationMs } from './query.js';
import { formatSessionId, isUuid, parseSessionId } from './session-id.js';

/**
 * Consul sessions (/v1/session/*). A session is the store's lease object: TTL, behavior on
 * invalidation (release locks, Consul's default, or delete the keys), lock-delay, and the node
 * and checks it is tied to. etcd leases share the table; sessions are the ones tied to a node.
 */

/** Consul's session_ttl_min and its upper bound. */
const TTL_MIN_MS = 10_000;
const TTL_MAX_MS = 86_400_000;
/** Consul waits up to twice the TTL before invalidating a session (structs.SessionTTLMultiplier). */
const TTL_MULTIPLIER = 2;
const DEFAULT_LOCK_DELAY_MS = 15_000;

interface SessionRequest {
  Name?: unknown;
  Node?: unknown;
  LockDelay?: unknown;
  Behavior?: unknown;
  TTL?: unknown;
  Checks?: unknown;
  NodeChecks?: unknown;
  ServiceChecks?: unknown;
}

const SESSION_FIELDS: (keyof SessionRequest)[] = [
  'Name',
  'Node',
  'LockDelay',
  'Behavior',
  'TTL',
  'Checks',
  'NodeChecks',
  'ServiceChecks',
];

/** Consul decodes JSON bodies with case-insensitive field names (python-consul sends "ttl", "lockdelay"). */
function parseBody(req: FastifyRequest): SessionRequest {
  const body = req.body as Buffer | undefined;
  if (!body || body.byteLength === 0) return {};
  let v: unknown;
  try {
    v = JSON.parse(body.toString('utf8')) as unknown;
  } catch (err) {
    throw badRequest(`Request decode failed: ${(err as Error).message}`);
  }
  if (v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v))
    throw badRequest('Request decode failed: body is not an object');
  const out: SessionRequest = {};
  for (const [key, value] of Object.entries(v)) {
    const field = SESSION_FIELDS.find((f) => f.toLowerCase() === key.toLowerCase());
    if (field) out[field] = value;
  }
  return out;
}

/**
 * LockDelay as Consul reads it (structs.FixupLockDelay): a duration string, or a number that
 * is seconds when small (< 1000) and nanoseconds otherwise.
 */
function lockDelayMs(v: unknown): number {
  if (v === undefined || v === null) return DEFAULT_LOCK_DELAY_MS;
  if (typeof v === 'string') return durationMs(v, 'LockDelay');
  if (typeof v === 'number' && Number.isFinite(v) && v >= 0) return v < 1000 ? v * 1000 : v / 1e6;
  throw badRequest(`Request decode failed: invalid LockDelay ${JSON.stringify(v)}`);
}

/**
 * ServiceChecks: `[{ID, Namespace}]` (Namespace is Enterprise; kept for the echo). Consul looks
 * them up by ID on the session's node, as it does NodeChecks, so the store ties them the same way.
 */
function serviceChecks(v: unknown): { ID: string; Namespace: string }[] {
  if (v === undefined || v === null) return [];
  const fail = () => badRequest('Request decode failed: ServiceChecks must be a list of {ID, Namespace}');
  if (!Array.isArray(v)) throw fail();
  return v.map((item: unknown) => {
    if (!isObject(item)) throw fail();
    const id = field(item, 'ID');
    const namespace = field(item, 'Namespace') ?? '';
    if (typeof id !== 'string' || id === '' || typeof namespace !== 'string') throw fail();
    return { ID: id, Namespace: namespace };
  });
}

function stringList(v: unknown, field: string): string[] {
  if (v === undefined || v === null) return [];
  if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v;
  throw badRequest(`Request decode failed: ${field} must be a list of check IDs`);
}

/** Consul echoes the TTL as given; we keep milliseconds and show whole seconds ("15s"). */
function goDuration(ms: number): string {
  return `${Math.round(ms / 1000)}s`;
}

/**
 * A session as Consul shows it. The store keeps one list of the checks a session is tied to;
 * the ones registered for a service are shown as ServiceChecks, the rest as NodeChecks.
 */
export function toConsulSession(
  lease: LeaseInfo,
  catalog: { check(node: string, checkId: string): CatalogCheck | undefined },
): Record<string, unknown> {
  const nodeChecks: string[] = [];
  const serviceChecks: { ID: string; Namespace: string }[] = [];
  for (const id of lease.checks) {
    const serviceId = catalog.check(lease.node, id)?.serviceId ?? '';
    if (serviceId === '') nodeChecks.push(id);
    else serviceChecks.push({ ID: id, Namespace: '' });
  }
  return {
    ID: formatSessionId(lease.id),
    Name: lease.name,
    Node: lease.node,
    LockDelay: lease.lockDelayMs * 1e6,
    Behavior: lease.behavior,
    TTL: lease.ttlMs > 0 ? goDuration(lease.ttlMs / TTL_MULTIPLIER) : '',
    Checks: lease.checks,
    NodeChecks: nodeChecks,
    ServiceChecks: serviceChecks.length > 0 ? serviceChecks : null,
    CreateIndex: lease.createRevision,
    ModifyIndex: lease.createRevision,
  };
}

/**
 * The session a path names: its lease id, or null for a well-formed UUID this server never
 * issued (a session that does not exist). Text that is not a UUID is 400.
 */
function sessionParam(req: FastifyRequest): { id: number | null; text: string } {
  const text = (req.params as { id?: string }).id ?? '';
  const id = parseSessionId(text);
  if (id === null && !isUuid(text))
    throw badRequest(`Session ID must be a valid UUID: ${JSON.stringify(text)}`);
  return { id, text };
}

function expectResult<T extends Result['type']>(result: Result, type: T): Extract<Result, { type: T }> {
  if (result.type === 'error') throw result.error;
  if (result.type !== type) throw new HttpError(500, `unexpected ${result.type} result`);
  return result as Extract<Result, { type: T }>;
}

const isSession = (l: LeaseInfo) => l.node !== '';

export function registerSessionRoutes(app: FastifyInstance, ctx: ConsulContext): void {
  const { server } = ctx;
  const sessions = { kind: 'topic', topic: Topic.sessions } as const;

  app.put('/v1/session/create', async (req) => {
    const body = parseBody(req);
    const node = body.Node === undefined || body.Node === '' ? ctx.agent.nodeName : body.Node;
    if (typeof node !== 'string') throw badRequest('Request decode failed: Node must be a string');
    const behavior = body.Behavior === undefined || body.Behavior === '' ? 'release' : body.Behavior;
    if (behavior !== 'release' && behavior !== 'delete')
      throw badRequest(`Invalid Behavior setting '${String(behavior)}'`);
    let ttlMs = 0;
    if (body.TTL !== undefined && body.TTL !== '') {
      if (typeof body.TTL !== 'string')
        throw badRequest('Request decode failed: TTL must be a duration string');
      ttlMs = durationMs(body.TTL, 'TTL');
      if (ttlMs !== 0 && (ttlMs < TTL_MIN_MS || ttlMs > TTL_MAX_MS)) {
        throw badRequest(`Invalid Session TTL '${body.TTL}', must be between [10s=24h0m0s]`);
      }
    }
    // Neither Checks nor NodeChecks: tie the session to the node's serfHealth, as Consul does
    // (ServiceChecks alone keep it).
    const explicit = [...stringList(body.Checks, 'Checks'), ...stringList(body.NodeChecks, 'NodeChecks')];
    const nodeChecks = body.Checks === undefined && body.NodeChecks === undefined ? ['serfHealth'] : explicit;
    const checks = [...new Set([...nodeChecks, ...serviceChecks(body.ServiceChecks).map((c) => c.ID)])];
    const name = body.Name === undefined ? '' : body.Name;
    if (typeof name !== 'string') throw badRequest('Request decode failed: Name must be a string');
    const result = await server.write({
      type: 'leaseGrant',
      id: 0,
      ttlMs: ttlMs * TTL_MULTIPLIER,
      behavior,
      lockDelayMs: lockDelayMs(body.LockDelay),
      node,
      checks,
      name,
    });
    // Consul's texts for a session tied to a check that is missing or critical.
    if (
      result.type === 'error' &&
      (result.error.code === StoreErrorCode.CheckNotFound ||
        result.error.code === StoreErrorCode.CheckCritical)
    ) {
      const { message } = result.error;
      throw new HttpError(500, `${message.charAt(0).toUpperCase()}${message.slice(1)}`);
    }
    const granted = expectResult(result, 'leaseGrant');
    return { ID: formatSessionId(granted.id) };
  });

  app.put('/v1/session/destroy/:id', async (req) => {
    const { id } = sessionParam(req);
    if (id === null) return true;
    const result = await server.write({ type: 'leaseRevoke', id });
    // Consul answers true whether or not the session existed.
    if (result.type === 'error' && result.error.code !== 'LEASE_NOT_FOUND') throw result.error;
    return true;
  });

  app.put('/v1/session/renew/:id', async (req, reply) => {
    const { id, text } = sessionParam(req);
    const notFound = () =>
      reply.code(404).type('text/plain; charset=utf-8').send(`Session id '${text}' not found`);
    if (id === null) return notFound();
    const result = expectResult(await server.write({ type: 'leaseKeepAlive', ids: [id] }), 'leaseKeepAlive');
    if (!result.leases[0]?.found) return notFound();
    // server.write returns once this server applied the keep-alive, even when a follower
    // forwarded it, so the session's creation is here too.
    const lease = server.store.lease(id);
    if (!lease) return notFound();
    return [toConsulSession(lease, server.store.catalog)];
  });

  app.get('/v1/session/info/:id', async (req, reply) => {
    const { id } = sessionParam(req);
    return blockingRead(ctx, req, reply, sessions, () => {
      const lease = id === null ? undefined : server.store.lease(id);
      return lease && isSession(lease) ? [toConsulSession(lease, server.store.catalog)] : [];
    });
  });

  app.get('/v1/session/node/:node', async (req, reply) => {
    const node = (req.params as { node: string }).node;
    return blockingRead(ctx, req, reply, sessions, () =>
      server.store
        .leases()
        .filter((l) => l.node === node)
        .map((l) => toConsulSession(l, server.store.catalog)),
    );
  });

  app.get('/v1/session/list', async (req, reply) =>
    blockingRead(ctx, req, reply, sessions, () =>
      server.store
        .leases()
        .filter(isSession)
        .map((l) => toConsulSession(l, server.store.catalog)),
    ),
  );
}
