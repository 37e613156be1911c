import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { LocalState } from '../../agent/local/local-state.js';
import type { Logger } from '../../server/logger.js';
import type { ConclaveServer } from '../../server/server.js';
import type { WaitTarget } from '../../store/index.js';
import { registerAgentRoutes } from './agent.js';
import { registerAgentServiceRoutes } from './agent-services.js';
import { registerCatalogRoutes } from './catalog.js';
import { HttpError, toHttpError } from './errors.js';
import { registerHealthRoutes } from './health.js';
import { stringifyJson } from './json.js';
import { registerKvRoutes } from './kv.js';
import { clampWait, consistency, query, setIndexHeaders, uintParam, waitParam } from './query.js';
import { registerSessionRoutes } from './session.js';
import { registerStatusRoutes } from './status.js';
import { registerTxnRoutes } from './txn.js';

/** What the HTTP API needs from the agent around it. */
export interface AgentControl {
  nodeName: string;
  datacenter: string;
  /** Leave the cluster gracefully; the process exits once the answer is sent. */
  leave(): Promise<void>;
  /** The agent's own services and checks. */
  local: LocalState;
  /** The gossip pool as Consul's /v1/agent/members entries. */
  members?: () => Record<string, unknown>[];
}

export interface ConsulHttpOptions {
  /** Largest KV value, bytes (Consul's kv_max_value_size, 512 KiB by default). */
  maxValueBytes: number;
  log: Logger;
}

export interface ConsulContext {
  server: ConclaveServer;
  agent: AgentControl;
  options: ConsulHttpOptions;
}

/**
 * A Fastify instance with Consul's HTTP conventions: raw bodies, plain-text errors with
 * Consul's status codes, 405 with Allow for a known path, and Consul's 404 text. Server and
 * client agents add their routes to it.
 */
export function createConsulApp(options: ConsulHttpOptions): FastifyInstance {
  const app = Fastify({
    logger: false,
    // Values up to the limit, plus room for the request line: the KV handler gives the precise error.
    bodyLimit: options.maxValueBytes + 64 * 1024,
    // Consul keys may contain anything URL-encodable, including '//' and trailing slashes.
    routerOptions: { ignoreDuplicateSlashes: false, ignoreTrailingSlash: false, maxParamLength: 64 * 1024 },
  });
  // Every body is raw bytes: a KV value is opaque whatever Content-Type a client sends.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
  // KV Flags may be bigints (uint64): they print as exact digits.
  app.setReplySerializer((payload) => stringifyJson(payload));
  app.setErrorHandler((err, _req, reply) => {
    const e = err as Error & { statusCode?: number; code?: string };
    const http =
      e.code === 'FST_ERR_CTP_BODY_TOO_LARGE'
        ? new HttpError(413, `Request body too large, max size: ${options.maxValueBytes} bytes`)
        : e.statusCode && e.statusCode < 500 && !(err instanceof HttpError)
          ? new HttpError(e.statusCode, e.message)
          : toHttpError(err);
    if (http.status >= 500) options.log.warn('request failed', { error: http.message });
    void reply.code(http.status).type('text/plain; charset=utf-8').send(http.message);
  });
  // Consul answers 405 for a known path with the wrong method: remember every route's methods.
  const routes: { pattern: RegExp; methods: Set<string> }[] = [];
  app.addHook('onRoute', (route) => {
    const source = route.url
      .replace(/[.+?^${}()|[\]\\]/g, '\\$&')
      .replace(/:[^/]+/g, '[^/]+')
      .replace(/\*/g, '.*');
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    routes.push({ pattern: new RegExp(`^${source}$`), methods: new Set(methods) });
  });
  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split('?')[0] ?? '';
    const allowed = new Set(routes.filter((r) => r.pattern.test(path)).flatMap((r) => [...r.methods]));
    allowed.delete('HEAD');
    if (allowed.size > 0) {
      void reply
        .code(405)
        .header('Allow', [...allowed].sort().join(', '))
        .type('text/plain; charset=utf-8')
        .send(`method ${req.method} not allowed`);
      return;
    }
    void reply
      .code(404)
      .type('text/plain; charset=utf-8')
      .send(`Invalid URL path: not a recognized HTTP API endpoint: ${req.url}`);
  });
  return app;
}

export function createConsulHttp(ctx: ConsulContext): FastifyInstance {
  const app = createConsulApp(ctx.options);
  registerStatusRoutes(app, ctx);
  registerKvRoutes(app, ctx);
  registerAgentRoutes(app, ctx);
  registerSessionRoutes(app, ctx);
  registerTxnRoutes(app, ctx);
  registerCatalogRoutes(app, ctx);
  registerHealthRoutes(app, ctx);
  registerAgentServiceRoutes(app, ctx.agent, ctx.agent.local);
  return app;
}

/**
 * Run a read the Consul way: the requested consistency first, then, with `?index=`, block until
 * the target's index passes it or `?wait=` runs out (Consul adds up to wait/16 of jitter so
 * many watchers do not return together). Sets X-Consul-Index and friends.
 */
export async function blockingRead<T>(
  ctx: ConsulContext,
  req: FastifyRequest,
  reply: FastifyReply,
  target: WaitTarget,
  read: () => T,
): Promise<T> {
  const q = query(req);
  const mode = consistency(q);
  await ctx.server.readBarrier(mode);
  const minIndex = uintParam(q, 'index') ?? 0;
  const requestedWaitMs = waitParam(q); // checked even without ?index=, as Consul does
  // After a read barrier this store has every revision a client can have seen, so an index
  // beyond it is from the future (a restored or another cluster): answer at once with the real
  // index, so the client sees it go backwards and resets, as Consul documents. A stale read
  // may simply be behind, so it waits.
  if (minIndex > 0 && (minIndex <= ctx.server.store.revision || mode === 'stale')) {
    await waitForIndex(ctx, req, target, minIndex, clampWait(requestedWaitMs, Math.random()));
  }
  setIndexHeaders(reply, ctx.server.store.index(target), ctx.server);
  return read();
}

function waitForIndex(
  ctx: ConsulContext,
  req: FastifyRequest,
  target: WaitTarget,
  minIndex: number,
  waitMs: number,
): Promise<void> {
  let finish: () => void = () => {};
  const started = ctx.server.store.waitForChange(target, minIndex, () => finish());
  if (started.ready) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => finish(), waitMs);
    const onClose = () => finish();
    req.raw.once('close', onClose);
    finish = () => {
      clearTimeout(timer);
      req.raw.off('close', onClose);
      started.cancel();
      resolve();
    };
  });
}
