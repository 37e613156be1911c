import { decodeService } from '../../api/consul/catalog-json.js';
import {
  fieldOf,
  isObject,
  type JsonObject,
  optInt,
  optObject,
  optString,
  optStrings,
} from '../../api/consul/decode.js';
import { badRequest } from '../../api/consul/errors.js';
import { durationMs } from '../../api/consul/query.js';
import type { ServiceInput } from '../../store/index.js';

/**
 * Agent-local service and check definitions, decoded from the agent API's JSON or a config
 * file's (the same shape; config files may spell keys in snake_case, which field() matches).
 */

export type CheckType = 'ttl' | 'http' | 'tcp' | 'grpc' | 'script' | 'alias' | 'maintenance';

export interface CheckDefinition {
  id: string;
  name: string;
  serviceId: string;
  notes: string;
  type: CheckType;
  /** Status before the first result (Consul: critical unless the definition says otherwise). */
  initialStatus: 'passing' | 'warning' | 'critical';
  intervalMs: number;
  timeoutMs: number;
  ttlMs: number;
  http?: {
    url: string;
    method: string;
    headers: Record<string, string[]>;
    body: string;
    tlsSkipVerify: boolean;
  };
  tcp?: string;
  grpc?: { target: string; useTls: boolean };
  args?: string[];
  alias?: { node: string; serviceId: string };
  /** Consul's DeregisterCriticalServiceAfter: the agent removes the service after this long critical. */
  deregisterCriticalAfterMs: number;
  successBeforePassing: number;
  failuresBeforeWarning: number;
  failuresBeforeCritical: number;
  /** Where it came from: config-file script checks are allowed by enable_local_script_checks. */
  source: 'api' | 'config';
}

export interface ServiceDefinition {
  service: ServiceInput;
  checks: CheckDefinition[];
  source: 'api' | 'config';
}

/** Consul's bounds: interval raised to at least 1 s (checks.MinInterval), default timeout 10 s. */
const MIN_INTERVAL_MS = 1000;
const DEFAULT_TIMEOUT_MS = 10_000;

function duration(v: unknown, what: string): number {
  if (v === undefined || v === null || v === '') return 0;
  if (typeof v === 'number' && Number.isFinite(v) && v >= 0) return v / 1e6; // Go encodes durations as ns
  if (typeof v !== 'string') throw badRequest(`Request decode failed: ${what} must be a duration`);
  return durationMs(v, what);
}

function headers(v: unknown): Record<string, string[]> {
  const raw = optObject(v, 'Header');
  const result: Record<string, string[]> = {};
  for (const [k, vals] of Object.entries(raw ?? {})) {
    const list = typeof vals === 'string' ? [vals] : optStrings(vals, `Header.${k}`);
    result[k] = list ?? [];
  }
  return result;
}

/**
 * One check definition. `serviceId` and `defaultId` come from the service it belongs to, if any
 * (Consul names a service's checks "service:ID", or "service:ID:N" when there are several).
 */
export function decodeCheck(
  raw: unknown,
  options: { serviceId?: string; defaultId?: string; defaultName?: string; source: 'api' | 'config' },
): CheckDefinition {
  if (!isObject(raw)) throw badRequest('Request decode failed: a check must be an object');
  const c = raw as JsonObject;
  const name = optString(fieldOf(c, 'Name'), 'Check.Name') ?? '';
  const id = optString(fieldOf(c, 'CheckID', 'ID'), 'Check.ID') || options.defaultId || name;
  if (id === '') throw badRequest('Missing check name');
  const serviceId = options.serviceId ?? optString(fieldOf(c, 'ServiceID'), 'Check.ServiceID') ?? '';
  const intervalMs = duration(fieldOf(c, 'Interval'), 'Interval');
  const timeoutMs = duration(fieldOf(c, 'Timeout'), 'Timeout') || DEFAULT_TIMEOUT_MS;
  const ttlMs = duration(fieldOf(c, 'TTL'), 'TTL');
  const http = optString(fieldOf(c, 'HTTP'), 'HTTP');
  const tcp = optString(fieldOf(c, 'TCP'), 'TCP');
  const grpc = optString(fieldOf(c, 'GRPC'), 'GRPC');
  const args = optStrings(fieldOf(c, 'Args', 'ScriptArgs'), 'Args');
  const aliasNode = optString(fieldOf(c, 'AliasNode'), 'AliasNode');
  const aliasService = optString(fieldOf(c, 'AliasService'), 'AliasService');
  const status = optString(fieldOf(c, 'Status'), 'Status') || 'critical';
  if (status !== 'passing' && status !== 'warning' && status !== 'critical')
    throw badRequest(`Invalid check status: "${status}" (use passing, warning or critical)`);

  const kinds = [ttlMs > 0, !!http, !!tcp, !!grpc, !!args?.length, !!(aliasNode || aliasService)].filter(
    Boolean,
  ).length;
  // Consul: "Check types that are not TTL or alias require an interval" and exactly one type.
  if (kinds !== 1)
    throw badRequest(
      'Invalid check: exactly one of TTL, HTTP, TCP, GRPC, Args (script) or AliasService/AliasNode must be set',
    );
  const needsInterval = !!(http || tcp || grpc || args?.length);
  // Consul's CheckType.Validate; a positive interval under MinInterval is raised to it (agent.addCheck).
  if (needsInterval && intervalMs <= 0)
    throw badRequest('Invalid check: Interval must be > 0 for Script, HTTP, TCP or GRPC checks');
  if (ttlMs > 0 && intervalMs > 0)
    throw badRequest('Invalid check: Interval and TTL cannot both be specified');
  const failuresBeforeCritical = optInt(fieldOf(c, 'FailuresBeforeCritical'), 'FailuresBeforeCritical') ?? 0;

  const def: CheckDefinition = {
    id,
    name: name || options.defaultName || id,
    serviceId,
    notes: optString(fieldOf(c, 'Notes'), 'Notes') ?? '',
    type: ttlMs > 0 ? 'ttl' : http ? 'http' : tcp ? 'tcp' : grpc ? 'grpc' : args?.length ? 'script' : 'alias',
    initialStatus: status,
    intervalMs: needsInterval ? Math.max(intervalMs, MIN_INTERVAL_MS) : intervalMs,
    timeoutMs,
    ttlMs,
    deregisterCriticalAfterMs: duration(
      fieldOf(c, 'DeregisterCriticalServiceAfter'),
      'DeregisterCriticalServiceAfter',
    ),
    successBeforePassing: optInt(fieldOf(c, 'SuccessBeforePassing'), 'SuccessBeforePassing') ?? 0,
    // Consul: FailuresBeforeWarning defaults to FailuresBeforeCritical, so a check does not turn
    // warning before its critical threshold unless asked to.
    failuresBeforeWarning:
      optInt(fieldOf(c, 'FailuresBeforeWarning'), 'FailuresBeforeWarning') || failuresBeforeCritical,
    failuresBeforeCritical,
    source: options.source,
  };
  if (http) {
    let url: URL;
    try {
      url = new URL(http);
    } catch {
      throw badRequest(`Invalid check: HTTP ${JSON.stringify(http)} is not a URL`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
      throw badRequest(`Invalid check: HTTP must be an http or https URL`);
    def.http = {
      url: http,
      method: (optString(fieldOf(c, 'Method'), 'Method') || 'GET').toUpperCase(),
      headers: headers(fieldOf(c, 'Header')),
      body: optString(fieldOf(c, 'Body'), 'Body') ?? '',
      tlsSkipVerify: fieldOf(c, 'TLSSkipVerify') === true,
    };
  }
  if (tcp) {
    if (!/^.+:\d+$/.test(tcp))
      throw badRequest(`Invalid check: TCP must be host:port, not ${JSON.stringify(tcp)}`);
    def.tcp = tcp;
  }
  if (grpc) def.grpc = { target: grpc, useTls: fieldOf(c, 'GRPCUseTLS') === true };
  if (args?.length) def.args = args;
  if (def.type === 'alias') def.alias = { node: aliasNode ?? '', serviceId: aliasService ?? '' };
  return def;
}

/** A service registration with its checks (the agent API's body, or a config file's `service`). */
export function decodeServiceDefinition(raw: unknown, source: 'api' | 'config'): ServiceDefinition {
  if (!isObject(raw)) throw badRequest('Request decode failed: a service must be an object');
  const service = decodeService(raw);
  const rawChecks: unknown[] = [];
  const one = fieldOf(raw, 'Check');
  if (one !== undefined && one !== null) rawChecks.push(one);
  const many = fieldOf(raw, 'Checks');
  if (many !== undefined && many !== null) {
    if (!Array.isArray(many)) throw badRequest('Request decode failed: Checks must be a list');
    rawChecks.push(...many);
  }
  const checks = rawChecks.map((c, i) =>
    decodeCheck(c, {
      serviceId: service.id,
      defaultId: rawChecks.length === 1 ? `service:${service.id}` : `service:${service.id}:${i + 1}`,
      // Consul's name for a service check that has none.
      defaultName: `Service '${service.service}' check`,
      source,
    }),
  );
  return { service, checks, source };
}
