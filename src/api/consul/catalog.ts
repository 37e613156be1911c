import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { CheckInput, NodeInput, Result } from '../../store/index.js';
import { Topic } from '../../store/index.js';
import {
  catalogServiceJson,
  decodeCatalogCheck,
  decodeNode,
  decodeService,
  nodeJson,
  serviceJson,
} from './catalog-json.js';
import { fieldOf, isObject, objectBody, optBool, optString } from './decode.js';
import { badRequest, HttpError } from './errors.js';
import { applyFilter } from './filter.js';
import { blockingRead, type ConsulContext } from './http.js';
import { allParams, matchesNodeMeta, nodeMetaParams, query } from './query.js';

/**
 * Consul's catalog endpoints (/v1/catalog/*): the replicated registry of nodes, services and
 * checks. Reads block on the narrowest index that can change their answer (the service's own,
 * the node's own, or a whole table's), so one service's churn wakes only its watchers.
 */

export function expectChanged(result: Result): boolean {
  if (result.type === 'error') throw result.error;
  if (
    result.type !== 'catalogRegister' &&
    result.type !== 'catalogDeregister' &&
    result.type !== 'checkUpdate'
  )
    throw new HttpError(500, `unexpected ${result.type} result`);
  return result.changed;
}

function checkDatacenter(ctx: ConsulContext, dc: unknown): void {
  const given = optString(dc, 'Datacenter');
  if (given && given !== ctx.agent.datacenter) throw badRequest(`No path to datacenter "${given}"`);
}

function dcParam(ctx: ConsulContext, req: FastifyRequest): void {
  const dc = query(req).dc;
  if (dc !== undefined && dc !== '' && dc !== ctx.agent.datacenter)
    throw new HttpError(500, `No path to datacenter`);
}

export function registerCatalogRoutes(app: FastifyInstance, ctx: ConsulContext): void {
  const { server } = ctx;
  const catalog = () => server.store.catalog;
  const dc = ctx.agent.datacenter;

  app.put('/v1/catalog/register', async (req) => {
    const body = objectBody(req);
    checkDatacenter(ctx, fieldOf(body, 'Datacenter'));
    let node: NodeInput = decodeNode(body);
    // SkipNodeUpdate: register services and checks without touching the node's own fields.
    const existing = catalog().nodes.get(node.node);
    if (optBool(fieldOf(body, 'SkipNodeUpdate'), 'SkipNodeUpdate') && existing) {
      node = {
        node: existing.node,
        id: existing.id,
        address: existing.address,
        taggedAddresses: existing.taggedAddresses,
        meta: existing.meta,
      };
    }
    node.datacenter = dc;
    const rawService = fieldOf(body, 'Service');
    const service = isObject(rawService) ? decodeService(rawService) : undefined;
    const checks: CheckInput[] = [];
    const rawCheck = fieldOf(body, 'Check');
    if (rawCheck !== undefined && rawCheck !== null) checks.push(decodeCatalogCheck(rawCheck));
    const rawChecks = fieldOf(body, 'Checks');
    if (rawChecks !== undefined && rawChecks !== null) {
      if (!Array.isArray(rawChecks)) throw badRequest('Request decode failed: Checks must be a list');
      rawChecks.forEach((c, i) => {
        checks.push(decodeCatalogCheck(c, `Checks[${i}]`));
      });
    }
    const command: {
      type: 'catalogRegister';
      node: NodeInput;
      service?: typeof service;
      checks: CheckInput[];
    } = {
      type: 'catalogRegister',
      node,
      checks,
    };
    if (service) command.service = service;
    expectChanged(await server.write(command));
    return true;
  });

  app.put('/v1/catalog/deregister', async (req) => {
    const body = objectBody(req);
    checkDatacenter(ctx, fieldOf(body, 'Datacenter'));
    const node = optString(fieldOf(body, 'Node'), 'Node') ?? '';
    if (node === '') throw badRequest('Must provide node');
    const serviceId = optString(fieldOf(body, 'ServiceID'), 'ServiceID');
    const checkId = optString(fieldOf(body, 'CheckID'), 'CheckID');
    const command: { type: 'catalogDeregister'; node: string; serviceId?: string; checkId?: string } = {
      type: 'catalogDeregister',
      node,
    };
    if (serviceId) command.serviceId = serviceId;
    if (checkId) command.checkId = checkId;
    // Consul answers true whether or not there was anything to remove.
    expectChanged(await server.write(command));
    return true;
  });

  app.get('/v1/catalog/datacenters', async () => [dc]);

  app.get('/v1/catalog/nodes', async (req, reply) => {
    dcParam(ctx, req);
    const q = query(req);
    const meta = nodeMetaParams(q);
    return blockingRead(ctx, req, reply, { kind: 'topic', topic: Topic.nodes }, () =>
      applyFilter(
        catalog()
          .listNodes()
          .filter((n) => matchesNodeMeta(n.meta, meta))
          .map((n) => nodeJson(n, dc)),
        q.filter,
      ),
    );
  });

  app.get('/v1/catalog/services', async (req, reply) => {
    dcParam(ctx, req);
    const q = query(req);
    const meta = nodeMetaParams(q);
    return blockingRead(ctx, req, reply, { kind: 'topic', topic: Topic.services }, () => {
      const result: Record<string, string[]> = {};
      for (const [name, tags] of catalog().serviceNames()) {
        if (
          meta.length > 0 &&
          !catalog()
            .instances(name)
            .some((e) => matchesNodeMeta(e.node.meta, meta))
        )
          continue;
        result[name] = tags;
      }
      return result;
    });
  });

  app.get('/v1/catalog/service/:service', async (req, reply) => {
    dcParam(ctx, req);
    const q = query(req);
    const name = (req.params as { service: string }).service;
    const tags = allParams(q, 'tag');
    const meta = nodeMetaParams(q);
    return blockingRead(ctx, req, reply, { kind: 'topic', topic: Topic.service(name) }, () =>
      applyFilter(
        catalog()
          .instances(name)
          .filter((e) => tags.every((t) => e.service.tags.includes(t)) && matchesNodeMeta(e.node.meta, meta))
          .map((e) => catalogServiceJson(e.node, e.service, dc)),
        q.filter,
      ),
    );
  });

  app.get('/v1/catalog/node/:node', async (req, reply) => {
    dcParam(ctx, req);
    const q = query(req);
    const name = (req.params as { node: string }).node;
    return blockingRead(ctx, req, reply, { kind: 'topic', topic: Topic.node(name) }, () => {
      const node = catalog().nodes.get(name);
      // Consul answers an unknown node with null, not 404.
      if (!node) return null;
      const services: Record<string, unknown> = {};
      const listed = applyFilter(catalog().nodeServices(name).map(serviceJson), q.filter);
      for (const s of listed) services[s.ID as string] = s;
      return { Node: nodeJson(node, dc), Services: services };
    });
  });

  app.get('/v1/catalog/node-services/:node', async (req, reply) => {
    dcParam(ctx, req);
    const q = query(req);
    const name = (req.params as { node: string }).node;
    return blockingRead(ctx, req, reply, { kind: 'topic', topic: Topic.node(name) }, () => {
      const node = catalog().nodes.get(name);
      if (!node) return null;
      return {
        Node: nodeJson(node, dc),
        Services: applyFilter(catalog().nodeServices(name).map(serviceJson), q.filter),
      };
    });
  });
}
