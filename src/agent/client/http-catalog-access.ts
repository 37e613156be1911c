import type { CatalogCheck, CatalogNode, CatalogService, HealthStatus } from '../../store/index.js';
import type { CatalogAccess, CatalogWrite, NodeView } from '../local/anti-entropy.js';
import type { ServerPool } from './server-pool.js';

/**
 * Anti-entropy on a client agent: the catalog read and written through a server's Consul HTTP
 * API (consistent reads, so the comparison is against what the leader has).
 */

type Json = Record<string, unknown>;

async function call(pool: ServerPool, method: string, path: string, body?: unknown): Promise<unknown> {
  const server = pool.pick();
  const init: RequestInit = { method, signal: AbortSignal.timeout(10_000) };
  if (body !== undefined) init.body = JSON.stringify(body);
  let res: Response;
  try {
    res = await fetch(`http://${server.http}${path}`, init);
  } catch (err) {
    pool.markFailed(server);
    throw err;
  }
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${method} ${path}: ${res.status} ${text.trim()}`);
  return text ? (JSON.parse(text) as unknown) : null;
}

const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const num = (v: unknown): number => (typeof v === 'number' ? v : 0);
const strs = (v: unknown): string[] =>
  Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
const map = (v: unknown): Record<string, string> =>
  typeof v === 'object' && v !== null
    ? (Object.fromEntries(Object.entries(v).filter(([, x]) => typeof x === 'string')) as Record<
        string,
        string
      >)
    : {};

function toNode(j: Json): CatalogNode {
  return {
    id: str(j.ID),
    node: str(j.Node),
    address: str(j.Address),
    datacenter: str(j.Datacenter),
    taggedAddresses: map(j.TaggedAddresses),
    meta: map(j.Meta),
    createIndex: num(j.CreateIndex),
    modifyIndex: num(j.ModifyIndex),
  };
}

function toService(node: string, j: Json): CatalogService {
  const weights = (j.Weights ?? {}) as Json;
  return {
    node,
    id: str(j.ID),
    service: str(j.Service),
    tags: strs(j.Tags),
    address: str(j.Address),
    port: num(j.Port),
    meta: map(j.Meta),
    kind: str(j.Kind),
    weights: { passing: num(weights.Passing) || 1, warning: num(weights.Warning) || 1 },
    enableTagOverride: j.EnableTagOverride === true,
    createIndex: num(j.CreateIndex),
    modifyIndex: num(j.ModifyIndex),
  };
}

function toCheck(j: Json): CatalogCheck {
  return {
    node: str(j.Node),
    checkId: str(j.CheckID),
    name: str(j.Name),
    status: (str(j.Status) || 'critical') as HealthStatus,
    notes: str(j.Notes),
    output: str(j.Output),
    serviceId: str(j.ServiceID),
    serviceName: str(j.ServiceName),
    serviceTags: strs(j.ServiceTags),
    type: str(j.Type),
    createIndex: num(j.CreateIndex),
    modifyIndex: num(j.ModifyIndex),
  };
}

/** A catalog command in Consul's /v1/catalog/register|deregister JSON. */
function toRequest(command: CatalogWrite): { path: string; body: Json } {
  if (command.type === 'catalogDeregister') {
    const body: Json = { Node: command.node };
    if (command.serviceId) body.ServiceID = command.serviceId;
    if (command.checkId) body.CheckID = command.checkId;
    return { path: '/v1/catalog/deregister', body };
  }
  const n = command.node;
  const body: Json = {
    Node: n.node,
    ID: n.id,
    Address: n.address,
    TaggedAddresses: n.taggedAddresses ?? {},
    NodeMeta: n.meta ?? {},
  };
  const s = command.service;
  if (s) {
    body.Service = {
      ID: s.id,
      Service: s.service,
      Tags: s.tags ?? [],
      Address: s.address ?? '',
      Port: s.port ?? 0,
      Meta: s.meta ?? {},
      Kind: s.kind ?? '',
      Weights: { Passing: s.weights?.passing ?? 1, Warning: s.weights?.warning ?? 1 },
      EnableTagOverride: s.enableTagOverride ?? false,
    };
  }
  if (command.checks?.length) {
    body.Checks = command.checks.map((c) => ({
      CheckID: c.checkId,
      Name: c.name ?? c.checkId,
      Status: c.status ?? 'critical',
      Notes: c.notes ?? '',
      Output: c.output ?? '',
      ServiceID: c.serviceId ?? '',
      Type: c.type ?? '',
    }));
  }
  return { path: '/v1/catalog/register', body };
}

export function httpCatalogAccess(pool: ServerPool): CatalogAccess {
  return {
    async nodeView(node: string): Promise<NodeView> {
      const path = encodeURIComponent(node);
      const entry = (await call(pool, 'GET', `/v1/catalog/node/${path}?consistent`)) as {
        Node: Json;
        Services: Record<string, Json>;
      } | null;
      if (!entry) return { node: undefined, services: [], checks: [] };
      const checks = (await call(pool, 'GET', `/v1/health/node/${path}?consistent`)) as Json[];
      return {
        node: toNode(entry.Node),
        services: Object.values(entry.Services).map((s) => toService(node, s)),
        checks: checks.map(toCheck),
      };
    },
    async write(command: CatalogWrite): Promise<void> {
      const { path, body } = toRequest(command);
      await call(pool, 'PUT', path, body);
    },
  };
}
