import { accessSync, constants, mkdirSync, readFileSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import { hostname, networkInterfaces } from 'node:os';
import { LOG_LEVELS, type LogLevel } from './logging.js';

/**
 * The agent's configuration: Consul's agent flags and config-file keys where one exists
 * (https://developer.hashicorp.com/consul/docs/agent/config), plus `etcd` ports. Flags win
 * over the file, the file over defaults. Every problem is one ConfigError with a plain message.
 */

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export interface Ports {
  http: number;
  dns: number;
  server: number;
  serfLan: number;
  etcd: number;
}

export interface AgentConfig {
  dev: boolean;
  server: boolean;
  /** Consul's -bootstrap: this server alone forms a cluster. */
  bootstrap: boolean;
  bootstrapExpect: number;
  nodeName: string;
  nodeId: string | undefined;
  datacenter: string;
  dataDir: string | null;
  bindAddr: string;
  clientAddr: string;
  advertiseAddr: string | undefined;
  retryJoin: string[];
  ports: Ports;
  logLevel: LogLevel;
  logJson: boolean;
  /** Raft clock tick (Conclave's own knob; elections take 10-20 ticks, heartbeats 1). */
  raftTickMs: number;
  /** Consul's raft_snapshot_threshold: applied entries between snapshots. */
  raftSnapshotThreshold: number;
  /** Consul's raft_trailing_logs: entries kept behind a snapshot for followers that lag a little. */
  raftTrailingLogs: number;
  /** Consul's limits.kv_max_value_size: the largest KV value over the Consul API (bytes). */
  kvMaxValueSize: number;
  /** Consul's `domain`: the DNS zone answered (default "consul"). */
  domain: string;
  dns: DnsConfig;
  /** Consul's -encrypt / encrypt: the gossip key (base64, 16/24/32 bytes); null sends gossip in the clear. */
  encrypt: string | null;
  /** Consul's enable_script_checks: script checks run only when this is set (off by default). */
  enableScriptChecks: boolean;
  /** Consul's enable_local_script_checks: script checks from config files only. */
  enableLocalScriptChecks: boolean;
  /** Service definitions from config files (Consul's `services` and `service`), unparsed. */
  serviceDefinitions: unknown[];
  /** Check definitions from config files (Consul's `checks` and `check`), unparsed. */
  checkDefinitions: unknown[];
}

/** Consul's `dns_config` block. */
export interface DnsConfig {
  /** node_ttl, seconds (default 0, as in Consul). */
  nodeTtlS: number;
  /** service_ttl per service name, seconds; "*" is the default for the rest (Consul's wildcard). */
  serviceTtlS: Record<string, number>;
  /** only_passing: answer only instances whose checks all pass (by default, warning is allowed). */
  onlyPassing: boolean;
  /** enable_truncate: set TC on UDP answers cut at udp_answer_limit, so clients retry over TCP. */
  enableTruncate: boolean;
  /** udp_answer_limit: most records in a UDP answer (default 3). */
  udpAnswerLimit: number;
  /** a_record_limit: most A/AAAA records in any answer (0 = no limit). */
  aRecordLimit: number;
  /** allow_stale: answer from this server's state without a leader round-trip (default true). */
  allowStale: boolean;
}

/** Consul's conventional ports (DESIGN.md "Conventional defaults"). */
export const DEFAULT_PORTS: Readonly<Ports> = Object.freeze({
  http: 8500,
  dns: 8600,
  server: 8300,
  serfLan: 8301,
  etcd: 2379,
});

/** What the command line may set; undefined means "not given". */
export interface AgentFlags {
  dev?: boolean;
  server?: boolean;
  bootstrap?: boolean;
  bootstrapExpect?: string;
  node?: string;
  nodeId?: string;
  datacenter?: string;
  dataDir?: string;
  bind?: string;
  client?: string;
  advertise?: string;
  retryJoin?: string[];
  httpPort?: string;
  dnsPort?: string;
  serverPort?: string;
  serfLanPort?: string;
  etcdPort?: string;
  logLevel?: string;
  logJson?: boolean;
  raftTickMs?: string;
  raftSnapshotThreshold?: string;
  raftTrailingLogs?: string;
  encrypt?: string;
  configFile?: string[];
}

/** Config-file keys we read (Consul's names); anything else is an error, not a silent no-op. */
const FILE_KEYS = new Set([
  'server',
  'bootstrap',
  'bootstrap_expect',
  'node_name',
  'node_id',
  'datacenter',
  'data_dir',
  'bind_addr',
  'client_addr',
  'advertise_addr',
  'retry_join',
  'ports',
  'log_level',
  'log_json',
  'raft_snapshot_threshold',
  'raft_tick_ms',
  'raft_trailing_logs',
  'limits',
  'domain',
  'dns_config',
  'recursors',
  'encrypt',
  'enable_script_checks',
  'enable_local_script_checks',
  'services',
  'service',
  'checks',
  'check',
]);
const PORT_KEYS: Record<string, keyof Ports> = {
  http: 'http',
  dns: 'dns',
  server: 'server',
  serf_lan: 'serfLan',
  etcd: 'etcd',
};

export function buildConfig(flags: AgentFlags): AgentConfig {
  const file: Record<string, unknown> = {};
  for (const path of flags.configFile ?? []) mergeConfigFile(file, readConfigFile(path));
  const fromFile = <T>(key: string, check: (v: unknown) => v is T, what: string): T | undefined => {
    if (!(key in file)) return undefined;
    const v = file[key];
    if (!check(v)) throw new ConfigError(`config file: ${key} must be ${what}`);
    return v;
  };
  const isString = (v: unknown): v is string => typeof v === 'string';
  const isBool = (v: unknown): v is boolean => typeof v === 'boolean';
  const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
  const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every(isString);

  const dev = flags.dev ?? false;
  const ports: Ports = { ...DEFAULT_PORTS };
  const filePorts = file.ports;
  if (filePorts !== undefined) {
    if (typeof filePorts !== 'object' || filePorts === null || Array.isArray(filePorts))
      throw new ConfigError('config file: ports must be an object');
    for (const [k, v] of Object.entries(filePorts)) {
      const name = PORT_KEYS[k];
      if (!name) throw new ConfigError(`config file: unknown port "${k}"`);
      ports[name] = port(v, `ports.${k}`);
    }
  }
  const flagPorts: [string | undefined, keyof Ports, string][] = [
    [flags.httpPort, 'http', '-http-port'],
    [flags.dnsPort, 'dns', '-dns-port'],
    [flags.serverPort, 'server', '-server-port'],
    [flags.serfLanPort, 'serfLan', '-serf-lan-port'],
    [flags.etcdPort, 'etcd', '-etcd-port'],
  ];
  for (const [raw, name, flag] of flagPorts) if (raw !== undefined) ports[name] = port(raw, flag);

  const bootstrapExpect =
    flags.bootstrapExpect !== undefined
      ? count(flags.bootstrapExpect, '-bootstrap-expect')
      : (fromFile('bootstrap_expect', isCount, 'a non-negative integer') ?? 0);
  const logLevel = (flags.logLevel ?? fromFile('log_level', isString, 'a string') ?? 'info').toLowerCase();
  if (!LOG_LEVELS.includes(logLevel as LogLevel))
    throw new ConfigError(`invalid log level "${logLevel}": use one of ${LOG_LEVELS.join(', ')}`);

  const config: AgentConfig = {
    dev,
    server: dev || (flags.server ?? fromFile('server', isBool, 'true or false') ?? false),
    bootstrap: flags.bootstrap ?? fromFile('bootstrap', isBool, 'true or false') ?? false,
    bootstrapExpect,
    nodeName: flags.node ?? fromFile('node_name', isString, 'a string') ?? hostname(),
    nodeId: flags.nodeId ?? fromFile('node_id', isString, 'a string'),
    datacenter: flags.datacenter ?? fromFile('datacenter', isString, 'a string') ?? 'dc1',
    dataDir: flags.dataDir ?? fromFile('data_dir', isString, 'a string') ?? null,
    bindAddr: flags.bind ?? fromFile('bind_addr', isString, 'a string') ?? (dev ? '127.0.0.1' : '0.0.0.0'),
    clientAddr: flags.client ?? fromFile('client_addr', isString, 'a string') ?? '127.0.0.1',
    advertiseAddr: flags.advertise ?? fromFile('advertise_addr', isString, 'a string'),
    retryJoin: [
      ...(fromFile('retry_join', isStrings, 'a list of strings') ?? []),
      ...(flags.retryJoin ?? []),
    ],
    ports,
    logLevel: logLevel as LogLevel,
    logJson: flags.logJson ?? fromFile('log_json', isBool, 'true or false') ?? false,
    raftTickMs:
      flags.raftTickMs !== undefined
        ? count(flags.raftTickMs, '-raft-tick-ms')
        : (fromFile('raft_tick_ms', isCount, 'a positive integer') ?? (dev ? 10 : 100)),
    raftSnapshotThreshold:
      flags.raftSnapshotThreshold !== undefined
        ? count(flags.raftSnapshotThreshold, '-raft-snapshot-threshold')
        : (fromFile('raft_snapshot_threshold', isCount, 'a positive integer') ?? 16384),
    raftTrailingLogs:
      flags.raftTrailingLogs !== undefined
        ? count(flags.raftTrailingLogs, '-raft-trailing-logs')
        : (fromFile('raft_trailing_logs', isCount, 'a non-negative integer') ?? 10240),
    kvMaxValueSize: kvMaxValueSize(file.limits),
    domain: (fromFile('domain', isString, 'a string') ?? 'consul').replace(/^\.+|\.+$/g, '').toLowerCase(),
    dns: dnsConfig(file.dns_config),
    encrypt: flags.encrypt ?? fromFile('encrypt', isString, 'a base64 key') ?? null,
    enableScriptChecks: fromFile('enable_script_checks', isBool, 'true or false') ?? false,
    enableLocalScriptChecks: fromFile('enable_local_script_checks', isBool, 'true or false') ?? false,
    serviceDefinitions: definitions(file, 'services', 'service'),
    checkDefinitions: definitions(file, 'checks', 'check'),
  };
  // Consul forwards names outside its domain to `recursors`; we do not forward, so say so.
  const recursors = fromFile('recursors', isStrings, 'a list of strings') ?? [];
  if (recursors.length > 0)
    throw new ConfigError('config file: recursors are not supported (DNS answers only its own domain)');
  validate(config);
  return config;
}

/** A node id, as Consul writes them (and as the data directory's node-id file holds). */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Consul's `limits` block; only kv_max_value_size (default 512 KiB) is read. */
function kvMaxValueSize(limits: unknown): number {
  const DEFAULT = 512 * 1024;
  if (limits === undefined) return DEFAULT;
  if (typeof limits !== 'object' || limits === null || Array.isArray(limits))
    throw new ConfigError('config file: limits must be an object');
  for (const key of Object.keys(limits)) {
    if (key !== 'kv_max_value_size') throw new ConfigError(`config file: unknown limit "${key}"`);
  }
  const v = (limits as { kv_max_value_size?: unknown }).kv_max_value_size;
  if (v === undefined) return DEFAULT;
  // The store's own ceiling (etcd's 1.5 MiB request limit) bounds it from above.
  if (!Number.isSafeInteger(v) || (v as number) < 1 || (v as number) > 1.5 * 1024 * 1024)
    throw new ConfigError('config file: limits.kv_max_value_size must be an integer between 1 and 1572864');
  return v as number;
}

/** Consul's duration strings ("10s", "1m30s", "500ms") or plain seconds, as whole seconds. */
function seconds(v: unknown, name: string): number {
  if (typeof v === 'number' && Number.isFinite(v) && v >= 0) return Math.floor(v);
  if (typeof v === 'string') {
    const parts = [...v.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)];
    if (parts.length > 0 && parts.map((p) => p[0]).join('') === v) {
      const scale = { ms: 0.001, s: 1, m: 60, h: 3600 } as const;
      return Math.floor(parts.reduce((sum, p) => sum + Number(p[1]) * scale[p[2] as keyof typeof scale], 0));
    }
  }
  throw new ConfigError(`config file: ${name} must be a duration such as "10s", not ${JSON.stringify(v)}`);
}

const DNS_KEYS = new Set([
  'node_ttl',
  'service_ttl',
  'only_passing',
  'enable_truncate',
  'udp_answer_limit',
  'a_record_limit',
  'allow_stale',
  'max_stale',
]);

function dnsConfig(raw: unknown): DnsConfig {
  const config: DnsConfig = {
    nodeTtlS: 0,
    serviceTtlS: {},
    onlyPassing: false,
    enableTruncate: false,
    udpAnswerLimit: 3,
    aRecordLimit: 0,
    allowStale: true,
  };
  if (raw === undefined) return config;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new ConfigError('config file: dns_config must be an object');
  const r = raw as Record<string, unknown>;
  for (const key of Object.keys(r))
    if (!DNS_KEYS.has(key)) throw new ConfigError(`config file: unknown dns_config key "${key}"`);
  const bool = (key: string, fallback: boolean): boolean => {
    if (r[key] === undefined) return fallback;
    if (typeof r[key] !== 'boolean')
      throw new ConfigError(`config file: dns_config.${key} must be true or false`);
    return r[key] as boolean;
  };
  const limit = (key: string, fallback: number): number => {
    if (r[key] === undefined) return fallback;
    if (!Number.isSafeInteger(r[key]) || (r[key] as number) < 0)
      throw new ConfigError(`config file: dns_config.${key} must be a non-negative integer`);
    return r[key] as number;
  };
  if (r.node_ttl !== undefined) config.nodeTtlS = seconds(r.node_ttl, 'dns_config.node_ttl');
  if (r.service_ttl !== undefined) {
    if (typeof r.service_ttl !== 'object' || r.service_ttl === null || Array.isArray(r.service_ttl))
      throw new ConfigError('config file: dns_config.service_ttl must be an object of name: duration');
    for (const [name, ttl] of Object.entries(r.service_ttl))
      config.serviceTtlS[name] = seconds(ttl, `dns_config.service_ttl.${name}`);
  }
  config.onlyPassing = bool('only_passing', false);
  config.enableTruncate = bool('enable_truncate', false);
  config.allowStale = bool('allow_stale', true);
  config.udpAnswerLimit = limit('udp_answer_limit', 3);
  config.aRecordLimit = limit('a_record_limit', 0);
  if (r.max_stale !== undefined) seconds(r.max_stale, 'dns_config.max_stale');
  return config;
}

/** Consul accepts both a list (`services`) and a single object (`service`). */
function definitions(file: Record<string, unknown>, many: string, one: string): unknown[] {
  const list: unknown[] = [];
  if (file[many] !== undefined) {
    if (!Array.isArray(file[many])) throw new ConfigError(`config file: ${many} must be a list`);
    list.push(...(file[many] as unknown[]));
  }
  if (file[one] !== undefined) list.push(file[one]);
  for (const d of list) {
    if (typeof d !== 'object' || d === null || Array.isArray(d))
      throw new ConfigError(`config file: each of ${many} must be an object`);
  }
  return list;
}

function validate(c: AgentConfig): void {
  if (!c.server) {
    // A client agent keeps its node id and registrations in the data dir, as Consul's does.
    if (c.bootstrap || c.bootstrapExpect > 0)
      throw new ConfigError('-bootstrap and -bootstrap-expect are for servers: add -server');
  }
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(c.nodeName))
    throw new ConfigError(`node name "${c.nodeName}" must be letters, digits, '-', '_' or '.' (at most 63)`);
  if (c.nodeId !== undefined && !UUID.test(c.nodeId))
    throw new ConfigError(`node id "${c.nodeId}" must be a UUID (8-4-4-4-12 hex digits)`);
  if (!/^[a-z0-9_-]+$/.test(c.datacenter))
    throw new ConfigError(`datacenter "${c.datacenter}" must be lowercase letters, digits, '-' or '_'`);
  for (const [name, addr] of [
    ['-bind', c.bindAddr],
    ['-client', c.clientAddr],
  ] as const) {
    if (isIP(addr) === 0) throw new ConfigError(`${name} ${addr} is not an IP address`);
  }
  if (c.advertiseAddr !== undefined && isIP(c.advertiseAddr) === 0)
    throw new ConfigError(`-advertise ${c.advertiseAddr} is not an IP address`);
  if ((c.bindAddr === '0.0.0.0' || c.bindAddr === '::') && c.advertiseAddr === undefined) {
    // As Consul does: advertise the one private address this machine has.
    const candidates = Object.values(networkInterfaces())
      .flat()
      .filter((i) => i && !i.internal && i.family === 'IPv4')
      .map((i) => i!.address);
    if (candidates.length !== 1) {
      throw new ConfigError(
        `-bind ${c.bindAddr} found ${candidates.length === 0 ? 'no' : 'several'} addresses to advertise (${candidates.join(', ')}): set -advertise or -bind`,
      );
    }
    c.advertiseAddr = candidates[0];
  }
  if (c.encrypt !== null) {
    const key = Buffer.from(c.encrypt, 'base64');
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(c.encrypt) || ![16, 24, 32].includes(key.byteLength))
      throw new ConfigError(
        '-encrypt must be a base64 key of 16, 24 or 32 bytes (as `conclave keygen` prints)',
      );
  }
  if (c.raftTickMs < 1 || c.raftTickMs > 10_000)
    throw new ConfigError('-raft-tick-ms must be between 1 and 10000');
  if (c.raftSnapshotThreshold < 1) throw new ConfigError('-raft-snapshot-threshold must be at least 1');
  if (c.bootstrap && c.bootstrapExpect > 0)
    throw new ConfigError('-bootstrap and -bootstrap-expect are exclusive');
  if (c.dev) {
    if (c.bootstrapExpect > 0) throw new ConfigError('-bootstrap-expect cannot be used with -dev');
    return;
  }
  if (!c.dataDir)
    throw new ConfigError(
      `-data-dir is required for a ${c.server ? 'server' : 'client agent'} (or use -dev)`,
    );
  checkDataDir(c.dataDir);
}

function checkDataDir(dir: string): void {
  try {
    // mkdirSync(recursive) on an existing regular file fails with a bare EEXIST: look first.
    const existing = statSync(dir, { throwIfNoEntry: false });
    if (existing && !existing.isDirectory()) throw new ConfigError(`-data-dir ${dir} is not a directory`);
    if (!existing) mkdirSync(dir, { recursive: true });
    accessSync(dir, constants.R_OK | constants.W_OK);
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    const code = (err as NodeJS.ErrnoException).code ?? '';
    throw new ConfigError(`-data-dir ${dir} is not usable: ${code || String(err)}`);
  }
}

function readConfigFile(path: string): Record<string, unknown> {
  let raw: string;
  try {
    raw = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (err) {
    throw new ConfigError(`config file ${path} is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw new ConfigError(`config file ${path} must hold a JSON object`);
  for (const key of Object.keys(parsed)) {
    if (!FILE_KEYS.has(key)) throw new ConfigError(`config file ${path}: unknown key "${key}"`);
  }
  return parsed as Record<string, unknown>;
}

/**
 * Later files win key by key, as in Consul, except that `ports` merges port by port and
 * `retry_join` lists add up (a second file must not silently reset the first one's ports).
 */
function mergeConfigFile(into: Record<string, unknown>, next: Record<string, unknown>): void {
  const isObject = (v: unknown): v is Record<string, unknown> =>
    typeof v === 'object' && v !== null && !Array.isArray(v);
  for (const [key, value] of Object.entries(next)) {
    const prev = into[key];
    if (key === 'ports' && isObject(prev) && isObject(value)) into[key] = { ...prev, ...value };
    else if (
      (key === 'retry_join' || key === 'services' || key === 'checks') &&
      Array.isArray(prev) &&
      Array.isArray(value)
    )
      into[key] = [...prev, ...value];
    // Each file's single `service`/`check` is one more definition, not a replacement.
    else if ((key === 'service' || key === 'check') && prev !== undefined) {
      const many = key === 'service' ? 'services' : 'checks';
      into[many] = [...((into[many] as unknown[] | undefined) ?? []), prev];
      into[key] = value;
    } else into[key] = value;
  }
}

function port(v: unknown, name: string): number {
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
  if (!Number.isInteger(n) || (n as number) < 0 || (n as number) > 65535)
    throw new ConfigError(
      `${name} must be a port number (0-65535, 0 picks a free one), not ${JSON.stringify(v)}`,
    );
  return n as number;
}

function count(v: string, name: string): number {
  if (!/^\d+$/.test(v))
    throw new ConfigError(`${name} must be a non-negative integer, not ${JSON.stringify(v)}`);
  return Number(v);
}
