import type { Server } from './cluster.js';
import { ok } from './http.js';

/**
 * How much the cluster wrote: Raft entries committed (commit_index from /v1/agent/self) and
 * store revisions (one per state-changing command; read as the etcd API's header revision).
 * A write that changes nothing (a TTL pass on a passing check, re-registered unchanged) takes
 * a Raft entry but no revision.
 */

export interface WriteCounters {
  commitIndex: number;
  revision: number;
}

export async function writeCounters(server: Server): Promise<WriteCounters> {
  const self = JSON.parse((await ok(server.httpPort, 'GET', '/v1/agent/self')).body) as {
    Stats: { raft: { commit_index: string } };
  };
  const range = JSON.parse(
    (
      await ok(
        server.etcdPort,
        'POST',
        '/v3/kv/range',
        JSON.stringify({ key: Buffer.from('bench/discovery').toString('base64'), serializable: true }),
      )
    ).body,
  ) as { header: { revision: string } };
  const counters = {
    commitIndex: Number(self.Stats.raft.commit_index),
    revision: Number(range.header.revision),
  };
  if (!(counters.commitIndex > 0 && counters.revision > 0))
    throw new Error(`unreadable write counters from ${server.name}: ${JSON.stringify(counters)}`);
  return counters;
}

/** The server all three name as leader (by server port), or null. */
export async function leaderOf(servers: readonly Server[]): Promise<Server | null> {
  const leader = JSON.parse((await ok(servers[0]!.httpPort, 'GET', '/v1/status/leader')).body) as string;
  return servers.find((s) => leader.endsWith(`:${s.serverPort}`)) ?? null;
}
