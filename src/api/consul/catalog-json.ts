import type {
  CatalogCheck,
  CatalogNode,
  CatalogService,
  CheckInput,
  HealthStatus,
  NodeInput,
  ServiceInput,
} from '../../store/index.js';
import {
  fieldOf,
  isObject,
  type JsonObject,
  optBool,
  optInt,
  optObject,
  optString,
  optStringMap,
  optStrings,
} from './decode.js';
import { badRequest } from './errors.js';

/**
 * The catalog's JSON, both ways: Consul's field names for nodes, services and checks as the
 * catalog, health and agent endpoints return them, and the decoding of registrations.
 */

export const CHECK_STATUSES: readonly HealthStatus[] = ['passing', 'warning', 'critical'];

export function nodeJson(node: CatalogNode, datacenter: string): JsonObject {
  return {
    ID: node.id,
    Node: node.node,
    Address: node.address,
    Datacenter: node.datacenter || datacenter,
    TaggedAddresses: node.taggedAddresses,
    Meta: node.meta,
    CreateIndex: node.createIndex,
    ModifyIndex: node.modifyIndex,
  };
}

export function serviceJson(service: CatalogService): JsonObject {
  return {
    ID: service.id,
    Service: service.service,
    Tags: service.tags,
    Address: service.address,
    Meta: service.meta,
    Port: service.port,
    Weights: { Passing: service.weights.passing, Warning: service.weights.warning },
    EnableTagOverride: service.enableTagOverride,
    Kind: service.kind,
    CreateIndex: service.createIndex,
    ModifyIndex: service.modifyIndex,
  };
}

export function checkJson(check: CatalogCheck): JsonObject {
  return {
    Node: check.node,
    CheckID: check.checkId,
    Name: check.name,
    Status: check.status,
    Notes: check.notes,
    Output: check.output,
    ServiceID: check.serviceId,
    ServiceName: check.serviceName,
    ServiceTags: check.serviceTags,
    Type: check.type,
    Definition: {},
    CreateIndex: check.createIndex,
    ModifyIndex: check.modifyIndex,
  };
}

/** One row of /v1/catalog/service/:name: node and service fields side by side. */
export function catalogServiceJson(
  node: CatalogNode,
  service: CatalogService,
  datacenter: string,
): JsonObject {
  return {
    ID: node.id,
    Node: node.node,
    Address: node.address,
    Datacenter: node.datacenter || datacenter,
    TaggedAddresses: node.taggedAddresses,
    NodeMeta: node.meta,
    ServiceKind: service.kind,
    ServiceID: service.id,
    ServiceName: service.service,
    ServiceTags: service.tags,
    ServiceAddress: service.address,
    ServiceWeights: { Passing: service.weights.passing, Warning: service.weights.warning },
    ServiceMeta: service.meta,
    ServicePort: service.port,
    ServiceEnableTagOverride: service.enableTagOverride,
    CreateIndex: service.createIndex,
    ModifyIndex: service.modifyIndex,
  };
}

// ---- decoding ----

const MAX_NAME = 256;
const MAX_TAGS = 64;
const MAX_META = 64;

function name(v: unknown, what: string): string | undefined {
  const s = optString(v, what);
  if (s !== undefined && s.length > MAX_NAME)
    throw badRequest(`${what} is longer than ${MAX_NAME} characters`);
  return s;
}

/** Consul's meta rules (structs.ValidateMetadata): at most 64 pairs, keys of at most 128 characters. */
function meta(v: unknown, what: string): Record<string, string> | undefined {
  const m = optStringMap(v, what);
  if (m === undefined) return undefined;
  const keys = Object.keys(m);
  if (keys.length > MAX_META) throw badRequest(`${what}: at most ${MAX_META} key/value pairs are allowed`);
  for (const key of keys) {
    if (!/^[A-Za-z0-9_-]{1,128}$/.test(key))
      throw badRequest(`${what}: key "${key}" must be 1-128 letters, digits, '-' or '_'`);
    if (key.startsWith('consul-') || key.startsWith('rfc1035-'))
      throw badRequest(`${what}: key "${key}" has a reserved prefix`);
    if ((m[key] ?? '').length > 512)
      throw badRequest(`${what}: the value of "${key}" is longer than 512 characters`);
  }
  return m;
}

function status(v: unknown, what: string): HealthStatus | undefined {
  const s = optString(v, what);
  if (s === undefined || s === '') return undefined;
  if (!CHECK_STATUSES.includes(s as HealthStatus))
    throw badRequest(`Invalid check status: "${s}" (use passing, warning or critical)`);
  return s as HealthStatus;
}

/** A service as the catalog and agent APIs take it; the ID defaults to the name. */
export function decodeService(raw: JsonObject, what = 'Service'): ServiceInput {
  const service = name(fieldOf(raw, 'Service', 'Name'), `${what}.Service`) ?? '';
  if (service === '') throw badRequest('Missing service name');
  const id = name(fieldOf(raw, 'ID'), `${what}.ID`) || service;
  const tags = optStrings(fieldOf(raw, 'Tags'), `${what}.Tags`);
  if (tags && tags.length > MAX_TAGS) throw badRequest(`${what}.Tags: at most ${MAX_TAGS} tags are allowed`);
  const weights = optObject(fieldOf(raw, 'Weights'), `${what}.Weights`);
  const input: ServiceInput = { id, service };
  if (tags) input.tags = tags;
  const address = optString(fieldOf(raw, 'Address'), `${what}.Address`);
  if (address !== undefined) input.address = address;
  const port = optInt(fieldOf(raw, 'Port'), `${what}.Port`, 0, 65535);
  if (port !== undefined) input.port = port;
  const m = meta(fieldOf(raw, 'Meta'), `${what}.Meta`);
  if (m) input.meta = m;
  const kind = optString(fieldOf(raw, 'Kind'), `${what}.Kind`);
  if (kind !== undefined) input.kind = kind;
  if (weights) {
    const passing = optInt(fieldOf(weights, 'Passing'), `${what}.Weights.Passing`, 0, 65535) ?? 1;
    const warning = optInt(fieldOf(weights, 'Warning'), `${what}.Weights.Warning`, 0, 65535) ?? 1;
    // Consul: "Passing must be greater than 0".
    if (passing < 1) throw badRequest('Passing must be greater than 0');
    input.weights = { passing, warning };
  }
  const tagOverride = optBool(fieldOf(raw, 'EnableTagOverride'), `${what}.EnableTagOverride`);
  if (tagOverride !== undefined) input.enableTagOverride = tagOverride;
  return input;
}

/** A check as the catalog takes it (its node comes from the registration). */
export function decodeCatalogCheck(raw: unknown, what = 'Check'): CheckInput {
  if (!isObject(raw)) throw badRequest(`Request decode failed: ${what} must be an object`);
  const checkId =
    name(fieldOf(raw, 'CheckID', 'ID'), `${what}.CheckID`) || name(fieldOf(raw, 'Name'), what) || '';
  if (checkId === '') throw badRequest('Missing check ID');
  const input: CheckInput = { checkId };
  const checkName = name(fieldOf(raw, 'Name'), `${what}.Name`);
  if (checkName) input.name = checkName;
  const s = status(fieldOf(raw, 'Status'), `${what}.Status`);
  if (s) input.status = s;
  const notes = optString(fieldOf(raw, 'Notes'), `${what}.Notes`);
  if (notes !== undefined) input.notes = notes;
  const output = optString(fieldOf(raw, 'Output'), `${what}.Output`);
  if (output !== undefined) input.output = output;
  const serviceId = optString(fieldOf(raw, 'ServiceID'), `${what}.ServiceID`);
  if (serviceId !== undefined) input.serviceId = serviceId;
  const type = optString(fieldOf(raw, 'Type'), `${what}.Type`);
  if (type !== undefined) input.type = type;
  return input;
}

/** The node part of a catalog registration. */
export function decodeNode(raw: JsonObject): NodeInput {
  const node = name(fieldOf(raw, 'Node'), 'Node') ?? '';
  const address = optString(fieldOf(raw, 'Address'), 'Address') ?? '';
  // Consul's Catalog.Register: "Must provide node and address".
  if (node === '' || address === '') throw badRequest('Must provide node and address');
  const input: NodeInput = { node, address };
  const id = optString(fieldOf(raw, 'ID'), 'ID');
  if (id) input.id = id;
  const tagged = optStringMap(fieldOf(raw, 'TaggedAddresses'), 'TaggedAddresses');
  if (tagged) input.taggedAddresses = tagged;
  const m = meta(fieldOf(raw, 'NodeMeta'), 'NodeMeta');
  if (m) input.meta = m;
  return input;
}
