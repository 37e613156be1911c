/** One healthy instance of a service, as the SDK's pickers see it. */
export interface ServiceInstance {
  /** Node name + '/' + service ID: unique within a datacenter and stable across address changes. */
  readonly id: string;
  readonly node: string;
  readonly serviceId: string;
  readonly service: string;
  /** Service.Address, or the node's address when the service registered none (Consul's rule). */
  readonly address: string;
  readonly port: number;
  readonly datacenter: string;
  readonly tags: readonly string[];
  readonly meta: Readonly<Record<string, string>>;
  /** 'warning' when any check of the instance is warning; critical instances are never listed. */
  readonly health: 'passing' | 'warning';
  /** Consul's Weights.Passing or Weights.Warning, whichever `health` selects. */
  readonly weight: number;
}

/** Thrown for an agent answer that is not a Consul health-service array. */
export class MalformedResponseError extends Error {
  override name = 'MalformedResponseError';
}

// Consul's default when a registration names no weights (agent/structs: Passing 1, Warning 1).
const DEFAULT_WEIGHT = 1;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function text(value: unknown, what: string): string {
  if (typeof value !== 'string')
    throw new MalformedResponseError(`${what} must be a string, got ${typeof value}`);
  return value;
}

function optionalText(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

function stringMap(value: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!isRecord(value)) return out;
  for (const key of Object.keys(value).sort()) {
    const v = value[key];
    if (typeof v === 'string') out[key] = v;
  }
  return out;
}

function weight(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : DEFAULT_WEIGHT;
}

/** The worst status among the checks: critical (and maintenance, and anything unknown) wins. */
function aggregateStatus(checks: unknown): 'passing' | 'warning' | 'critical' {
  if (checks === null || checks === undefined) return 'passing';
  if (!Array.isArray(checks)) throw new MalformedResponseError('Checks must be an array');
  let status: 'passing' | 'warning' = 'passing';
  for (const check of checks) {
    const s = isRecord(check) ? check.Status : undefined;
    if (s === 'warning') status = 'warning';
    else if (s !== 'passing') return 'critical';
  }
  return status;
}

/** Parses one entry of GET /v1/health/service/:name; undefined when the instance is critical. */
function parseEntry(entry: unknown): ServiceInstance | undefined {
  if (!isRecord(entry) || !isRecord(entry.Node) || !isRecord(entry.Service)) {
    throw new MalformedResponseError('each entry needs a Node and a Service object');
  }
  const status = aggregateStatus(entry.Checks);
  if (status === 'critical') return undefined;
  const node = entry.Node;
  const service = entry.Service;
  const nodeName = text(node.Node, 'Node.Node');
  const serviceId = text(service.ID, 'Service.ID');
  const port = service.Port;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new MalformedResponseError(`Service.Port must be an integer in 0..65535, got ${String(port)}`);
  }
  const weights = isRecord(service.Weights) ? service.Weights : {};
  const tags = Array.isArray(service.Tags)
    ? service.Tags.filter((t): t is string => typeof t === 'string')
    : [];
  return {
    id: `${nodeName}/${serviceId}`,
    node: nodeName,
    serviceId,
    service: text(service.Service, 'Service.Service'),
    address: optionalText(service.Address) || text(node.Address, 'Node.Address'),
    port,
    datacenter: optionalText(node.Datacenter),
    tags,
    meta: stringMap(service.Meta),
    health: status,
    weight: weight(status === 'passing' ? weights.Passing : weights.Warning),
  };
}

/**
 * The non-critical instances in a health-service response, sorted by id so that equal sets
 * compare equal and pickers see a stable order. Throws MalformedResponseError on a bad shape.
 */
export function parseHealthService(body: unknown): ServiceInstance[] {
  if (!Array.isArray(body)) throw new MalformedResponseError('the response body must be a JSON array');
  const byId = new Map<string, ServiceInstance>();
  for (const entry of body) {
    const instance = parseEntry(entry);
    if (instance !== undefined) byId.set(instance.id, instance);
  }
  return [...byId.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** A string equal for two instance lists exactly when every field of every instance is equal. */
export function fingerprint(instances: readonly ServiceInstance[]): string {
  return JSON.stringify(
    instances.map((i) => [
      i.id,
      i.service,
      i.address,
      i.port,
      i.datacenter,
      i.tags,
      Object.entries(i.meta).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
      i.health,
      i.weight,
    ]),
  );
}
