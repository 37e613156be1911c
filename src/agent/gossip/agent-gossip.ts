import type { AgentGossip } from '../../api/consul/agent.js';
import type { MemberMeta, MemberState } from '../../gossip/index.js';
import type { Logger } from '../../server/logger.js';
import type { MemberView } from '../../server/server.js';
import { joinHostPort, splitHostPort } from '../../transport/address.js';
import type { AgentConfig } from '../config.js';
import { GossipShell } from './gossip-shell.js';
import { keyringFile, openKeyring } from './keyring.js';

/**
 * Gossip as an agent runs it: one LAN pool on -serf-lan-port for servers and clients alike,
 * members described by Consul's tags, joined through -retry-join and through the servers the
 * agent knows, and seen by the HTTP API as Consul's /v1/agent/members.
 */

export const CONCLAVE_VERSION = '0.1.0';

export interface AgentPorts {
  server?: number;
  http?: number;
  dns?: number;
  etcd?: number;
}

export function memberMeta(
  config: AgentConfig,
  role: 'server' | 'client',
  nodeId: string,
  ports: AgentPorts,
): MemberMeta {
  const named: Record<string, number> = {};
  for (const [k, v] of Object.entries(ports)) if (typeof v === 'number' && v > 0) named[k] = v;
  return {
    role,
    datacenter: config.datacenter,
    ports: named,
    version: CONCLAVE_VERSION,
    tags: { id: nodeId },
  };
}

export async function startAgentGossip(
  config: AgentConfig,
  role: 'server' | 'client',
  nodeId: string,
  log: Logger,
): Promise<GossipShell> {
  const wildcard = config.bindAddr === '0.0.0.0' || config.bindAddr === '::';
  // -dev keeps nothing; otherwise the keyring file of an earlier start wins over -encrypt.
  const file = config.dev || !config.dataDir ? null : keyringFile(config.dataDir);
  const { keyring, ignoredEncrypt } = openKeyring({ encrypt: config.encrypt, file });
  if (ignoredEncrypt)
    log.warn('the keyring file exists: -encrypt is ignored (rotate keys with `conclave keyring`)', {
      file,
    });
  const shell = new GossipShell({
    name: config.nodeName,
    bindHost: config.bindAddr,
    port: config.ports.serfLan,
    advertiseHost: config.advertiseAddr ?? (wildcard ? '127.0.0.1' : config.bindAddr),
    meta: memberMeta(config, role, nodeId, {}),
    keyring,
    log,
  });
  try {
    await shell.start();
  } catch (err) {
    throw new Error(
      `cannot serve gossip on ${config.bindAddr}:${config.ports.serfLan}: ${(err as Error).message}`,
    );
  }
  shell.onEvent((event) => {
    if (event.type === 'join' || event.type === 'update' || event.type === 'alive') return;
    log.info(`gossip: member ${event.type}`, { member: event.member.name, address: event.member.address });
  });
  return shell;
}

export function memberView(m: MemberState): MemberView {
  return { name: m.name, address: m.address, status: m.status, role: m.meta.role, id: m.meta.tags.id ?? '' };
}

/** Serf's member status codes as Consul reports them: 1 alive (suspects too), 3 left, 4 failed. */
const STATUS_CODE: Record<MemberState['status'], number> = { alive: 1, suspect: 1, left: 3, dead: 4 };

/** One entry of Consul's /v1/agent/members. */
export function consulMember(m: MemberState): Record<string, unknown> {
  const { host, port } = splitHostPort(m.address);
  const tags: Record<string, string> = {
    role: m.meta.role === 'server' ? 'consul' : 'node',
    dc: m.meta.datacenter,
    id: m.meta.tags.id ?? '',
    build: m.meta.version,
  };
  if (m.meta.ports.server) tags.port = String(m.meta.ports.server);
  return {
    Name: m.name,
    Addr: host,
    Port: port,
    Tags: tags,
    Status: STATUS_CODE[m.status],
    ...SERF_PROTOCOL_FIELDS,
  };
}

/** The protocol versions Consul's members list reports for every member (Serf's, as Consul 1.x). */
export const SERF_PROTOCOL_FIELDS = {
  ProtocolMin: 1,
  ProtocolMax: 5,
  ProtocolCur: 2,
  DelegateMin: 2,
  DelegateMax: 5,
  DelegateCur: 4,
} as const;

/** Join targets: host[:port], the port defaulting to the gossip port (Consul's -retry-join). */
export function gossipTargets(addresses: string[], defaultPort: number): string[] {
  return addresses.map((a) => (/:\d+$/.test(a) && !/^[^[]*:.*:/.test(a) ? a : `${a}:${defaultPort}`));
}

/**
 * Keeps joining what the agent knows of but gossip does not show alive (servers from the Raft
 * directory or the client's server pool), every few seconds, bounded by those lists.
 */
export function keepJoined(
  shell: GossipShell,
  known: () => { name: string; serf?: string }[],
  everyMs = 5000,
): () => void {
  const timer = setInterval(() => {
    const alive = new Set(
      shell
        .members()
        .filter((m) => m.status === 'alive' || m.status === 'suspect')
        .map((m) => m.name),
    );
    const missing = known()
      .filter((s) => s.serf && !alive.has(s.name))
      .map((s) => s.serf!);
    if (missing.length > 0) shell.join(missing);
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}

/**
 * The other alive members' agents as `http://host:port` (keyring fan-out); null for a member
 * that publishes no HTTP port (yet), which the fan-out reports as a failure.
 */
export function memberAgents(
  shell: GossipShell,
  self: string,
): { name: string; role: 'server' | 'client'; http: string | null }[] {
  return shell
    .members()
    .filter((m) => m.name !== self && (m.status === 'alive' || m.status === 'suspect'))
    .map((m) => {
      const port = m.meta.ports.http;
      const http = port ? `http://${joinHostPort(splitHostPort(m.address).host, port)}` : null;
      return { name: m.name, role: m.meta.role, http };
    });
}

/** The RPC addresses (host:port) of the alive servers in the pool, from their tags. */
export function serverRpcAddresses(shell: GossipShell): string[] {
  return shell
    .members()
    .filter(
      (m) =>
        m.meta.role === 'server' && m.meta.ports.server && (m.status === 'alive' || m.status === 'suspect'),
    )
    .map((m) => joinHostPort(splitHostPort(m.address).host, m.meta.ports.server!));
}

/** The gossip pool as the join, force-leave and keyring endpoints use it. */
export function agentGossipControl(shell: GossipShell, config: AgentConfig): AgentGossip {
  return {
    join: (addresses) => shell.joinAndWait(addresses),
    forceLeave: (name) => shell.forceLeave(name),
    member: (name) => shell.members().find((m) => m.name === name),
    keyring: {
      nodeName: config.nodeName,
      datacenter: config.datacenter,
      keyring: () => shell.keyring,
      peers: () => memberAgents(shell, config.nodeName).map(({ name, http }) => ({ name, http })),
    },
  };
}
