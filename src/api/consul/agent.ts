import { availableParallelism } from 'node:os';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { gossipTargets, SERF_PROTOCOL_FIELDS } from '../../agent/gossip/agent-gossip.js';
import type { ForceLeaveResult, MemberState } from '../../gossip/index.js';
import { badRequest, HttpError } from './errors.js';
import type { AgentControl, ConsulContext } from './http.js';
import { type KeyringContext, registerKeyringRoutes } from './keyring.js';

/** Consul's gossip port, for a join address given without one. */
const SERF_LAN_PORT = 8301;

/** What the join, force-leave and keyring endpoints need from the agent's gossip pool. */
export interface AgentGossip {
  /** Join the pool through these gossip addresses; how many of them answered. */
  join(addresses: string[]): Promise<number>;
  /** GossipShell.forceLeave. */
  forceLeave(name: string): ForceLeaveResult;
  member(name: string): MemberState | undefined;
  keyring: KeyringContext;
}

/** An agent that runs a gossip pool hands it to the API beside AgentControl. */
export type GossipAgentControl = AgentControl & { gossip?: AgentGossip };

export interface GossipRouteHooks {
  /**
   * The agent's older meaning of a join address (a server's Raft address, a client's server
   * pool), tried alongside the gossip join; whether it found a server there.
   */
  joinOther?: (address: string) => Promise<boolean>;
  /** A force-left member was a server: take it out of the Raft configuration (Consul does). */
  removeServer?: (member: MemberState) => Promise<void>;
}

/**
 * /v1/agent/join/:address (PUT, and GET as python-consul sends), /v1/agent/force-leave/:node
 * (PUT and GET) and /v1/operator/keyring, for server and client agents alike.
 */
export function registerGossipAgentRoutes(
  app: FastifyInstance,
  gossip: AgentGossip,
  hooks: GossipRouteHooks = {},
): void {
  const join = async (req: FastifyRequest, reply: FastifyReply) => {
    const address = (req.params as { '*': string })['*'];
    if (!address) throw badRequest('Missing address to join');
    const targets = gossipTargets([address], SERF_LAN_PORT);
    const [answered, other] = await Promise.all([
      gossip.join(targets),
      hooks.joinOther?.(address).catch(() => false) ?? Promise.resolve(false),
    ]);
    if (answered === 0 && !other)
      throw new HttpError(500, `Failed to join ${targets.join(', ')}: no gossip member answered there`);
    return reply.code(200).send();
  };
  app.put('/v1/agent/join/*', join);
  app.get('/v1/agent/join/*', join);

  // Consul's force-leave: a failed member is made 'left', so the leader deregisters it.
  const forceLeave = async (req: FastifyRequest, reply: FastifyReply) => {
    const name = (req.params as { node: string }).node;
    if (!name) throw badRequest('Missing node name');
    const member = gossip.member(name);
    const result = gossip.forceLeave(name);
    if (result === 'unknown') throw new HttpError(500, `agent: No node found with name '${name}'`);
    if (result === 'self')
      throw new HttpError(500, `agent: cannot force-leave this agent itself ('${name}')`);
    if (result === 'alive')
      throw new HttpError(
        500,
        `agent: node '${name}' is alive and cannot be force-left (it would refute); stop it or use leave`,
      );
    if (member?.meta.role === 'server' && hooks.removeServer) await hooks.removeServer(member);
    return reply.code(200).send();
  };
  app.put('/v1/agent/force-leave/:node', forceLeave);
  app.get('/v1/agent/force-leave/:node', forceLeave);

  registerKeyringRoutes(app, gossip.keyring);
}

/** The Consul version whose HTTP API this one follows (clients sometimes gate features on it). */
export const CONSUL_API_VERSION = '1.17.0';

/** /v1/agent/self, /v1/agent/join, /v1/agent/leave. */
export function registerAgentRoutes(app: FastifyInstance, ctx: ConsulContext): void {
  const { server } = ctx;
  const agent: GossipAgentControl = ctx.agent;

  app.get('/v1/agent/self', async () => {
    const [host, port] = splitAddress(server.serverAddress);
    return {
      Config: {
        Datacenter: agent.datacenter,
        PrimaryDatacenter: agent.datacenter,
        NodeName: agent.nodeName,
        NodeID: server.id,
        Server: true,
        Revision: 'conclave',
        Version: CONSUL_API_VERSION,
      },
      Member: {
        Name: agent.nodeName,
        Addr: host,
        Port: port,
        Tags: { role: 'consul', dc: agent.datacenter, id: server.id, port: String(port) },
        Status: 1,
      },
      Stats: {
        raft: {
          state: server.raftStatus().role,
          term: String(server.raftStatus().term),
          commit_index: String(server.raftStatus().commit),
          applied_index: String(server.raftStatus().applied),
          last_log_index: String(server.raftStatus().lastIndex),
          last_fsync_ms: server.lastPersistMs().toFixed(3),
        },
        // Consul reports Go's runtime here; ours is Node's (strings, as Consul's stats are).
        runtime: runtimeStats(),
      },
      Meta: {},
    };
  });

  // Consul's serf members; until gossip lands, the servers of the Raft configuration, with the
  // leader's view of their health (the catalog's serfHealth check).
  app.get('/v1/agent/members', async () => {
    if (agent.members) return agent.members();
    const catalog = server.store.catalog;
    return server.raftConfiguration().servers.map((s) => {
      const [addr, port] = splitAddress(s.address);
      const health = catalog.check(s.name, 'serfHealth')?.status;
      return {
        Name: s.name,
        Addr: addr,
        Port: port,
        Tags: { role: 'consul', dc: agent.datacenter, id: s.id, port: String(port), raft_vsn: '3' },
        // Serf member status: 1 alive, 4 failed.
        Status: health === 'critical' ? 4 : 1,
        ...SERF_PROTOCOL_FIELDS,
      };
    });
  });

  // A join address is also tried as a server's Raft address (port 8300 when none is given).
  const raftJoin = async (address: string): Promise<boolean> => {
    const target = address.includes(':') ? address : `${address}:8300`;
    await server.joinAddress(target);
    return server.state.directory.all().some((s) => s.address === target);
  };
  if (agent.gossip) {
    registerGossipAgentRoutes(app, agent.gossip, {
      joinOther: raftJoin,
      // Consul's force-leave of a server also takes it out of the Raft configuration.
      removeServer: async (member) => {
        const id = member.meta.tags.id ?? '';
        const peer = server
          .raftConfiguration()
          .servers.find((s) => (id !== '' && s.id === id) || s.name === member.name);
        if (peer && peer.id !== server.id) await server.removePeer(peer.id);
      },
    });
  } else {
    app.put('/v1/agent/join/*', async (req, reply) => {
      const address = (req.params as { '*': string })['*'];
      if (!address) throw badRequest('Missing address to join');
      await raftJoin(address);
      return reply.code(200).send();
    });
  }

  app.put('/v1/agent/leave', async (_req, reply) => {
    await agent.leave();
    return reply.code(200).send();
  });
}

function splitAddress(address: string): [string, number] {
  const i = address.lastIndexOf(':');
  return [address.slice(0, i), Number(address.slice(i + 1))];
}

function runtimeStats(): Record<string, string> {
  const m = process.memoryUsage();
  return {
    arch: process.arch,
    os: process.platform,
    version: process.version,
    cpu_count: String(availableParallelism()),
    rss_bytes: String(m.rss),
    heap_total_bytes: String(m.heapTotal),
    heap_used_bytes: String(m.heapUsed),
    external_bytes: String(m.external),
    array_buffers_bytes: String(m.arrayBuffers),
  };
}
