import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { GossipAgentControl } from '../api/consul/agent.js';
import { createConsulHttp } from '../api/consul/http.js';
import { type DnsServer, startDnsServer } from '../api/dns/dns-server.js';
import { startEtcdApi } from '../api/etcd/etcd-api.js';
import { loadOrCreateNodeId } from '../server/identity.js';
import type { Logger } from '../server/logger.js';
import { ConclaveServer } from '../server/server.js';
import { splitHostPort } from '../transport/address.js';
import type { AgentConfig } from './config.js';
import {
  agentGossipControl,
  consulMember,
  gossipTargets,
  keepJoined,
  memberMeta,
  memberView,
  serverRpcAddresses,
  startAgentGossip,
} from './gossip/agent-gossip.js';
import type { GossipShell } from './gossip/gossip-shell.js';
import { type AntiEntropy, agentAntiEntropy } from './local/anti-entropy.js';
import { serverCatalogAccess } from './local/catalog-access.js';
import { loadDefinitions } from './local/definitions-loader.js';
import { LocalState } from './local/local-state.js';

/**
 * A running agent: one server plus the APIs on its client address. `-dev` keeps everything in
 * memory on 127.0.0.1. Leaving (the HTTP leave call, SIGTERM, SIGINT) is graceful: hand off
 * leadership, leave the configuration, flush, stop.
 */
export class Agent {
  readonly server: ConclaveServer;
  private http: FastifyInstance | null = null;
  private etcd: { port: number; close: () => Promise<void> } | null = null;
  private dns: DnsServer | null = null;
  readonly local: LocalState;
  private antiEntropy: AntiEntropy | null = null;
  private gossip: GossipShell | null = null;
  private stopJoining: () => void = () => {};
  private stopping: Promise<void> | null = null;
  /** Resolves when the agent has stopped, for whoever waits to exit the process. */
  readonly stopped: Promise<void>;
  private markStopped!: () => void;
  httpPort = 0;

  constructor(
    readonly config: AgentConfig,
    private readonly log: Logger,
  ) {
    this.stopped = new Promise((resolve) => {
      this.markStopped = resolve;
    });
    // -dev persists nothing, not even a node-id file in a -data-dir it was also given.
    const nodeId =
      config.dataDir && !config.dev
        ? loadOrCreateNodeId(config.dataDir, config.nodeId)
        : (config.nodeId ?? randomUUID());
    const bootstrap =
      config.dev || config.bootstrap ? 'self' : config.bootstrapExpect > 0 ? config.bootstrapExpect : null;
    const serverOptions: ConstructorParameters<typeof ConclaveServer>[0] = {
      nodeId,
      nodeName: config.nodeName,
      dataDir: config.dev ? null : config.dataDir,
      bindHost: config.bindAddr,
      serverPort: config.ports.server,
      bootstrap,
      retryJoin: config.retryJoin.map((a) => (hasPort(a) ? a : `${a}:${config.ports.server}`)),
      log,
      tickMs: config.raftTickMs,
      snapshotEveryEntries: config.raftSnapshotThreshold,
      trailingLogs: config.raftTrailingLogs,
      onFatal: () => void this.shutdown(1),
    };
    if (config.advertiseAddr) serverOptions.advertiseHost = config.advertiseAddr;
    this.server = new ConclaveServer(serverOptions);
    this.local = new LocalState({
      nodeName: config.nodeName,
      dataDir: config.dev ? null : config.dataDir,
      enableScriptChecks: config.enableScriptChecks,
      enableLocalScriptChecks: config.enableLocalScriptChecks,
      deps: {
        aliasSource: (node, serviceId) => {
          const catalog = this.server.store.catalog;
          if (!catalog.nodes.has(node)) return null;
          const checks = catalog.nodeChecks(node);
          if (serviceId === '') return checks;
          if (!catalog.nodeServices(node).some((s) => s.id === serviceId)) return null;
          return checks.filter((c) => c.serviceId === '' || c.serviceId === serviceId);
        },
      },
      log,
    });
    loadDefinitions(this.local, config);
  }

  async start(): Promise<void> {
    // The etcd API binds first, so the server can publish its etcd address (etcd's clientURLs)
    // in the directory entry that announces it.
    try {
      this.etcd = await startEtcdApi(this.server, this.config.clientAddr, this.config.ports.etcd);
    } catch (err) {
      throw new Error(
        `cannot serve the etcd API on ${this.config.clientAddr}:${this.config.ports.etcd}: ${(err as Error).message}`,
      );
    }
    const wildcard = this.config.clientAddr === '0.0.0.0' || this.config.clientAddr === '::';
    const clientHost = wildcard
      ? (this.config.advertiseAddr ?? this.config.bindAddr)
      : this.config.clientAddr;
    this.server.publishEtcdAddress(`${clientHost}:${this.etcd.port}`);
    // Gossip before the server, so its address goes into the directory entry that announces us.
    try {
      this.gossip = await startAgentGossip(this.config, 'server', this.server.id, this.log);
    } catch (err) {
      await this.closeHttp();
      throw err;
    }
    const gossip = this.gossip;
    this.server.publishSerfAddress(gossip.address);
    this.server.memberStatus = (name) => {
      const m = gossip.members().find((x) => x.name === name);
      return m ? memberView(m) : undefined;
    };
    this.server.gossipMembers = () => gossip.members().map(memberView);
    this.server.gossipServerAddresses = () => serverRpcAddresses(gossip);
    try {
      await this.server.start();
    } catch (err) {
      await this.closeHttp();
      throw err;
    }
    const control: GossipAgentControl = {
      nodeName: this.config.nodeName,
      datacenter: this.config.datacenter,
      leave: () => this.leave(),
      local: this.local,
      members: () => gossip.members().map(consulMember),
      gossip: agentGossipControl(gossip, this.config),
    };
    this.http = createConsulHttp({
      server: this.server,
      agent: control,
      options: { maxValueBytes: this.config.kvMaxValueSize, log: this.log },
    });
    try {
      await this.http.listen({ host: this.config.clientAddr, port: this.config.ports.http });
    } catch (err) {
      await this.closeHttp();
      await this.server.stop();
      throw new Error(
        `cannot serve HTTP on ${this.config.clientAddr}:${this.config.ports.http}: ${(err as Error).message}`,
      );
    }
    try {
      this.dns = await startDnsServer({
        server: this.server,
        config: { domain: this.config.domain, datacenter: this.config.datacenter, dns: this.config.dns },
        host: this.config.clientAddr,
        port: this.config.ports.dns,
        log: this.log,
      });
    } catch (err) {
      await this.closeHttp();
      await this.server.stop();
      throw new Error(
        `cannot serve DNS on ${this.config.clientAddr}:${this.config.ports.dns}: ${(err as Error).message}`,
      );
    }
    // Client agents forward to these addresses (the DNS server bound just above).
    this.server.publishClientAddresses(
      `${clientHost}:${this.httpPortOf()}`,
      `${clientHost}:${this.dns?.port}`,
    );
    gossip.updateMeta(
      memberMeta(this.config, 'server', this.server.id, {
        server: splitHostPort(this.server.serverAddress).port,
        http: this.httpPortOf(),
        dns: this.dns?.port ?? 0,
        etcd: this.etcd?.port ?? 0,
      }),
    );
    // Join the pool through -retry-join (gossip addresses, as in Consul) and through every server
    // the Raft directory knows, until gossip shows them alive.
    gossip.join(gossipTargets(this.config.retryJoin, this.config.ports.serfLan || 8301));
    this.stopJoining = keepJoined(gossip, () =>
      this.server.state.directory.all().filter((s) => s.id !== this.server.id),
    );
    this.local.loadPersisted();
    this.local.start();
    this.antiEntropy = agentAntiEntropy(
      this.local,
      serverCatalogAccess(this.server),
      {
        nodeName: this.config.nodeName,
        datacenter: this.config.datacenter,
        nodeId: this.server.id,
        address: this.config.advertiseAddr ?? this.config.bindAddr,
      },
      this.log,
    );
    this.antiEntropy.start();
    if (this.config.dev) await this.awaitOwnCatalogEntry(3000);
    const address = this.http.server.address();
    this.httpPort = typeof address === 'object' && address ? address.port : this.config.ports.http;
    this.log.info('agent ready', {
      node: this.config.nodeName,
      id: this.server.id,
      datacenter: this.config.datacenter,
      http: `${this.config.clientAddr}:${this.httpPort}`,
      http_port: this.httpPort,
      etcd: `${this.config.clientAddr}:${this.etcd?.port}`,
      etcd_port: this.etcd?.port,
      dns: `${this.config.clientAddr}:${this.dns?.port}`,
      dns_port: this.dns?.port,
      serf: gossip.address,
      serf_port: gossip.port,
      server: this.server.serverAddress,
      server_port: splitHostPort(this.server.serverAddress).port,
    });
  }

  /**
   * In -dev, wait briefly until the leader has put this node in the catalog, so a session
   * (which Consul ties to a registered node) can be created as soon as the agent says ready.
   */
  private async awaitOwnCatalogEntry(ms: number): Promise<void> {
    const end = Date.now() + ms;
    // The node and its serfHealth check: a default session is tied to that check.
    while (!this.server.store.catalog.check(this.config.nodeName, 'serfHealth') && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  private httpPortOf(): number {
    const address = this.http?.server.address();
    return typeof address === 'object' && address ? address.port : this.config.ports.http;
  }

  /** Graceful leave, then stop. Idempotent. */
  leave(): Promise<void> {
    if (!this.stopping) {
      this.stopping = (async () => {
        this.log.info('leaving the cluster');
        await this.server.leave();
        this.stopJoining();
        await this.gossip?.leave();
        // The HTTP server closes after the leave answer is on its way.
        setImmediate(() => void this.closeHttp().then(() => this.markStopped()));
      })();
    }
    return this.stopping;
  }

  /**
   * Stop without leaving (a fatal error, or a second signal). Idempotent; cuts short a leave in
   * progress, which could otherwise wait out its leadership hand-off and removal timeouts.
   */
  shutdown(code = 0): Promise<void> {
    this.exitCode = code;
    this.halting ??= (async () => {
      await this.server.stop();
      await this.closeHttp();
      this.markStopped();
    })();
    this.stopping ??= this.halting;
    return this.halting;
  }

  private halting: Promise<void> | null = null;

  exitCode = 0;

  private async closeHttp(): Promise<void> {
    this.antiEntropy?.stop();
    this.local.stop();
    this.stopJoining();
    await this.gossip?.stop();
    const etcd = this.etcd;
    this.etcd = null;
    if (etcd) await etcd.close();
    const dns = this.dns;
    this.dns = null;
    if (dns) await dns.close();
    const http = this.http;
    this.http = null;
    if (!http) return;
    // Blocking queries may hold connections for minutes: give answers in flight a moment, then cut.
    http.server.closeIdleConnections();
    const cut = setTimeout(() => http.server.closeAllConnections(), 200);
    await http.close();
    clearTimeout(cut);
  }
}

function hasPort(address: string): boolean {
  if (address.startsWith('[')) return /\]:\d+$/.test(address);
  return /^[^:]+:\d+$/.test(address);
}
