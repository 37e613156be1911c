import type { FastifyInstance } from 'fastify';
import type { CatalogCheck, HealthStatus, ServiceEntry } from '../../store/index.js';
import { Topic } from '../../store/index.js';
import { checkJson, nodeJson, serviceJson } from './catalog-json.js';
import { badRequest } from './errors.js';
import { applyFilter } from './filter.js';
import { blockingRead, type ConsulContext } from './http.js';
import { allParams, flag, matchesNodeMeta, nodeMetaParams, query } from './query.js';

/**
 * Consul's health endpoints (/v1/health/*): the catalog seen through its checks. An instance's
 * checks are its service checks plus its node's checks, so a failed node takes all its
 * services down with it.
 */

const STATES = new Set(['any', 'passing', 'warning', 'critical']);

/** `?passing`: every check of the instance passes (a warning excludes it too, as in Consul). */
export function allPassing(entry: ServiceEntry): boolean {
  return entry.checks.every((c) => c.status === 'passing');
}

export function healthEntryJson(entry: ServiceEntry, datacenter: string): Record<string, unknown> {
  return {
    Node: nodeJson(entry.node, datacenter),
    Service: serviceJson(entry.service),
    Checks: entry.checks.map(checkJson),
  };
}

export function registerHealthRoutes(app: FastifyInstance, ctx: ConsulContext): void {
  const { server } = ctx;
  const catalog = () => server.store.catalog;
  const dc = ctx.agent.datacenter;

  app.get('/v1/health/node/:node', async (req, reply) => {
    const q = query(req);
    const name = (req.params as { node: string }).node;
    return blockingRead(ctx, req, reply, { kind: 'topic', topic: Topic.node(name) }, () =>
      applyFilter(catalog().nodeChecks(name).map(checkJson), q.filter),
    );
  });

  app.get('/v1/health/checks/:service', async (req, reply) => {
    const q = query(req);
    const name = (req.params as { service: string }).service;
    const meta = nodeMetaParams(q);
    return blockingRead(ctx, req, reply, { kind: 'topic', topic: Topic.service(name) }, () => {
      const checks: CatalogCheck[] = [];
      for (const entry of catalog().instances(name)) {
        if (!matchesNodeMeta(entry.node.meta, meta)) continue;
        for (const check of entry.checks) if (check.serviceId === entry.service.id) checks.push(check);
      }
      return applyFilter(checks.map(checkJson), q.filter);
    });
  });

  app.get('/v1/health/service/:service', async (req, reply) => {
    const q = query(req);
    const name = (req.params as { service: string }).service;
    const tags = allParams(q, 'tag');
    const meta = nodeMetaParams(q);
    const passing = flag(q, 'passing') && q.passing !== 'false' && q.passing !== '0';
    return blockingRead(ctx, req, reply, { kind: 'topic', topic: Topic.service(name) }, () =>
      applyFilter(
        catalog()
          .instances(name)
          .filter(
            (e) =>
              tags.every((t) => e.service.tags.includes(t)) &&
              matchesNodeMeta(e.node.meta, meta) &&
              (!passing || allPassing(e)),
          )
          .map((e) => healthEntryJson(e, dc)),
        q.filter,
      ),
    );
  });

  app.get('/v1/health/state/:state', async (req, reply) => {
    const q = query(req);
    const state = (req.params as { state: string }).state;
    if (!STATES.has(state))
      throw badRequest(`Invalid state: "${state}" (use any, passing, warning or critical)`);
    const meta = nodeMetaParams(q);
    return blockingRead(ctx, req, reply, { kind: 'topic', topic: Topic.checks }, () =>
      applyFilter(
        catalog()
          .checksInState(state as HealthStatus | 'any')
          .filter((c) => meta.length === 0 || matchesNodeMeta(catalog().nodes.get(c.node)?.meta ?? {}, meta))
          .map(checkJson),
        q.filter,
      ),
    );
  });
}
