import type { FastifyInstance } from 'fastify';
import { badRequest } from './errors.js';
import type { ConsulContext } from './http.js';
import { consistency, query, setIndexHeaders } from './query.js';

/** /v1/status/* and /v1/operator/raft/*, shaped as Consul returns them. */
export function registerStatusRoutes(app: FastifyInstance, ctx: ConsulContext): void {
  const { server } = ctx;

  // Consul answers these from the local server's view, with no leader round trip.
  // A JSON string, quoted ("10.0.0.1:8300"), or "" with no leader.
  app.get('/v1/status/leader', async (_req, reply) =>
    reply.type('application/json; charset=utf-8').send(JSON.stringify(server.leaderAddress())),
  );

  app.get('/v1/status/peers', async () => {
    const { servers } = server.raftConfiguration();
    return servers.filter((s) => s.voter).map((s) => s.address);
  });

  app.get('/v1/operator/raft/configuration', async (req, reply) => {
    await server.readBarrier(consistency(query(req)));
    const { servers, index } = server.raftConfiguration();
    setIndexHeaders(reply, index, server);
    return {
      Servers: servers.map((s) => ({
        ID: s.id,
        Node: s.name,
        Address: s.address,
        Leader: s.leader,
        ProtocolVersion: '3',
        Voter: s.voter,
        LastIndex: s.lastIndex,
      })),
      Index: index,
    };
  });

  app.delete('/v1/operator/raft/peer', async (req, reply) => {
    const q = query(req);
    let id = q.id;
    if (!id && q.address) {
      id = server.raftConfiguration().servers.find((s) => s.address === q.address)?.id;
      if (!id) throw badRequest(`address "${q.address}" was not found in the Raft configuration`);
    }
    if (!id)
      throw badRequest(
        "Must specify either ?id with the server's ID or ?address with IP:port of peer to remove",
      );
    try {
      await server.removePeer(id);
    } catch (err) {
      if (err instanceof Error && /not a member/.test(err.message))
        throw badRequest(`id "${id}" was not found in the Raft configuration`);
      throw err;
    }
    return reply.code(200).send();
  });

  app.post('/v1/operator/raft/transfer-leader', async (req) => {
    await server.transferLeadership(query(req).id ?? '');
    return { Success: true };
  });
}
