import { type CompactionPolicy, DEFAULT_COMPACTION_POLICY } from '../store/index.js';
import { splitHostPort } from '../transport/address.js';
import type { Logger } from './logger.js';
import type { ClientNode } from './peer-rpc.js';
import type { RaftHost } from './raft-host.js';
import type { ConclaveServer } from './server.js';

/**
 * What only the leader does, on its own clock, by proposing commands (DESIGN.md "Expiry is
 * decided by the leader"): renew every lease when it takes office, expire leases that are due,
 * checkpoint remaining TTLs, compact history by policy, and promote learners that caught up.
 */

const TICK_MS = 100;
const PROMOTE_EVERY_MS = 1000;
const CHECKPOINT_EVERY_MS = 60_000;
const COMPACT_EVERY_MS = 30_000;
const RECONCILE_EVERY_MS = 1000;
const SILENT_CRITICAL_MS = 3000;
/**
 * A client agent silent this long is failed (it heartbeats every 2 s). A new leader waits as
 * long before judging clients it has not heard from yet, since heartbeats went to its predecessor.
 */
export const CLIENT_SILENT_CRITICAL_MS = 10_000;
/** Consul's check id and texts for a node's membership health (serf's, here the leader's view). */
export const SERF_HEALTH = {
  checkId: 'serfHealth',
  name: 'Serf Health Status',
  passing: 'Agent alive and reachable',
  critical: 'Agent not live or unreachable',
} as const;
/** The serfHealth check the leader registers for a node it judges alive or not. */
function serfHealthCheck(alive: boolean) {
  return {
    checkId: SERF_HEALTH.checkId,
    name: SERF_HEALTH.name,
    status: alive ? ('passing' as const) : ('critical' as const),
    output: alive ? SERF_HEALTH.passing : SERF_HEALTH.critical,
  };
}
/** Consul's structs.ConsulServiceID: the service every server carries, kept by the leader. */
export const CONSUL_SERVICE_ID = 'consul';
/** Leases expired per command: a mass expiry becomes several small entries, not one giant one. */
const EXPIRE_BATCH = 1000;

export class LeaderDuties {
  private timer: NodeJS.Timeout | null = null;
  private term = 0;
  /** The term whose leaseRenewAll has been applied: expiry waits for it (etcd's lessor Promote). */
  private renewedTerm = 0;
  private inFlight = new Set<string>();
  private lastPromote = 0;
  private lastCheckpoint = 0;
  private lastCompact = 0;
  private lastReconcile = 0;
  /** Servers the leader has not heard from, since when (see heardFromRecently). */
  private readonly silentSince = new Map<string, number>();
  /** Learners seen caught up at the previous check; promoted when caught up twice running. */
  private caughtUp = new Set<string>();
  /** Client agents heard from, by node name (in memory: a new leader starts over, with a grace period). */
  private readonly clients = new Map<string, { node: ClientNode; lastSeen: number }>();
  private leaderSince = 0;

  constructor(
    private readonly server: ConclaveServer,
    private readonly host: RaftHost,
    private readonly log: Logger,
    private readonly compaction: CompactionPolicy = DEFAULT_COMPACTION_POLICY,
  ) {}

  leaderChanged(isLeader: boolean, term: number): void {
    this.term = term;
    if (!isLeader) {
      this.stop();
      return;
    }
    const now = Date.now();
    this.lastCheckpoint = now;
    this.lastCompact = now;
    this.caughtUp.clear();
    this.silentSince.clear();
    this.clients.clear();
    this.leaderSince = now;
    this.timer ??= setInterval(() => this.tick(), TICK_MS);
    this.tick();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private tick(): void {
    if (!this.server.isLeader()) return;
    const now = Date.now();
    if (this.renewedTerm !== this.term) {
      const term = this.term;
      this.once('renew', { type: 'leaseRenewAll' }, () => {
        if (this.term !== term) return;
        this.renewedTerm = term;
        this.tick(); // the rest of the duties (a new leader's catalog reconcile) without waiting a tick
      });
      return;
    }
    const store = this.server.store;
    const due = store.leasesDue(now, EXPIRE_BATCH);
    if (due.length > 0) {
      this.once('expire', { type: 'leaseExpire', ids: due }, (r) => {
        if (r.type === 'leaseExpire' && r.expired.length > 0)
          this.log.info('leases expired', { ids: r.expired });
      });
    }
    if (now - this.lastPromote >= PROMOTE_EVERY_MS) {
      this.lastPromote = now;
      this.promoteLearners();
    }
    if (now - this.lastCheckpoint >= CHECKPOINT_EVERY_MS) {
      this.lastCheckpoint = now;
      const checkpoints = store
        .leases()
        .filter((l) => l.ttlMs > 0)
        .slice(0, EXPIRE_BATCH)
        .map((l) => ({ id: l.id, remainingMs: store.leaseRemainingMs(l.id, now) }));
      if (checkpoints.length > 0) this.once('checkpoint', { type: 'leaseCheckpoint', checkpoints });
    }
    if (now - this.lastReconcile >= RECONCILE_EVERY_MS) {
      this.lastReconcile = now;
      this.reconcileServers();
      this.reconcileClients(now);
    }
    if (now - this.lastCompact >= COMPACT_EVERY_MS) {
      this.lastCompact = now;
      const revision = store.compactionTarget(this.compaction, now);
      if (revision !== null) this.once('compact', { type: 'compact', revision });
    }
  }

  /** Propose a duty command unless one of its kind is still in flight. */
  private once(
    kind: string,
    command: Parameters<ConclaveServer['proposeHere']>[0],
    then?: (r: Awaited<ReturnType<ConclaveServer['proposeHere']>>) => void,
  ): void {
    if (this.inFlight.has(kind)) return;
    this.inFlight.add(kind);
    this.server
      .proposeHere(command)
      .then(
        (r) => then?.(r),
        (err: unknown) => this.log.debug('leader duty not applied', { kind, error: String(err) }),
      )
      .finally(() => this.inFlight.delete(kind));
  }

  /**
   * Servers appear in the catalog as nodes with a serfHealth check, as Consul's leader
   * reconciles serf members: passing while the leader hears from them, critical when it does
   * not. Until gossip exists the leader's Raft contact is the liveness signal. Only changes are
   * proposed.
   */
  private reconcileServers(): void {
    const now = Date.now();
    const s = this.host.status();
    const catalog = this.server.store.catalog;
    for (const id of [...s.config.voters, ...s.config.learners]) {
      const info = this.server.state.directory.get(id);
      if (!info) continue;
      // Gossip's verdict when it knows the server (a suspect is still alive, as in Consul);
      // otherwise the leader's own Raft contact.
      const gossip = this.server.memberStatus?.(info.name);
      const alive =
        id === s.id ||
        (gossip !== undefined
          ? gossip.status === 'alive' || gossip.status === 'suspect'
          : this.heardFromRecently(id, s.progress[id]?.recentActive ?? false, now));
      const host = info.address.slice(0, info.address.lastIndexOf(':'));
      const node = catalog.nodes.get(info.name);
      const check = catalog.check(info.name, SERF_HEALTH.checkId);
      const status = alive ? 'passing' : 'critical';
      // Consul's servers carry the "consul" service (port: server RPC), which tools look up
      // (consul.service.consul, Prometheus' Consul discovery).
      const rpcPort = splitHostPort(info.address).port;
      const consul = catalog.nodeServices(info.name).find((x) => x.id === CONSUL_SERVICE_ID);
      if (node?.address === host && node.id === id && check?.status === status && consul?.port === rpcPort)
        continue;
      this.once(`reconcile:${info.name}`, {
        type: 'catalogRegister',
        service: { id: CONSUL_SERVICE_ID, service: CONSUL_SERVICE_ID, port: rpcPort },
        // The agent's anti-entropy owns tagged addresses and meta: keep what it wrote.
        node: {
          node: info.name,
          id,
          address: host,
          ...(node ? { taggedAddresses: node.taggedAddresses, meta: node.meta } : {}),
        },
        checks: [serfHealthCheck(alive)],
      });
    }
    // A server that left the configuration leaves the catalog (Consul deregisters left members).
    const members = new Set([...s.config.voters, ...s.config.learners]);
    for (const info of this.server.state.directory.all()) {
      if (members.has(info.id) || catalog.nodes.get(info.name)?.id !== info.id) continue;
      this.once(`reconcile:${info.name}`, { type: 'catalogDeregister', node: info.name });
    }
  }

  /** A client agent's heartbeat (or its goodbye), forwarded to the leader. */
  clientHeartbeat(node: ClientNode, leaving: boolean): void {
    if (leaving) {
      this.clients.delete(node.node);
      // Consul deregisters a member that left gracefully.
      this.once(`client:${node.node}`, { type: 'catalogDeregister', node: node.node });
      return;
    }
    const known = this.clients.get(node.node);
    this.clients.set(node.node, { node, lastSeen: Date.now() });
    if (!known) this.reconcileClients(Date.now());
  }

  /**
   * Client agents appear in the catalog with a serfHealth check the leader keeps: passing while
   * their heartbeats arrive, critical after CLIENT_SILENT_CRITICAL_MS of silence (a stopgap for
   * gossip's failure detection). Nodes with a serfHealth check that are neither servers nor
   * heard-from clients are judged only after the same grace period from this leader's start.
   */
  private reconcileClients(now: number): void {
    const catalog = this.server.store.catalog;
    const servers = new Set(this.server.state.directory.all().map((s) => s.name));
    // Who the clients are and whether they live: gossip's members first, then heartbeats from
    // clients gossip does not know (yet).
    const clients = new Map<string, { node: ClientNode; alive: boolean }>();
    for (const member of this.server.gossipMembers?.() ?? []) {
      if (member.role !== 'client' || servers.has(member.name)) continue;
      if (member.status === 'left') {
        // Consul deregisters a member that left gracefully.
        if (catalog.nodes.has(member.name))
          this.once(`client:${member.name}`, { type: 'catalogDeregister', node: member.name });
        continue;
      }
      const { host } = splitHostPort(member.address);
      clients.set(member.name, {
        node: { node: member.name, id: member.id, address: catalog.nodes.get(member.name)?.address ?? host },
        alive: member.status === 'alive' || member.status === 'suspect',
      });
    }
    for (const [name, { node, lastSeen }] of this.clients) {
      if (!clients.has(name)) clients.set(name, { node, alive: now - lastSeen < CLIENT_SILENT_CRITICAL_MS });
    }
    for (const [name, { node: info, alive }] of clients) {
      const node = catalog.nodes.get(name);
      const check = catalog.check(name, SERF_HEALTH.checkId);
      const status = alive ? 'passing' : 'critical';
      if (node && check?.status === status) continue;
      this.once(`client:${name}`, {
        type: 'catalogRegister',
        node: {
          node: name,
          id: node?.id || info.id,
          address: node?.address ?? info.address,
          ...(node ? { taggedAddresses: node.taggedAddresses, meta: node.meta } : {}),
        },
        checks: [serfHealthCheck(alive)],
      });
    }
    if (now - this.leaderSince < CLIENT_SILENT_CRITICAL_MS) return;
    // One serfHealth per node: look it up by node rather than listing every check each second.
    for (const node of catalog.nodes.keys()) {
      if (servers.has(node) || clients.has(node)) continue;
      if (catalog.check(node, SERF_HEALTH.checkId)?.status !== 'passing') continue;
      this.once(`client:${node}`, {
        type: 'checkUpdate',
        node,
        checkId: SERF_HEALTH.checkId,
        status: 'critical',
        output: SERF_HEALTH.critical,
      });
    }
  }

  /**
   * The core clears recentActive at every check-quorum round and sets it on the next answer, so
   * one sample can catch a healthy server "inactive": only silence lasting SILENT_CRITICAL_MS
   * marks it critical (and a write to the catalog).
   */
  private heardFromRecently(id: string, recentActive: boolean, now: number): boolean {
    if (recentActive) {
      this.silentSince.delete(id);
      return true;
    }
    const since = this.silentSince.get(id) ?? now;
    this.silentSince.set(id, since);
    return now - since < SILENT_CRITICAL_MS;
  }

  /** A learner whose log matched the commit index at two checks in a row gets a vote. */
  private promoteLearners(): void {
    const s = this.host.status();
    const now = new Set<string>();
    for (const id of s.config.learners) {
      const p = s.progress[id];
      if (p?.recentActive && p.match >= s.commit) now.add(id);
    }
    const ready = [...now].find((id) => this.caughtUp.has(id));
    this.caughtUp = now;
    if (!ready || this.inFlight.has('promote')) return;
    this.inFlight.add('promote');
    this.host
      .proposeConfChange({ type: 'promoteLearner', node: ready })
      .then(
        () => this.log.info('promoted a caught-up server to voter', { id: ready }),
        (err: unknown) => this.log.debug('promotion not applied', { id: ready, error: String(err) }),
      )
      .finally(() => this.inFlight.delete('promote'));
  }
}
