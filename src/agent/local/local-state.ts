import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HttpError } from '../../api/consul/errors.js';
import type { Logger } from '../../server/logger.js';
import type { HealthStatus, ServiceInput } from '../../store/index.js';
import {
  type CheckRunner,
  type RunnerDeps,
  StatusHandler,
  startRunner,
  truncateOutput,
} from './check-runners.js';
import { type CheckDefinition, decodeCheck, decodeServiceDefinition } from './definitions.js';

/**
 * The agent's own services and checks: the source of truth that anti-entropy copies into the
 * catalog (Consul's agent/local.State). Checks run here; their results change local state only,
 * and `onChange` tells the syncer. Services and checks registered through the API persist in
 * the data dir (services/ and checks/, one JSON file each, as Consul keeps them), so a restart
 * brings them back; config-file ones come back from the config.
 */

export interface LocalCheck {
  def: CheckDefinition;
  status: HealthStatus;
  output: string;
  /** When it last turned critical (for DeregisterCriticalServiceAfter). */
  criticalSince: number | null;
}

export interface LocalService {
  service: ServiceInput;
  source: 'api' | 'config';
}

export const NODE_MAINTENANCE_ID = '_node_maintenance';
export const serviceMaintenanceId = (serviceId: string) => `_service_maintenance:${serviceId}`;
const DEFAULT_MAINTENANCE_REASON =
  'Maintenance mode is enabled for this node, but no reason was provided. This is a default message.';
const DEFAULT_SERVICE_MAINTENANCE_REASON =
  'Maintenance mode is enabled for this service, but no reason was provided. This is a default message.';

export interface LocalStateOptions {
  nodeName: string;
  /** Where API registrations persist; null keeps them in memory (-dev). */
  dataDir: string | null;
  enableScriptChecks: boolean;
  enableLocalScriptChecks: boolean;
  deps: Omit<RunnerDeps, 'nodeName'>;
  log: Logger;
}

export class LocalState {
  readonly services = new Map<string, LocalService>();
  readonly checks = new Map<string, LocalCheck>();
  private readonly runners = new Map<string, CheckRunner>();
  private readonly ttlTimers = new Map<string, NodeJS.Timeout>();
  private reaper: NodeJS.Timeout | undefined;
  /** Called after every change, so anti-entropy can sync soon. */
  onChange: (kind: 'service' | 'check' | 'status') => void = () => {};

  constructor(private readonly options: LocalStateOptions) {}

  start(): void {
    this.reaper = setInterval(() => this.reapCritical(), 1000);
    this.reaper.unref();
  }

  stop(): void {
    clearInterval(this.reaper);
    for (const runner of this.runners.values()) runner.stop();
    this.runners.clear();
    for (const timer of this.ttlTimers.values()) clearTimeout(timer);
    this.ttlTimers.clear();
  }

  // ---- services ----

  /** Agent API /v1/agent/service/register (or a config file's service). */
  addService(raw: unknown, source: 'api' | 'config', replaceExistingChecks = false): LocalService {
    const def = decodeServiceDefinition(raw, source);
    for (const check of def.checks) this.allowCheck(check);
    const id = def.service.id;
    if (replaceExistingChecks) {
      const keep = new Set(def.checks.map((c) => c.id));
      for (const check of [...this.checks.values()])
        if (check.def.serviceId === id && !keep.has(check.def.id) && check.def.type !== 'maintenance') {
          this.dropCheck(check.def.id);
          this.unpersist('checks', check.def.id);
        }
    }
    const entry = { service: def.service, source };
    this.services.set(id, entry);
    for (const check of def.checks) this.putCheck(check);
    if (source === 'api') this.persist('services', id, raw);
    this.onChange('service');
    return entry;
  }

  removeService(id: string): boolean {
    if (!this.services.delete(id)) return false;
    // Its checks go too, from the data dir as well (Consul's removeServiceLocked), or a restart
    // would find check files naming a service that no longer exists.
    for (const check of [...this.checks.values()])
      if (check.def.serviceId === id) {
        this.dropCheck(check.def.id);
        this.unpersist('checks', check.def.id);
      }
    this.unpersist('services', id);
    this.onChange('service');
    return true;
  }

  // ---- checks ----

  /** Agent API /v1/agent/check/register. */
  addCheck(raw: unknown, source: 'api' | 'config'): LocalCheck {
    const def = decodeCheck(raw, { source });
    if (def.serviceId !== '' && !this.services.has(def.serviceId))
      throw new HttpError(400, `ServiceID "${def.serviceId}" does not exist`);
    this.allowCheck(def);
    const check = this.putCheck(def);
    if (source === 'api') this.persist('checks', def.id, raw);
    this.onChange('check');
    return check;
  }

  removeCheck(id: string): boolean {
    if (!this.checks.has(id)) return false;
    this.dropCheck(id);
    this.unpersist('checks', id);
    this.onChange('check');
    return true;
  }

  /** TTL check results from /v1/agent/check/pass|warn|fail|update (only TTL checks take them). */
  updateTtl(id: string, status: HealthStatus, output: string): void {
    const check = this.checks.get(id);
    if (!check)
      throw new HttpError(
        404,
        `Unknown check ID "${id}". Ensure that the check ID is passed, not the check name.`,
      );
    if (check.def.type !== 'ttl') throw new HttpError(500, `CheckID "${id}" does not have associated TTL`);
    this.armTtl(check);
    // Consul's CheckTTL.SetStatus truncates what the API hands it; runners bound their own output.
    this.setStatus(check, status, truncateOutput(output));
  }

  // ---- maintenance ----

  setNodeMaintenance(enable: boolean, reason: string): void {
    if (enable)
      this.putMaintenance(
        NODE_MAINTENANCE_ID,
        'Node Maintenance Mode',
        '',
        reason || DEFAULT_MAINTENANCE_REASON,
      );
    else if (this.checks.has(NODE_MAINTENANCE_ID)) this.dropCheck(NODE_MAINTENANCE_ID);
    this.onChange('check');
  }

  setServiceMaintenance(serviceId: string, enable: boolean, reason: string): void {
    if (!this.services.has(serviceId)) throw new HttpError(404, `Unknown service ID "${serviceId}"`);
    const id = serviceMaintenanceId(serviceId);
    if (enable)
      this.putMaintenance(
        id,
        'Service Maintenance Mode',
        serviceId,
        reason || DEFAULT_SERVICE_MAINTENANCE_REASON,
      );
    else if (this.checks.has(id)) this.dropCheck(id);
    this.onChange('check');
  }

  private putMaintenance(id: string, name: string, serviceId: string, notes: string): void {
    if (this.checks.has(id)) return;
    // Consul marks maintenance with a critical check, so the node or service drops out of DNS and ?passing.
    this.checks.set(id, {
      def: {
        ...decodeCheck({ ID: id, Name: name, TTL: '1s' }, { source: 'api' }),
        type: 'maintenance',
        ttlMs: 0,
        serviceId,
        notes,
      },
      status: 'critical',
      output: '',
      criticalSince: null,
    });
  }

  // ---- internals ----

  private allowCheck(def: CheckDefinition): void {
    if (def.type !== 'script') return;
    const allowed =
      this.options.enableScriptChecks || (def.source === 'config' && this.options.enableLocalScriptChecks);
    // Consul refuses script checks unless enable_script_checks (or, for config files, the local variant) is set.
    if (!allowed)
      throw new HttpError(
        400,
        "Scripts are disabled on this agent; to enable, configure 'enable_script_checks' or 'enable_local_script_checks' to true",
      );
  }

  private putCheck(def: CheckDefinition): LocalCheck {
    const previous = this.checks.get(def.id);
    if (previous) this.stopCheck(def.id);
    const check: LocalCheck = {
      def,
      // A re-registered check keeps its status, as Consul's does (a TTL check stays passing).
      status: previous?.status ?? def.initialStatus,
      output: previous?.output ?? '',
      criticalSince: null,
    };
    if (check.status === 'critical') check.criticalSince = Date.now();
    this.checks.set(def.id, check);
    if (def.type === 'ttl') this.armTtl(check);
    const handler = new StatusHandler(def, (status, output) => this.setStatus(check, status, output));
    const runner = startRunner(def, (status, output) => handler.result(status, output), {
      ...this.options.deps,
      nodeName: this.options.nodeName,
    });
    if (runner) this.runners.set(def.id, runner);
    return check;
  }

  private dropCheck(id: string): void {
    this.stopCheck(id);
    this.checks.delete(id);
  }

  private stopCheck(id: string): void {
    this.runners.get(id)?.stop();
    this.runners.delete(id);
    clearTimeout(this.ttlTimers.get(id));
    this.ttlTimers.delete(id);
  }

  /** A TTL check turns critical when no result arrives within its TTL. */
  private armTtl(check: LocalCheck): void {
    clearTimeout(this.ttlTimers.get(check.def.id));
    const timer = setTimeout(() => {
      if (this.checks.get(check.def.id) !== check) return;
      // Consul's CheckTTL.getExpiredOutput.
      const expired = check.output
        ? `TTL expired (last output before timeout follows): ${check.output}`
        : 'TTL expired';
      this.setStatus(check, 'critical', expired);
    }, check.def.ttlMs);
    timer.unref();
    this.ttlTimers.set(check.def.id, timer);
  }

  private setStatus(check: LocalCheck, status: HealthStatus | null, output: string): void {
    if (this.checks.get(check.def.id) !== check) return;
    const next = status ?? check.status;
    if (next === check.status && output === check.output) return;
    if (next === 'critical' && check.status !== 'critical') check.criticalSince = Date.now();
    if (next !== 'critical') check.criticalSince = null;
    const statusChanged = next !== check.status;
    check.status = next;
    check.output = output;
    if (statusChanged) this.options.log.debug('check status changed', { check: check.def.id, status: next });
    this.onChange(statusChanged ? 'status' : 'check');
  }

  /** DeregisterCriticalServiceAfter: a service whose check stayed critical that long is removed. */
  private reapCritical(): void {
    const now = Date.now();
    for (const check of [...this.checks.values()]) {
      const after = check.def.deregisterCriticalAfterMs;
      if (after <= 0 || check.criticalSince === null || check.def.serviceId === '') continue;
      if (now - check.criticalSince < after) continue;
      this.options.log.info('removing a service whose check stayed critical', {
        service: check.def.serviceId,
        check: check.def.id,
      });
      this.removeService(check.def.serviceId);
    }
  }

  // ---- persistence ----

  private fileFor(kind: 'services' | 'checks', id: string): string | null {
    if (!this.options.dataDir) return null;
    return join(this.options.dataDir, kind, createHash('sha256').update(id).digest('hex').slice(0, 32));
  }

  private persist(kind: 'services' | 'checks', id: string, raw: unknown): void {
    const file = this.fileFor(kind, id);
    if (!file) return;
    mkdirSync(join(this.options.dataDir!, kind), { recursive: true });
    writeFileSync(`${file}.tmp`, JSON.stringify(raw));
    renameSync(`${file}.tmp`, file);
  }

  private unpersist(kind: 'services' | 'checks', id: string): void {
    const file = this.fileFor(kind, id);
    if (file) rmSync(file, { force: true });
  }

  /** Brings back what the API registered before a restart (services first: checks may name them). */
  loadPersisted(): void {
    if (!this.options.dataDir) return;
    for (const kind of ['services', 'checks'] as const) {
      const dir = join(this.options.dataDir, kind);
      let names: string[];
      try {
        names = readdirSync(dir).filter((n) => !n.endsWith('.tmp'));
      } catch {
        continue;
      }
      for (const name of names) {
        try {
          const raw = JSON.parse(readFileSync(join(dir, name), 'utf8')) as unknown;
          if (kind === 'services') this.addService(raw, 'api');
          else this.addCheck(raw, 'api');
        } catch (err) {
          this.options.log.warn('skipping an unreadable persisted registration', {
            kind,
            file: name,
            error: String(err),
          });
        }
      }
    }
  }
}
