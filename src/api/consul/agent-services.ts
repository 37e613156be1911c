import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { LocalCheck, LocalService, LocalState } from '../../agent/local/local-state.js';
import type { HealthStatus } from '../../store/index.js';
import { CHECK_STATUSES } from './catalog-json.js';
import { fieldOf, jsonBody, objectBody, optString } from './decode.js';
import { badRequest, HttpError } from './errors.js';
import { filterValues } from './filter.js';
import { query } from './query.js';

/**
 * The agent's own services and checks (/v1/agent/service/*, /v1/agent/check/*, maintenance).
 * These talk to the local agent, never to the catalog: anti-entropy carries the result there.
 */

export function agentServiceJson(entry: LocalService, datacenter: string): Record<string, unknown> {
  const s = entry.service;
  return {
    ID: s.id,
    Service: s.service,
    Tags: s.tags ?? [],
    Meta: s.meta ?? {},
    Port: s.port ?? 0,
    Address: s.address ?? '',
    Weights: { Passing: s.weights?.passing ?? 1, Warning: s.weights?.warning ?? 1 },
    EnableTagOverride: s.enableTagOverride ?? false,
    Datacenter: datacenter,
    ...(s.kind ? { Kind: s.kind } : {}),
  };
}

function goDuration(ms: number): string {
  return ms <= 0 ? '' : ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

export function agentCheckJson(check: LocalCheck, local: LocalState, node: string): Record<string, unknown> {
  const service = check.def.serviceId ? local.services.get(check.def.serviceId) : undefined;
  return {
    Node: node,
    CheckID: check.def.id,
    Name: check.def.name,
    Status: check.status,
    Notes: check.def.notes,
    Output: check.output,
    ServiceID: check.def.serviceId,
    ServiceName: service?.service.service ?? '',
    ServiceTags: service?.service.tags ?? [],
    Type: check.def.type,
    Interval: goDuration(check.def.intervalMs),
    Timeout:
      check.def.type === 'ttl' || check.def.type === 'maintenance' ? '' : goDuration(check.def.timeoutMs),
    ExposedPort: 0,
    Definition: {},
    CreateIndex: 0,
    ModifyIndex: 0,
  };
}

/** Consul's ?enable=true|false for maintenance mode. */
function enableParam(req: FastifyRequest): boolean {
  const raw = query(req).enable;
  if (raw === undefined || raw === '') throw badRequest('Missing value for enable');
  if (raw !== 'true' && raw !== 'false') throw badRequest(`Invalid value for enable: "${raw}"`);
  return raw === 'true';
}

/** The aggregated status of a local service: the worst of its checks and the node's. */
function serviceHealth(local: LocalState, serviceId: string): HealthStatus {
  const checks = [...local.checks.values()].filter(
    (c) => c.def.serviceId === serviceId || c.def.serviceId === '',
  );
  if (checks.some((c) => c.status === 'critical' || c.status === 'maintenance')) return 'critical';
  if (checks.some((c) => c.status === 'warning')) return 'warning';
  return 'passing';
}

/** Consul's /v1/agent/health/service codes: 200 passing, 429 warning, 503 critical. */
const HEALTH_CODE: Record<string, number> = { passing: 200, warning: 429, critical: 503, maintenance: 503 };

/**
 * Consul before 1.0 took GET on the agent's state-changing endpoints; it now wants PUT, but
 * python-consul as Debian ships it (1.1) still sends GET for deregistration and TTL updates,
 * so those accept both.
 */
const PUT_OR_LEGACY_GET: ('GET' | 'PUT')[] = ['GET', 'PUT'];

export function registerAgentServiceRoutes(
  app: FastifyInstance,
  agent: { nodeName: string; datacenter: string },
  local: LocalState,
): void {
  const id = (req: FastifyRequest) => (req.params as { id: string }).id;

  app.put('/v1/agent/service/register', async (req, reply) => {
    const q = query(req);
    const replace = Object.hasOwn(q, 'replace-existing-checks') && q['replace-existing-checks'] !== 'false';
    local.addService(jsonBody(req) ?? {}, 'api', replace);
    return reply.code(200).send();
  });

  app.route({
    method: PUT_OR_LEGACY_GET,
    url: '/v1/agent/service/deregister/:id',
    handler: async (req, reply) => {
      if (!local.removeService(id(req)))
        throw new HttpError(
          404,
          `Unknown service ID "${id(req)}". Ensure that the service ID is passed, not the service name.`,
        );
      return reply.code(200).send();
    },
  });

  app.get('/v1/agent/services', async (req) => {
    const all: Record<string, Record<string, unknown>> = {};
    for (const [sid, entry] of local.services) all[sid] = agentServiceJson(entry, agent.datacenter);
    return filterValues(all, query(req).filter);
  });

  app.get('/v1/agent/service/:id', async (req) => {
    const entry = local.services.get(id(req));
    if (!entry) throw new HttpError(404, `unknown service ID: ${id(req)}`);
    return agentServiceJson(entry, agent.datacenter);
  });

  app.get('/v1/agent/checks', async (req) => {
    const all: Record<string, Record<string, unknown>> = {};
    for (const [cid, check] of local.checks) all[cid] = agentCheckJson(check, local, agent.nodeName);
    return filterValues(all, query(req).filter);
  });

  app.put('/v1/agent/check/register', async (req, reply) => {
    local.addCheck(jsonBody(req) ?? {}, 'api');
    return reply.code(200).send();
  });

  app.route({
    method: PUT_OR_LEGACY_GET,
    url: '/v1/agent/check/deregister/:id',
    handler: async (req, reply) => {
      if (!local.removeCheck(id(req)))
        throw new HttpError(
          404,
          `Unknown check ID "${id(req)}". Ensure that the check ID is passed, not the check name.`,
        );
      return reply.code(200).send();
    },
  });

  for (const [verb, status] of [
    ['pass', 'passing'],
    ['warn', 'warning'],
    ['fail', 'critical'],
  ] as const) {
    app.route({
      method: PUT_OR_LEGACY_GET,
      url: `/v1/agent/check/${verb}/:id`,
      handler: async (req, reply) => {
        local.updateTtl(id(req), status, query(req).note ?? '');
        return reply.code(200).send();
      },
    });
  }

  app.put('/v1/agent/check/update/:id', async (req, reply) => {
    const body = objectBody(req);
    const status = optString(fieldOf(body, 'Status'), 'Status') ?? '';
    if (!CHECK_STATUSES.includes(status as HealthStatus))
      throw badRequest(`Invalid check status: "${status}"`);
    local.updateTtl(id(req), status as HealthStatus, optString(fieldOf(body, 'Output'), 'Output') ?? '');
    return reply.code(200).send();
  });

  app.put('/v1/agent/maintenance', async (req, reply) => {
    local.setNodeMaintenance(enableParam(req), query(req).reason ?? '');
    return reply.code(200).send();
  });

  app.put('/v1/agent/service/maintenance/:id', async (req, reply) => {
    local.setServiceMaintenance(id(req), enableParam(req), query(req).reason ?? '');
    return reply.code(200).send();
  });

  app.get('/v1/agent/health/service/id/:id', async (req, reply) => {
    const entry = local.services.get(id(req));
    if (!entry)
      return reply
        .code(404)
        .type('text/plain; charset=utf-8')
        .send(`ServiceId ${id(req)} not found`);
    const status = serviceHealth(local, entry.service.id);
    return reply
      .code(HEALTH_CODE[status] ?? 503)
      .send({ AggregatedStatus: status, Service: agentServiceJson(entry, agent.datacenter), Checks: [] });
  });

  app.get('/v1/agent/health/service/name/:name', async (req, reply) => {
    const name = (req.params as { name: string }).name;
    const entries = [...local.services.values()].filter((e) => e.service.service === name);
    if (entries.length === 0)
      return reply.code(404).type('text/plain; charset=utf-8').send(`ServiceName ${name} Not Found`);
    const statuses = entries.map((e) => serviceHealth(local, e.service.id));
    const worst = statuses.includes('critical')
      ? 'critical'
      : statuses.includes('warning')
        ? 'warning'
        : 'passing';
    return reply.code(HEALTH_CODE[worst] ?? 503).send(
      entries.map((e, i) => ({
        AggregatedStatus: statuses[i],
        Service: agentServiceJson(e, agent.datacenter),
        Checks: [],
      })),
    );
  });
}
