import type { ServerInfo } from '../../server/directory.js';
import type { Logger } from '../../server/logger.js';
import type { ClientNode, DiscoverAnswer, PeerAnswer, PeerRequest } from '../../server/peer-rpc.js';
import { PeerTransport } from '../../transport/peer-transport.js';

/**
 * A client agent's view of the servers (Consul's client-side server manager): found through
 * the -retry-join addresses and then through each other, refreshed periodically; requests go
 * to a random one that has not failed lately. The pool also carries the client's heartbeat to
 * the leader (the stopgap liveness signal until gossip). A client sticks to the first cluster
 * it finds, so a stray server of another cluster is never used.
 */

const REFRESH_MS = 15_000;
const REFRESH_WHILE_EMPTY_MS = 1000;
const HEARTBEAT_MS = 2000;
/** A server that failed a forwarded request is avoided this long (unless it is the only one). */
const FAILED_FOR_MS = 5000;

export interface PooledServer extends ServerInfo {
  http: string;
  dns: string;
}

export class NoServersError extends Error {
  constructor() {
    // Consul's text for a client with no server to forward to.
    super('No known Consul servers');
  }
}

export interface ServerPoolOptions {
  nodeId: string;
  seeds: string[];
  self: ClientNode;
  log: Logger;
}

export class ServerPool {
  private readonly transport: PeerTransport;
  private servers = new Map<string, PooledServer>();
  private readonly failedAt = new Map<string, number>();
  private clusterId = '';
  private refreshTimer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly seeds: Set<string>;

  constructor(private readonly options: ServerPoolOptions) {
    this.seeds = new Set(options.seeds);
    this.transport = new PeerTransport({
      nodeId: options.nodeId,
      clusterId: '',
      host: '127.0.0.1',
      port: 0,
      onRaftMessage: () => {},
      log: (level, message, fields) => options.log[level](message, fields),
    });
  }

  start(): void {
    void this.refresh();
    this.heartbeatTimer = setInterval(() => void this.heartbeat(false), HEARTBEAT_MS);
  }

  async stop(leaving: boolean): Promise<void> {
    this.stopped = true;
    clearTimeout(this.refreshTimer);
    clearInterval(this.heartbeatTimer);
    if (leaving) await this.heartbeat(true).catch(() => {});
    await this.transport.close();
  }

  /** Add join targets (`conclave join`, PUT /v1/agent/join) and look for servers now. */
  async join(address: string): Promise<number> {
    this.seeds.add(address);
    await this.refresh();
    return this.servers.size;
  }

  get size(): number {
    return this.servers.size;
  }

  list(): PooledServer[] {
    return [...this.servers.values()];
  }

  /** A server to forward to: random among those that have not failed lately. */
  pick(): PooledServer {
    const all = [...this.servers.values()];
    if (all.length === 0) throw new NoServersError();
    const now = Date.now();
    const healthy = all.filter((s) => now - (this.failedAt.get(s.id) ?? 0) > FAILED_FOR_MS);
    const from = healthy.length > 0 ? healthy : all;
    return from[Math.floor(Math.random() * from.length)]!;
  }

  markFailed(server: PooledServer): void {
    this.failedAt.set(server.id, Date.now());
  }

  private async refresh(): Promise<void> {
    clearTimeout(this.refreshTimer);
    if (this.stopped) return;
    const targets = new Set([...this.seeds, ...[...this.servers.values()].map((s) => s.address)]);
    const found = new Map<string, PooledServer>();
    const probed = new Set<string>();
    // Probe the seeds, then every server they name, once each.
    let round = [...targets];
    while (round.length > 0) {
      const next: string[] = [];
      await Promise.all(
        round.map(async (address) => {
          probed.add(address);
          const answer = await this.ask<DiscoverAnswer>(address, { kind: 'servers' }).catch(() => null);
          if (!answer || answer.clusterId === '') return;
          if (this.clusterId === '') this.clusterId = answer.clusterId;
          if (answer.clusterId !== this.clusterId) {
            this.options.log.warn('ignoring a server of another cluster', { server: address });
            return;
          }
          const self = answer.self;
          if (self.http && self.dns && answer.members.includes(self.id))
            found.set(self.id, { ...self, http: self.http, dns: self.dns });
          for (const s of answer.servers)
            if (!probed.has(s.address) && answer.members.includes(s.id)) next.push(s.address);
        }),
      );
      round = [...new Set(next)].filter((a) => !probed.has(a));
    }
    if (found.size > 0 || this.servers.size === 0) {
      const before = this.servers.size;
      this.servers = found;
      if (before === 0 && found.size > 0) {
        this.options.log.info('found servers', { servers: [...found.values()].map((s) => s.name) });
        // Announce ourselves at once rather than at the next heartbeat tick.
        void this.heartbeat(false);
      }
    }
    if (!this.stopped)
      this.refreshTimer = setTimeout(
        () => void this.refresh(),
        this.servers.size === 0 ? REFRESH_WHILE_EMPTY_MS : REFRESH_MS,
      );
  }

  private async heartbeat(leaving: boolean): Promise<void> {
    if (this.servers.size === 0) return;
    const server = this.pick();
    const request: PeerRequest = { kind: 'clientHeartbeat', node: this.options.self };
    if (leaving) request.leaving = true;
    try {
      await this.ask(server.address, request);
    } catch (err) {
      this.markFailed(server);
      this.options.log.debug('heartbeat not delivered', { server: server.name, error: String(err) });
    }
  }

  private async ask<T>(address: string, request: PeerRequest): Promise<T> {
    const { body } = await this.transport.requestAt(address, request, 2000);
    const answer = body as PeerAnswer<T>;
    if (!answer.ok) throw new Error(`${answer.error.kind}: ${answer.error.message}`);
    return answer.value;
  }
}
