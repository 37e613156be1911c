/**
 * Consul catalog tables: nodes, services, checks, each with its own index, plus one index per
 * node and per service name, so a blocking query on /v1/health/service/web wakes only when
 * something about "web" changed (Consul #3911). A registration identical to what is stored
 * changes nothing and bumps nothing (anti-entropy re-syncs the same data constantly).
 */
import { StoreError, StoreErrorCode } from './errors.js';
import type { HealthStatus } from './types.js';

export interface CatalogNode {
  id: string;
  node: string;
  address: string;
  datacenter: string;
  taggedAddresses: Record<string, string>;
  meta: Record<string, string>;
  createIndex: number;
  modifyIndex: number;
}

export interface CatalogService {
  node: string;
  id: string;
  service: string;
  tags: string[];
  address: string;
  port: number;
  meta: Record<string, string>;
  kind: string;
  weights: { passing: number; warning: number };
  enableTagOverride: boolean;
  createIndex: number;
  modifyIndex: number;
}

export interface CatalogCheck {
  node: string;
  checkId: string;
  name: string;
  status: HealthStatus;
  notes: string;
  output: string;
  serviceId: string;
  serviceName: string;
  serviceTags: string[];
  type: string;
  createIndex: number;
  modifyIndex: number;
}

type Registration<T> = Partial<Omit<T, 'createIndex' | 'modifyIndex'>>;
export type NodeInput = Registration<CatalogNode> & { node: string };
export type ServiceInput = Registration<Omit<CatalogService, 'node'>> & { id: string; service: string };
export type CheckInput = Registration<Omit<CatalogCheck, 'node'>> & { checkId: string };

/** What a catalog change asks of the rest of the store. */
export interface CatalogEffects {
  readonly revision: number;
  /** Mark a blocking-query topic as changed at `revision`. */
  bump(topic: string): void;
  /** Consul: sessions tied to a deregistered node are invalidated. */
  nodeRemoved(node: string): void;
  /** Consul: sessions tied to a check that turned critical are invalidated. */
  checkCritical(node: string, checkId: string): void;
}

export const Topic = {
  nodes: 'nodes',
  services: 'services',
  checks: 'checks',
  sessions: 'sessions',
  node: (name: string) => `node:${name}`,
  service: (name: string) => `service:${name}`,
} as const;

/** Deep equality of JSON-like data, ignoring object key order. */
export function sameData(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const other = b as unknown[];
    return a.length === other.length && a.every((item, i) => sameData(item, other[i]));
  }
  const aKeys = Object.keys(a);
  const bKeys = Object.keys(b);
  if (aKeys.length !== bKeys.length) return false;
  const bRecord = b as Record<string, unknown>;
  const aRecord = a as Record<string, unknown>;
  return aKeys.every((key) => Object.hasOwn(bRecord, key) && sameData(aRecord[key], bRecord[key]));
}

function without<T extends { createIndex: number; modifyIndex: number }>(
  item: T,
): Omit<T, 'createIndex' | 'modifyIndex'> {
  const { createIndex: _c, modifyIndex: _m, ...rest } = item;
  return rest;
}

const STATUSES: readonly HealthStatus[] = ['passing', 'warning', 'critical', 'maintenance'];

/** One node's records, as `Catalog.saveNode` captured them. */
export interface NodeSavepoint {
  readonly name: string;
  readonly node: CatalogNode | undefined;
  readonly services: ReadonlyMap<string, CatalogService> | undefined;
  readonly checks: ReadonlyMap<string, CatalogCheck> | undefined;
}

export interface ServiceEntry {
  node: CatalogNode;
  service: CatalogService;
  checks: CatalogCheck[];
}

export class Catalog {
  readonly nodes = new Map<string, CatalogNode>();
  /** node -> service id -> service */
  readonly services = new Map<string, Map<string, CatalogService>>();
  /** node -> check id -> check */
  readonly checks = new Map<string, Map<string, CatalogCheck>>();
  /** service name -> node + "\0" + service id */
  private readonly byServiceName = new Map<string, Set<string>>();
  /**
   * node -> service id ('' for node checks) -> check id -> check: an instance's checks without
   * scanning every check on its node (an agent with thousands of services made each health or
   * DNS answer cost O(checks on the node) per instance).
   */
  private readonly checksByService = new Map<string, Map<string, Map<string, CatalogCheck>>>();

  private indexCheck(check: CatalogCheck, previous: CatalogCheck | undefined): void {
    if (previous !== undefined && previous.serviceId !== check.serviceId) this.unindexCheck(previous);
    let byService = this.checksByService.get(check.node);
    if (byService === undefined) {
      byService = new Map();
      this.checksByService.set(check.node, byService);
    }
    let checks = byService.get(check.serviceId);
    if (checks === undefined) {
      checks = new Map();
      byService.set(check.serviceId, checks);
    }
    checks.set(check.checkId, check);
  }

  private unindexCheck(check: CatalogCheck): void {
    const byService = this.checksByService.get(check.node);
    const checks = byService?.get(check.serviceId);
    if (checks === undefined || !checks.has(check.checkId)) return;
    checks.delete(check.checkId);
    if (checks.size === 0) byService!.delete(check.serviceId);
    if (byService!.size === 0) this.checksByService.delete(check.node);
  }

  /** Rebuilds one node's entry of the check index from its checks (after a restore). */
  private reindexNode(node: string): void {
    this.checksByService.delete(node);
    for (const check of this.checks.get(node)?.values() ?? []) this.indexCheck(check, undefined);
  }

  // ---- writes ----

  register(
    effects: CatalogEffects,
    nodeInput: NodeInput,
    serviceInput: ServiceInput | undefined,
    checkInputs: CheckInput[],
  ): void {
    const revision = effects.revision;
    const name = nodeInput.node;
    if (name === '') throw new StoreError(StoreErrorCode.InvalidArgument, 'node name is required');
    // Validate everything before changing anything, so a bad check cannot leave half a registration.
    const nodeServices = this.services.get(name);
    for (const input of checkInputs) {
      validateCheckInput(input);
      const serviceId = input.serviceId ?? '';
      if (serviceId !== '' && serviceInput?.id !== serviceId && !nodeServices?.has(serviceId)) {
        throw new StoreError(
          StoreErrorCode.InvalidArgument,
          `check ${input.checkId} names missing service ${serviceId}`,
        );
      }
    }
    if (serviceInput !== undefined && (serviceInput.id === '' || serviceInput.service === '')) {
      throw new StoreError(StoreErrorCode.InvalidArgument, 'service id and name are required');
    }

    const existingNode = this.nodes.get(name);
    const node: Omit<CatalogNode, 'createIndex' | 'modifyIndex'> = {
      id: nodeInput.id ?? existingNode?.id ?? '',
      node: name,
      address: nodeInput.address ?? '',
      datacenter: nodeInput.datacenter ?? existingNode?.datacenter ?? '',
      taggedAddresses: { ...(nodeInput.taggedAddresses ?? {}) },
      meta: { ...(nodeInput.meta ?? {}) },
    };
    if (existingNode === undefined || !sameData(without(existingNode), node)) {
      this.nodes.set(name, {
        ...node,
        createIndex: existingNode?.createIndex ?? revision,
        modifyIndex: revision,
      });
      effects.bump(Topic.nodes);
      effects.bump(Topic.node(name));
      // Health and catalog service answers carry the node's address: they changed too.
      for (const service of nodeServices?.values() ?? []) effects.bump(Topic.service(service.service));
    }

    if (serviceInput !== undefined) this.upsertService(effects, name, serviceInput);
    for (const input of checkInputs) this.upsertCheck(effects, name, input);
  }

  private upsertService(effects: CatalogEffects, node: string, input: ServiceInput): void {
    let nodeServices = this.services.get(node);
    const existing = nodeServices?.get(input.id);
    const service: Omit<CatalogService, 'createIndex' | 'modifyIndex'> = {
      node,
      id: input.id,
      service: input.service,
      tags: [...(input.tags ?? [])],
      address: input.address ?? '',
      port: input.port ?? 0,
      meta: { ...(input.meta ?? {}) },
      kind: input.kind ?? '',
      weights: { passing: input.weights?.passing ?? 1, warning: input.weights?.warning ?? 1 },
      enableTagOverride: input.enableTagOverride ?? false,
    };
    if (existing !== undefined && sameData(without(existing), service)) return;
    if (nodeServices === undefined) {
      nodeServices = new Map();
      this.services.set(node, nodeServices);
    }
    nodeServices.set(input.id, {
      ...service,
      createIndex: existing?.createIndex ?? effects.revision,
      modifyIndex: effects.revision,
    });
    const ref = `${node}\u0000${input.id}`;
    if (existing !== undefined && existing.service !== input.service) {
      this.unlinkName(existing.service, ref);
      effects.bump(Topic.service(existing.service));
    }
    let refs = this.byServiceName.get(input.service);
    if (refs === undefined) {
      refs = new Set();
      this.byServiceName.set(input.service, refs);
    }
    refs.add(ref);
    effects.bump(Topic.services);
    effects.bump(Topic.service(input.service));
    effects.bump(Topic.node(node));
  }

  private unlinkName(name: string, ref: string): void {
    const refs = this.byServiceName.get(name);
    refs?.delete(ref);
    if (refs?.size === 0) this.byServiceName.delete(name);
  }

  /** Topics a check's health affects: its service, or every service on the node for a node check. */
  private bumpCheckTopics(effects: CatalogEffects, node: string, serviceId: string): void {
    effects.bump(Topic.checks);
    effects.bump(Topic.node(node));
    const nodeServices = this.services.get(node);
    if (serviceId !== '') {
      const service = nodeServices?.get(serviceId);
      if (service !== undefined) effects.bump(Topic.service(service.service));
    } else {
      for (const service of nodeServices?.values() ?? []) effects.bump(Topic.service(service.service));
    }
  }

  private upsertCheck(effects: CatalogEffects, node: string, input: CheckInput): void {
    let nodeChecks = this.checks.get(node);
    const existing = nodeChecks?.get(input.checkId);
    const serviceId = input.serviceId ?? '';
    const service = serviceId === '' ? undefined : this.services.get(node)?.get(serviceId);
    const check: Omit<CatalogCheck, 'createIndex' | 'modifyIndex'> = {
      node,
      checkId: input.checkId,
      name: input.name ?? input.checkId,
      // Consul registers new checks as critical until they report.
      status: input.status ?? existing?.status ?? 'critical',
      notes: input.notes ?? '',
      output: input.output ?? existing?.output ?? '',
      serviceId,
      serviceName: service?.service ?? '',
      serviceTags: [...(service?.tags ?? [])],
      type: input.type ?? '',
    };
    if (existing !== undefined && sameData(without(existing), check)) return;
    if (nodeChecks === undefined) {
      nodeChecks = new Map();
      this.checks.set(node, nodeChecks);
    }
    const stored: CatalogCheck = {
      ...check,
      createIndex: existing?.createIndex ?? effects.revision,
      modifyIndex: effects.revision,
    };
    nodeChecks.set(input.checkId, stored);
    this.indexCheck(stored, existing);
    this.bumpCheckTopics(effects, node, serviceId);
    if (check.status === 'critical' && existing?.status !== 'critical')
      effects.checkCritical(node, input.checkId);
  }

  updateCheck(
    effects: CatalogEffects,
    node: string,
    checkId: string,
    status: HealthStatus,
    output: string | undefined,
  ): boolean {
    if (!STATUSES.includes(status)) {
      throw new StoreError(
        StoreErrorCode.InvalidArgument,
        `check status must be one of ${STATUSES.join(', ')}: got ${status}`,
      );
    }
    const existing = this.checks.get(node)?.get(checkId);
    if (existing === undefined)
      throw new StoreError(StoreErrorCode.CheckNotFound, `unknown check ${checkId} on node ${node}`);
    const nextOutput = output ?? existing.output;
    if (existing.status === status && existing.output === nextOutput) return false;
    const updated: CatalogCheck = { ...existing, status, output: nextOutput, modifyIndex: effects.revision };
    this.checks.get(node)!.set(checkId, updated);
    this.indexCheck(updated, existing);
    this.bumpCheckTopics(effects, node, existing.serviceId);
    if (status === 'critical' && existing.status !== 'critical') effects.checkCritical(node, checkId);
    return true;
  }

  deregister(
    effects: CatalogEffects,
    node: string,
    serviceId: string | undefined,
    checkId: string | undefined,
  ): boolean {
    if (!this.nodes.has(node)) return false;
    if (serviceId !== undefined && serviceId !== '') return this.removeService(effects, node, serviceId);
    if (checkId !== undefined && checkId !== '') return this.removeCheck(effects, node, checkId);
    for (const id of [...(this.services.get(node)?.keys() ?? [])]) this.removeService(effects, node, id);
    for (const id of [...(this.checks.get(node)?.keys() ?? [])]) this.removeCheck(effects, node, id);
    this.nodes.delete(node);
    effects.bump(Topic.nodes);
    effects.bump(Topic.node(node));
    effects.nodeRemoved(node);
    return true;
  }

  private removeService(effects: CatalogEffects, node: string, serviceId: string): boolean {
    const nodeServices = this.services.get(node);
    const service = nodeServices?.get(serviceId);
    if (service === undefined) return false;
    // A service's checks go with it (Consul deregisters them together).
    for (const check of [...(this.checks.get(node)?.values() ?? [])]) {
      if (check.serviceId === serviceId) this.removeCheck(effects, node, check.checkId);
    }
    nodeServices!.delete(serviceId);
    if (nodeServices!.size === 0) this.services.delete(node);
    this.unlinkName(service.service, `${node}\u0000${serviceId}`);
    effects.bump(Topic.services);
    effects.bump(Topic.service(service.service));
    effects.bump(Topic.node(node));
    return true;
  }

  private removeCheck(effects: CatalogEffects, node: string, checkId: string): boolean {
    const nodeChecks = this.checks.get(node);
    const check = nodeChecks?.get(checkId);
    if (check === undefined) return false;
    this.bumpCheckTopics(effects, node, check.serviceId);
    nodeChecks!.delete(checkId);
    if (nodeChecks!.size === 0) this.checks.delete(node);
    this.unindexCheck(check);
    // Consul invalidates sessions that name a deregistered check, as for a critical one.
    effects.checkCritical(node, checkId);
    return true;
  }

  // ---- single-record writes (Consul /v1/txn Service and Check verbs) ----

  /**
   * Upsert one service on a registered node (Consul ensureServiceTxn: ErrMissingNode when the
   * node is not registered). Returns whether anything changed.
   */
  setService(effects: CatalogEffects, node: string, input: ServiceInput): boolean {
    if (!this.nodes.has(node)) throw new StoreError(StoreErrorCode.NodeNotFound, 'Missing node registration');
    if (input.id === '' || input.service === '') {
      throw new StoreError(StoreErrorCode.InvalidArgument, 'service id and name are required');
    }
    const before = this.services.get(node)?.get(input.id);
    this.upsertService(effects, node, input);
    return this.services.get(node)?.get(input.id) !== before;
  }

  /**
   * Upsert one check on a registered node (Consul ensureCheckTxn: ErrMissingNode, and
   * ErrMissingService when it names a service the node does not have).
   */
  setCheck(effects: CatalogEffects, node: string, input: CheckInput): boolean {
    if (!this.nodes.has(node)) throw new StoreError(StoreErrorCode.NodeNotFound, 'Missing node registration');
    validateCheckInput(input);
    const serviceId = input.serviceId ?? '';
    if (serviceId !== '' && !this.services.get(node)?.has(serviceId)) {
      throw new StoreError(StoreErrorCode.InvalidArgument, 'Missing service registration');
    }
    const before = this.checks.get(node)?.get(input.checkId);
    this.upsertCheck(effects, node, input);
    return this.checks.get(node)?.get(input.checkId) !== before;
  }

  // ---- savepoints (rolling back a failed /v1/txn) ----

  /**
   * Everything the catalog holds about one node. Records are replaced, never mutated in place,
   * so shallow copies of the per-node maps are a complete savepoint.
   */
  saveNode(name: string): NodeSavepoint {
    const services = this.services.get(name);
    const checks = this.checks.get(name);
    return {
      name,
      node: this.nodes.get(name),
      services: services === undefined ? undefined : new Map(services),
      checks: checks === undefined ? undefined : new Map(checks),
    };
  }

  /** Put a node back exactly as `saveNode` found it (its services' name index included). */
  restoreNode(saved: NodeSavepoint): void {
    const { name } = saved;
    for (const service of this.services.get(name)?.values() ?? []) {
      this.unlinkName(service.service, `${name}\u0000${service.id}`);
    }
    if (saved.node === undefined) this.nodes.delete(name);
    else this.nodes.set(name, saved.node);
    if (saved.services === undefined) this.services.delete(name);
    else this.services.set(name, new Map(saved.services));
    if (saved.checks === undefined) this.checks.delete(name);
    else this.checks.set(name, new Map(saved.checks));
    this.reindexNode(name);
    for (const service of saved.services?.values() ?? []) {
      let refs = this.byServiceName.get(service.service);
      if (refs === undefined) {
        refs = new Set();
        this.byServiceName.set(service.service, refs);
      }
      refs.add(`${name}\u0000${service.id}`);
    }
  }

  // ---- reads ----

  node(name: string): CatalogNode | undefined {
    return this.nodes.get(name);
  }

  /** Consul looks a node up by ID first when one is given (txn Node get). */
  nodeById(id: string): CatalogNode | undefined {
    if (id === '') return undefined;
    for (const node of this.nodes.values()) if (node.id === id) return node;
    return undefined;
  }

  service(node: string, serviceId: string): CatalogService | undefined {
    return this.services.get(node)?.get(serviceId);
  }

  check(node: string, checkId: string): CatalogCheck | undefined {
    return this.checks.get(node)?.get(checkId);
  }

  listNodes(): CatalogNode[] {
    return [...this.nodes.values()].sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
  }

  nodeServices(node: string): CatalogService[] {
    return [...(this.services.get(node)?.values() ?? [])].sort((a, b) => (a.id < b.id ? -1 : 1));
  }

  nodeChecks(node: string): CatalogCheck[] {
    return [...(this.checks.get(node)?.values() ?? [])].sort((a, b) => (a.checkId < b.checkId ? -1 : 1));
  }

  /** Every registered service name, once each, unsorted (cheap: no instance is visited). */
  registeredServiceNames(): IterableIterator<string> {
    return this.byServiceName.keys();
  }

  /** Service names with the union of their tags (GET /v1/catalog/services). */
  serviceNames(): Map<string, string[]> {
    const result = new Map<string, string[]>();
    for (const name of [...this.registeredServiceNames()].sort()) {
      const tags = new Set<string>();
      for (const entry of this.instances(name)) for (const tag of entry.service.tags) tags.add(tag);
      result.set(name, [...tags].sort());
    }
    return result;
  }

  /** Instances of a service with their node and checks (node checks + service checks). */
  instances(name: string, options: { tag?: string; passingOnly?: boolean } = {}): ServiceEntry[] {
    const entries: ServiceEntry[] = [];
    for (const ref of [...(this.byServiceName.get(name) ?? [])].sort()) {
      const split = ref.indexOf('\u0000');
      const nodeName = ref.slice(0, split);
      const service = this.services.get(nodeName)?.get(ref.slice(split + 1));
      const node = this.nodes.get(nodeName);
      if (service === undefined || node === undefined) continue;
      if (options.tag !== undefined && !service.tags.includes(options.tag)) continue;
      const byService = this.checksByService.get(nodeName);
      const checks = [
        ...(byService?.get('')?.values() ?? []),
        ...(byService?.get(service.id)?.values() ?? []),
      ].sort((a, b) => (a.checkId < b.checkId ? -1 : a.checkId > b.checkId ? 1 : 0));
      // Consul ?passing: only instances whose checks are all passing (warning excluded too).
      if (options.passingOnly && checks.some((check) => check.status !== 'passing')) continue;
      entries.push({ node, service, checks });
    }
    return entries;
  }

  checksInState(status: HealthStatus | 'any'): CatalogCheck[] {
    const result: CatalogCheck[] = [];
    for (const node of [...this.checks.keys()].sort()) {
      for (const check of this.nodeChecks(node))
        if (status === 'any' || check.status === status) result.push(check);
    }
    return result;
  }

  /** Everything, in a deterministic order (snapshots). */
  dump(): { nodes: CatalogNode[]; services: CatalogService[]; checks: CatalogCheck[] } {
    const nodes = this.listNodes();
    const services: CatalogService[] = [];
    const checks: CatalogCheck[] = [];
    for (const node of [...this.services.keys()].sort()) services.push(...this.nodeServices(node));
    for (const node of [...this.checks.keys()].sort()) checks.push(...this.nodeChecks(node));
    return { nodes, services, checks };
  }

  load(data: { nodes: CatalogNode[]; services: CatalogService[]; checks: CatalogCheck[] }): void {
    for (const node of data.nodes) this.nodes.set(node.node, node);
    for (const service of data.services) {
      let nodeServices = this.services.get(service.node);
      if (nodeServices === undefined) {
        nodeServices = new Map();
        this.services.set(service.node, nodeServices);
      }
      nodeServices.set(service.id, service);
      let refs = this.byServiceName.get(service.service);
      if (refs === undefined) {
        refs = new Set();
        this.byServiceName.set(service.service, refs);
      }
      refs.add(`${service.node}\u0000${service.id}`);
    }
    for (const check of data.checks) {
      let nodeChecks = this.checks.get(check.node);
      if (nodeChecks === undefined) {
        nodeChecks = new Map();
        this.checks.set(check.node, nodeChecks);
      }
      nodeChecks.set(check.checkId, check);
      this.indexCheck(check, undefined);
    }
  }
}

/** A check needs an id, and a status (when given) Consul knows. */
function validateCheckInput(input: CheckInput): void {
  if (input.checkId === '') throw new StoreError(StoreErrorCode.InvalidArgument, 'check id is required');
  if (input.status !== undefined && !STATUSES.includes(input.status)) {
    throw new StoreError(
      StoreErrorCode.InvalidArgument,
      `check status must be one of ${STATUSES.join(', ')}: got ${input.status}`,
    );
  }
}
