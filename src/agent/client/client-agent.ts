import type { Server } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { CONSUL_API_VERSION, registerGossipAgentRoutes } from '../../api/consul/agent.js';
import { registerAgentServiceRoutes } from '../../api/consul/agent-services.js';
import { fieldOf, objectBody } from '../../api/consul/decode.js';
import { createConsulApp } from '../../api/consul/http.js';
import { loadOrCreateNodeId } from '../../server/identity.js';
import type { Logger } from '../../server/logger.js';
import type { AgentConfig } from '../config.js';
import {
  agentGossipControl,
  consulMember,
  gossipTargets,
  keepJoined,
  memberAgents,
  memberMeta,
  serverRpcAddresses,
  startAgentGossip,
} from '../gossip/agent-gossip.js';
import type { GossipShell } from '../gossip/gossip-shell.js';
import { type AntiEntropy, agentAntiEntropy } from '../local/anti-entropy.js';
import type { AliasSource } from '../local/check-runners.js';
import { loadDefinitions } from '../local/definitions-loader.js';
import { LocalState } from '../local/local-state.js';
import { remoteAliasSource } from './alias-source.js';
import { forwardRequest, registerHttpForwarding, startDnsForwarder, startTcpForwarder } from './forward.js';
import { httpCatalogAccess } from './http-catalog-access.js';
import { ServerPool } from './server-pool.js';

/** Bound on the servers a gossip join adds to the server pool at once. */
const MAX_POOL_SEEDS_FROM_GOSSIP = 16;

/**
 * A client agent (`conclave agent` without -server): no Raft and no store. It runs its own
 * services' checks, keeps them in the catalog by anti-entropy through a server, and forwards
 * everything else (Consul HTTP, DNS, etcd gRPC) to a server it found through -retry-join.
 */
export class ClientAgent {
  readonly local: LocalState;
  private readonly pool: ServerPool;
  private aliasSource: AliasSource = () => null;
  private readonly nodeId: string;
  private http: FastifyInstance | null = null;
  private dns: { port: number; close(): Promise<void> } | null = null;
  private etcd: Server | null = null;
  private antiEntropy: AntiEntropy | null = null;
  private gossip: GossipShell | null = null;
  private stopJoining: () => void = () => {};
  private stopping: Promise<void> | null = null;
  readonly stopped: Promise<void>;
  private markStopped!: () => void;
  exitCode = 0;
  httpPort = 0;

  constructor(
    readonly config: AgentConfig,
    private readonly log: Logger,
  ) {
    this.stopped = new Promise((resolve) => {
      this.markStopped = resolve;
    });
    this.nodeId = loadOrCreateNodeId(config.dataDir!, config.nodeId);
    this.local = new LocalState({
      nodeName: config.nodeName,
      dataDir: config.dataDir,
      enableScriptChecks: config.enableScriptChecks,
      enableLocalScriptChecks: config.enableLocalScriptChecks,
      // A client holds no catalog: alias checks read the aliased node from a server.
      deps: { aliasSource: (node, serviceId) => this.aliasSource(node, serviceId) },
      log,
    });
    this.pool = new ServerPool({
      nodeId: this.nodeId,
      seeds: config.retryJoin.map((a) => (/:\d+$/.test(a) ? a : `${a}:${config.ports.server}`)),
      self: { node: config.nodeName, id: this.nodeId, address: this.address },
      log,
    });
    this.aliasSource = remoteAliasSource(this.pool);
    loadDefinitions(this.local, config);
  }

  private get address(): string {
    return this.config.advertiseAddr ?? this.config.bindAddr;
  }

  async start(): Promise<void> {
    const { clientAddr, ports } = this.config;
    this.gossip = await startAgentGossip(this.config, 'client', this.nodeId, this.log);
    this.pool.start();
    try {
      this.dns = await startDnsForwarder(this.pool, clientAddr, ports.dns);
    } catch (err) {
      await this.close();
      throw new Error(`cannot serve DNS on ${clientAddr}:${ports.dns}: ${(err as Error).message}`);
    }
    try {
      this.etcd = await startTcpForwarder(clientAddr, ports.etcd, () => {
        const server = this.pool.list().find((s) => s.etcd);
        if (!server?.etcd) throw new Error('no server serves the etcd API');
        return server.etcd;
      });
    } catch (err) {
      await this.close();
      throw new Error(`cannot serve the etcd API on ${clientAddr}:${ports.etcd}: ${(err as Error).message}`);
    }
    const app = createConsulApp({ maxValueBytes: this.config.kvMaxValueSize, log: this.log });
    this.registerLocalRoutes(app);
    registerAgentServiceRoutes(
      app,
      { nodeName: this.config.nodeName, datacenter: this.config.datacenter },
      this.local,
    );
    registerHttpForwarding(app, this.pool);
    this.http = app;
    try {
      await app.listen({ host: clientAddr, port: ports.http });
    } catch (err) {
      await this.close();
      throw new Error(`cannot serve HTTP on ${clientAddr}:${ports.http}: ${(err as Error).message}`);
    }
    const gossip = this.gossip;
    gossip.updateMeta(
      memberMeta(this.config, 'client', this.nodeId, {
        http: (app.server.address() as { port: number }).port,
        dns: this.dns?.port ?? 0,
      }),
    );
    gossip.join(gossipTargets(this.config.retryJoin, ports.serfLan || 8301));
    this.stopJoining = keepJoined(gossip, () => this.pool.list(), 2000);
    this.local.loadPersisted();
    this.local.start();
    this.antiEntropy = agentAntiEntropy(
      this.local,
      httpCatalogAccess(this.pool),
      {
        nodeName: this.config.nodeName,
        datacenter: this.config.datacenter,
        nodeId: this.nodeId,
        address: this.address,
      },
      this.log,
    );
    this.antiEntropy.start();
    const bound = app.server.address();
    this.httpPort = typeof bound === 'object' && bound ? bound.port : ports.http;
    this.log.info('agent ready', {
      node: this.config.nodeName,
      id: this.nodeId,
      mode: 'client',
      datacenter: this.config.datacenter,
      http: `${clientAddr}:${this.httpPort}`,
      http_port: this.httpPort,
      dns: `${clientAddr}:${this.dns?.port}`,
      dns_port: this.dns?.port,
      serf: gossip.address,
      serf_port: gossip.port,
      etcd_port: (this.etcd?.address() as { port: number } | null)?.port,
    });
  }

  /** /v1/agent/self, join and leave answer for this agent itself. */
  private registerLocalRoutes(app: FastifyInstance): void {
    app.get('/v1/agent/self', async () => ({
      Config: {
        Datacenter: this.config.datacenter,
        PrimaryDatacenter: this.config.datacenter,
        NodeName: this.config.nodeName,
        NodeID: this.nodeId,
        Server: false,
        Revision: 'conclave',
        Version: CONSUL_API_VERSION,
      },
      Member: {
        Name: this.config.nodeName,
        Addr: this.address,
        Port: this.config.ports.serfLan,
        Tags: { role: 'node' },
        Status: 1,
      },
      Stats: { consul: { server: 'false', known_servers: String(this.pool.size) } },
      Meta: {},
    }));
    // A session made through a client agent belongs to the client's node (Consul's agent fills
    // in its own name), so it is tied to this node's serfHealth, not to a server's.
    app.put('/v1/session/create', async (req, reply) => {
      const body = objectBody(req);
      if (fieldOf(body, 'Node') === undefined || fieldOf(body, 'Node') === '')
        body.Node = this.config.nodeName;
      return forwardRequest(this.pool, req, reply, Buffer.from(JSON.stringify(body)));
    });
    app.get('/v1/agent/members', async () => (this.gossip?.members() ?? []).map(consulMember));
    const gossip = this.gossip;
    if (gossip) {
      const control = agentGossipControl(gossip, this.config);
      const gossipJoin = control.join;
      // Consul's clients find their servers through gossip: a client joined that way hands the
      // servers it now sees to its server pool.
      control.join = async (addresses) => {
        const answered = await gossipJoin(addresses);
        const known = new Set(this.pool.list().map((s) => s.address));
        for (const address of serverRpcAddresses(gossip).slice(0, MAX_POOL_SEEDS_FROM_GOSSIP))
          if (!known.has(address)) await this.pool.join(address);
        return answered;
      };
      registerGossipAgentRoutes(app, control, {
        // A join address is also tried as a server's RPC address (the client's server pool).
        joinOther: async (address) => {
          const target = /:\d+$/.test(address) ? address : `${address}:${this.config.ports.server}`;
          await this.pool.join(target);
          return this.pool.list().some((s) => s.address === target);
        },
        // Consul's force-leave of a server also takes it out of the Raft configuration: ask
        // another alive server (any one forwards to the leader).
        removeServer: async (member) => {
          const id = member.meta.tags.id ?? '';
          const via = memberAgents(gossip, this.config.nodeName).find(
            (m) => m.role === 'server' && m.name !== member.name && m.http,
          );
          if (!via?.http || id === '') {
            this.log.warn('force-leave: no server to take the server out of the Raft configuration', { id });
            return;
          }
          const res = await fetch(`${via.http}/v1/operator/raft/peer?id=${encodeURIComponent(id)}`, {
            method: 'DELETE',
            signal: AbortSignal.timeout(10_000),
          });
          const text = await res.text();
          if (res.status !== 200 && !/not a member|was not found/.test(text))
            throw new Error(
              `${via.name} could not remove ${member.name} from the Raft configuration: ${text.trim()}`,
            );
        },
      });
    }
    app.put('/v1/agent/leave', async (_req, reply) => {
      void this.leave();
      return reply.code(200).send();
    });
  }

  /** Graceful: the leader is told, and deregisters this node (Consul's "left"). */
  leave(): Promise<void> {
    this.stopping ??= (async () => {
      this.log.info('leaving the cluster');
      this.antiEntropy?.stop();
      this.stopJoining();
      await this.gossip?.leave();
      await this.pool.stop(true);
      await this.close();
      this.markStopped();
    })();
    return this.stopping;
  }

  shutdown(code = 0): Promise<void> {
    this.exitCode = code;
    this.stopping ??= (async () => {
      await this.pool.stop(false);
      await this.close();
      this.markStopped();
    })();
    return this.stopping;
  }

  private async close(): Promise<void> {
    this.antiEntropy?.stop();
    this.local.stop();
    this.stopJoining();
    await this.gossip?.stop();
    const http = this.http;
    this.http = null;
    if (http) {
      http.server.closeIdleConnections();
      const cut = setTimeout(() => http.server.closeAllConnections(), 200);
      await http.close();
      clearTimeout(cut);
    }
    const dns = this.dns;
    this.dns = null;
    await dns?.close();
    const etcd = this.etcd;
    this.etcd = null;
    if (etcd) await new Promise<void>((r) => etcd.close(() => r()));
  }
}
