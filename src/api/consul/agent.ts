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
