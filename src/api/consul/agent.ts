import type { FastifyInstance } from 'fastify';
import { badRequest } from './errors.js';
import type { ConsulContext } from './http.js';

/** The Consul version whose HTTP API this one follows (clients sometimes gate features on it). */
export const CONSUL_API_VERSION = '1.17.0';

/** /v1/agent/self, /v1/agent/join, /v1/agent/leave. */
export function registerAgentRoutes(app: FastifyInstance, ctx: ConsulContext): void {
  const { server, agent } = ctx;

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
        ProtocolMin: 1,
        ProtocolMax: 5,
        ProtocolCur: 2,
        DelegateMin: 2,
        DelegateMax: 5,
        DelegateCur: 4,
      };
    });
  });

  app.put('/v1/agent/join/*', async (req, reply) => {
    const address = (req.params as { '*': string })['*'];
    if (!address) throw badRequest('Missing address to join');
    await server.joinAddress(address.includes(':') ? address : `${address}:8300`);
    return reply.code(200).send();
  });

  app.put('/v1/agent/leave', async (_req, reply) => {
    await agent.leave();
    return reply.code(200).send();
  });
}

function splitAddress(address: string): [string, number] {
  const i = address.lastIndexOf(':');
  return [address.slice(0, i), Number(address.slice(i + 1))];
}
