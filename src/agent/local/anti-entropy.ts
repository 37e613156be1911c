import type { Logger } from '../../server/logger.js';
import type {
  CatalogCheck,
  CatalogNode,
  CatalogService,
  CheckInput,
  NodeInput,
  ServiceInput,
} from '../../store/index.js';
import type { LocalCheck, LocalState } from './local-state.js';

/**
 * Anti-entropy (Consul's agent/ae): the agent's local services and checks are the truth; the
 * catalog's entries for this node are made to match them, on every local change and by a
 * periodic full comparison that also repairs drift (a leader change, a restore, someone
 * deregistering our services through the catalog API). A check whose output alone changed is
 * synced at most once per check_update_interval, so chatty checks do not write to Raft on
 * every run (Consul #1244); status changes go at once.
 */

export interface NodeView {
  node: CatalogNode | undefined;
  services: CatalogService[];
  checks: CatalogCheck[];
}

export type CatalogWrite =
  | { type: 'catalogRegister'; node: NodeInput; service?: ServiceInput; checks?: CheckInput[] }
  | { type: 'catalogDeregister'; node: string; serviceId?: string; checkId?: string };

/** How anti-entropy reaches the catalog: in-process on a server, over HTTP on a client agent. */
export interface CatalogAccess {
  nodeView(node: string): Promise<NodeView>;
  write(command: CatalogWrite): Promise<void>;
  /** Calls back whenever this node's catalog entries change (optional); returns a canceller. */
  watchNode?(node: string, onChange: () => void): () => void;
}

export interface AntiEntropyOptions {
  node: Required<Pick<NodeInput, 'node' | 'id' | 'address' | 'datacenter' | 'taggedAddresses' | 'meta'>>;
  /** Full comparison period (Consul: about a minute, scaled up in large clusters). */
  fullSyncMs: number;
  /** Consul's check_update_interval: output-only changes wait this long (default 5 minutes). */
  checkUpdateIntervalMs: number;
  log: Logger;
}

/** Writes a sync keeps in flight, and checks per registration when they go without a service. */
const WRITES_IN_FLIGHT = 16;
const CHECKS_PER_WRITE = 64;

/** Runs `work` over `items`, at most `limit` at a time; the first failure is thrown once all settle. */
async function inParallel<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: unknown = null;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++]!;
      try {
        await work(item);
      } catch (err) {
        failure ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure !== null) throw failure;
}

/** A server's "consul" service is the leader's to keep, as in Consul (structs.ConsulServiceID). */
const FOREIGN_SERVICES = new Set(['consul']);

/** Checks the agent does not own, kept out of its comparisons: the leader maintains them. */
const FOREIGN_CHECKS = new Set(['serfHealth']);

export class AntiEntropy {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | null = null;
  private again = false;
  private stopped = false;
  private readonly outputSyncedAt = new Map<string, number>();
  /** Wakes a sync when the earliest deferred output change is due (Consul's DeferCheck timer). */
  private deferTimer: NodeJS.Timeout | undefined;
  /** Successful syncs so far (tests wait on it). */
  syncs = 0;

  constructor(
    private readonly local: LocalState,
    private readonly catalog: CatalogAccess,
    private readonly options: AntiEntropyOptions,
  ) {}

  private unwatch: () => void = () => {};

  start(): void {
    this.local.onChange = () => this.trigger();
    // Where the catalog can tell us of changes to our node, drift is repaired at once instead of
    // at the next full sync (a sync that finds nothing to do only reads).
    this.unwatch = this.catalog.watchNode?.(this.options.node.node, () => this.trigger(50)) ?? (() => {});
    this.trigger();
  }

  stop(): void {
    this.stopped = true;
    this.unwatch();
    clearTimeout(this.timer);
    clearTimeout(this.deferTimer);
  }

  /** Sync soon; changes that arrive during a sync cause one more. */
  trigger(delayMs = 10): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.run(), delayMs);
  }

  /** One full sync now; resolves when it is done (or failed, logged). */
  async syncNow(): Promise<void> {
    if (this.running) {
      this.again = true;
      await this.running;
    }
    await this.run();
  }

  private run(): Promise<void> {
    if (this.running) return this.running;
    this.running = (async () => {
      let retryMs = this.jittered(this.options.fullSyncMs);
      try {
        await this.sync();
        this.syncs++;
      } catch (err) {
        this.options.log.debug('anti-entropy sync failed; retrying', { error: String(err) });
        retryMs = 1000 + Math.random() * 2000;
      } finally {
        this.running = null;
      }
      if (this.stopped) return;
      if (this.again) {
        this.again = false;
        this.trigger(0);
      } else {
        clearTimeout(this.timer);
        this.timer = setTimeout(() => this.run(), retryMs);
      }
    })();
    return this.running;
  }

  private jittered(ms: number): number {
    return ms + Math.random() * (ms / 4);
  }

  private async sync(): Promise<void> {
    const name = this.options.node.node;
    const view = await this.catalog.nodeView(name);
    const node = this.options.node;
    if (!view.node || !sameNode(view.node, node)) await this.catalog.write({ type: 'catalogRegister', node });

    // Which services and checks differ from the catalog.
    const inCatalog = new Map(view.services.map((s) => [s.id, s]));
    const changedServices = new Set<string>();
    for (const [id, entry] of this.local.services) {
      const existing = inCatalog.get(id);
      if (!existing || !sameService(existing, entry.service)) changedServices.add(id);
    }
    const checksInCatalog = new Map(view.checks.map((c) => [c.checkId, c]));
    const now = Date.now();
    let deferredUntil = Number.POSITIVE_INFINITY;
    const changedChecks: LocalCheck[] = [];
    for (const [id, check] of this.local.checks) {
      if (check.def.serviceId !== '' && !this.local.services.has(check.def.serviceId)) continue;
      const existing = checksInCatalog.get(id);
      if (existing && sameCheck(existing, check)) {
        if (existing.output === check.output) continue;
        // Output alone changed: wait for check_update_interval since this check's last output sync.
        const last = this.outputSyncedAt.get(id) ?? 0;
        if (now - last < this.options.checkUpdateIntervalMs) {
          deferredUntil = Math.min(deferredUntil, last + this.options.checkUpdateIntervalMs);
          continue;
        }
      }
      changedChecks.push(check);
    }

    // As Consul does, a service goes with its checks in one registration; the checks left over go
    // in batches; everything runs a few writes at a time rather than one Raft round trip each.
    const writes: CatalogWrite[] = [];
    for (const id of changedServices) {
      const checks = changedChecks.filter((c) => c.def.serviceId === id);
      writes.push({
        type: 'catalogRegister',
        node,
        service: this.local.services.get(id)!.service,
        checks: checks.map(checkInput),
      });
    }
    const rest = changedChecks.filter((c) => !changedServices.has(c.def.serviceId));
    for (let i = 0; i < rest.length; i += CHECKS_PER_WRITE)
      writes.push({
        type: 'catalogRegister',
        node,
        checks: rest.slice(i, i + CHECKS_PER_WRITE).map(checkInput),
      });
    for (const id of inCatalog.keys())
      if (!this.local.services.has(id) && !FOREIGN_SERVICES.has(id))
        writes.push({ type: 'catalogDeregister', node: name, serviceId: id });
    for (const id of checksInCatalog.keys())
      if (!FOREIGN_CHECKS.has(id) && !this.local.checks.has(id))
        writes.push({ type: 'catalogDeregister', node: name, checkId: id });
    await inParallel(writes, WRITES_IN_FLIGHT, (w) => this.catalog.write(w));
    for (const check of changedChecks) this.outputSyncedAt.set(check.def.id, now);
    for (const id of checksInCatalog.keys()) if (!this.local.checks.has(id)) this.outputSyncedAt.delete(id);
    // Without this a deferred output would wait for the next full sync, or for ever if none comes first.
    clearTimeout(this.deferTimer);
    if (deferredUntil !== Number.POSITIVE_INFINITY && !this.stopped) {
      this.deferTimer = setTimeout(() => this.trigger(0), Math.max(0, deferredUntil - Date.now()));
      this.deferTimer.unref();
    }
  }
}

function sameRecord(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
}

function sameNode(c: CatalogNode, n: AntiEntropyOptions['node']): boolean {
  return (
    c.address === n.address &&
    c.id === n.id &&
    sameRecord(c.taggedAddresses, n.taggedAddresses) &&
    sameRecord(c.meta, n.meta)
  );
}

function sameService(c: CatalogService, s: ServiceInput): boolean {
  return (
    c.service === s.service &&
    c.address === (s.address ?? '') &&
    c.port === (s.port ?? 0) &&
    c.kind === (s.kind ?? '') &&
    c.enableTagOverride === (s.enableTagOverride ?? false) &&
    c.weights.passing === (s.weights?.passing ?? 1) &&
    c.weights.warning === (s.weights?.warning ?? 1) &&
    c.tags.length === (s.tags ?? []).length &&
    c.tags.every((t, i) => t === s.tags?.[i]) &&
    sameRecord(c.meta, s.meta ?? {})
  );
}

/** Everything but the output, which check_update_interval governs. */
function sameCheck(c: CatalogCheck, l: LocalCheck): boolean {
  return (
    c.status === l.status &&
    c.name === l.def.name &&
    c.notes === l.def.notes &&
    c.serviceId === l.def.serviceId &&
    c.type === l.def.type
  );
}

function checkInput(l: LocalCheck): CheckInput {
  return {
    checkId: l.def.id,
    name: l.def.name,
    status: l.status,
    notes: l.def.notes,
    output: l.output,
    serviceId: l.def.serviceId,
    type: l.def.type,
  };
}

/**
 * Anti-entropy as an agent runs it (server or client alike): this node as the config describes
 * it, a full sync about every minute, output-only changes at most every 5 minutes (Consul's
 * check_update_interval).
 */
export function agentAntiEntropy(
  local: LocalState,
  catalog: CatalogAccess,
  agent: { nodeName: string; datacenter: string; nodeId: string; address: string },
  log: Logger,
): AntiEntropy {
  const { address } = agent;
  return new AntiEntropy(local, catalog, {
    node: {
      node: agent.nodeName,
      id: agent.nodeId,
      address,
      datacenter: agent.datacenter,
      taggedAddresses: { lan: address, lan_ipv4: address, wan: address, wan_ipv4: address },
      meta: {},
    },
    fullSyncMs: 60_000,
    checkUpdateIntervalMs: 5 * 60_000,
    log,
  });
}
