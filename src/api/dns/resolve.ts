import { isIP } from 'node:net';
import type { Answer } from 'dns-packet';
import type { DnsConfig } from '../../agent/config.js';
import type { Catalog, ServiceEntry } from '../../store/catalog.js';
import { isServable, srvWeight } from './health.js';
import { findInstances, findNode } from './lookup.js';
import { addrLabel, type DnsName, parseName, parseReverse, sameAddress, type Zone } from './name.js';
import { addressRecords, metaRecords, soaRecord, targetRecords } from './records.js';

/**
 * The answer to one question, from the catalog, before any transport limit applies. Pure: time
 * and randomness come in the options.
 */

/** What the DNS interface reads: the replicated catalog and the names of the servers. */
export interface DnsSource {
  readonly catalog: Catalog;
  /** Node names of the servers (the zone's NS records). */
  serverNames(): string[];
}

export interface ResolveOptions {
  zone: Zone;
  dns: DnsConfig;
  nowS: number;
  /** Uniform in [0, 1): the answer order is shuffled per query, as Consul does. */
  random: () => number;
}

/** An answer record and the additional records that go with it (an SRV target's address). */
export interface AnswerGroup {
  answer: Answer;
  additionals: Answer[];
}

export interface Resolution {
  rcode: 'NOERROR' | 'NXDOMAIN' | 'REFUSED';
  groups: AnswerGroup[];
  authorities: Answer[];
}

/** Consul never names more than three servers for the zone's NS. */
const NAMESERVERS_MAX = 3;

export function resolve(
  question: { name: string; type: string },
  source: DnsSource,
  options: ResolveOptions,
): Resolution {
  const target = parseName(question.name, options.zone);
  if (target.kind === 'outside') return reverse(question, source.catalog, options);
  const found = answer(target, question, source, options);
  if (found === null) return { rcode: 'NXDOMAIN', groups: [], authorities: [soa(options)] };
  let groups = found;
  // a_record_limit caps A/AAAA/ANY answers on every transport.
  const limit = options.dns.aRecordLimit;
  if (limit > 0 && ['A', 'AAAA', 'ANY'].includes(question.type)) groups = groups.slice(0, limit);
  // NODATA: the name exists, nothing of this type; the SOA tells resolvers how long to cache that.
  return { rcode: 'NOERROR', groups, authorities: groups.length === 0 ? [soa(options)] : [] };
}

/**
 * Names outside the zone: we do not recurse, so REFUSED, except reverse names of addresses in the
 * catalog, which Consul answers with a PTR to the node, else to the service with that address.
 */
function reverse(
  question: { name: string; type: string },
  catalog: Catalog,
  options: ResolveOptions,
): Resolution {
  const refused: Resolution = { rcode: 'REFUSED', groups: [], authorities: [] };
  const address = parseReverse(question.name);
  if (address === null) return refused;
  const family = address.includes(':') ? 6 : 4;
  const { domain, datacenter } = options.zone;
  let pointer: { target: string; ttl: number } | null = null;
  for (const node of catalog.nodes.values()) {
    if (sameAddress(address, node.address, family)) {
      pointer = { target: `${node.node}.node.${datacenter}.${domain}`, ttl: options.dns.nodeTtlS };
      break;
    }
  }
  for (const services of pointer === null ? catalog.services.values() : []) {
    for (const service of services.values()) {
      if (service.address === '' || !sameAddress(address, service.address, family)) continue;
      pointer = {
        target: `${service.service}.service.${domain}`,
        ttl: serviceTtl(options.dns.serviceTtlS, service.service.toLowerCase()),
      };
      break;
    }
    if (pointer !== null) break;
  }
  if (pointer === null || !isValidName(pointer.target)) return refused;
  const groups =
    question.type === 'PTR' || question.type === 'ANY'
      ? [alone({ type: 'PTR', name: question.name, ttl: pointer.ttl, data: pointer.target })]
      : [];
  return { rcode: 'NOERROR', groups, authorities: [] };
}

function soa(options: ResolveOptions): Answer {
  return soaRecord(options.zone.domain, options.nowS);
}

/** The answer groups, or null when the name does not exist. */
function answer(
  target: Exclude<DnsName, { kind: 'outside' }>,
  question: { name: string; type: string },
  source: DnsSource,
  options: ResolveOptions,
): AnswerGroup[] | null {
  switch (target.kind) {
    case 'apex':
      return apex(question.type, source, options);
    case 'service':
      return service(target.service, target.tag, question, source.catalog, options);
    case 'node':
      return node(target.node, question, source.catalog, options);
    case 'addr':
      return addressRecords(question.name, target.address, question.type, options.dns.nodeTtlS).map(alone);
    case 'unknown':
      return null;
  }
}

function alone(answer: Answer): AnswerGroup {
  return { answer, additionals: [] };
}

function apex(qtype: string, source: DnsSource, options: ResolveOptions): AnswerGroup[] {
  const groups: AnswerGroup[] = [];
  if (qtype === 'SOA' || qtype === 'ANY') groups.push(alone(soa(options)));
  if (qtype === 'NS' || qtype === 'ANY') groups.push(...nameservers(source, options));
  return groups;
}

/** NS records naming up to three servers, NODE.node.DC.DOMAIN, their addresses as additionals. */
function nameservers(source: DnsSource, options: ResolveOptions): AnswerGroup[] {
  const { domain, datacenter } = options.zone;
  const ttl = options.dns.nodeTtlS;
  const groups: AnswerGroup[] = [];
  for (const name of shuffle(source.serverNames(), options.random)) {
    const server = findNode(source.catalog, name.toLowerCase());
    const host = `${name}.node.${datacenter}.${domain}`;
    if (server === undefined || !isValidName(host)) continue;
    groups.push({
      answer: { type: 'NS', name: domain, ttl, data: host },
      additionals: targetRecords(host, server.address, ttl),
    });
    if (groups.length >= NAMESERVERS_MAX) break;
  }
  return groups;
}

function node(
  name: string,
  question: { name: string; type: string },
  catalog: Catalog,
  options: ResolveOptions,
): AnswerGroup[] | null {
  const found = findNode(catalog, name);
  if (found === undefined) return null;
  const ttl = options.dns.nodeTtlS;
  const records = addressRecords(question.name, found.address, question.type, ttl).filter(validCname);
  if (question.type === 'TXT' || question.type === 'ANY')
    records.push(...metaRecords(question.name, found.meta, ttl));
  return records.map(alone);
}

function service(
  name: string,
  tag: string | null,
  question: { name: string; type: string },
  catalog: Catalog,
  options: ResolveOptions,
): AnswerGroup[] | null {
  const entries = findInstances(catalog, name, tag).filter((entry) =>
    isServable(entry, options.dns.onlyPassing),
  );
  // Consul answers NXDOMAIN for a service with no healthy instance.
  if (entries.length === 0) return null;
  const ttl = serviceTtl(options.dns.serviceTtlS, name);
  const ordered = shuffle(entries, options.random);
  if (question.type === 'SRV')
    return ordered.flatMap((entry) => srvGroup(question.name, entry, ttl, options));
  // Several instances often share an address: one record per distinct address.
  const seen = new Set<string>();
  const groups: AnswerGroup[] = [];
  for (const entry of ordered) {
    const address = entry.service.address || entry.node.address;
    for (const record of addressRecords(question.name, address, question.type, ttl).filter(validCname)) {
      const key = `${record.type} ${'data' in record ? String(record.data) : ''}`;
      if (seen.has(key)) continue;
      seen.add(key);
      groups.push(alone(record));
    }
  }
  return groups;
}

/**
 * SRV for one instance, as Consul builds it: the target is the node (NODE.node.DC.DOMAIN) when
 * the service has no address of its own, HEX.addr.DC.DOMAIN when it has a different IP, the
 * host name itself when it has a name; the target's address rides in the additional section.
 */
function srvGroup(owner: string, entry: ServiceEntry, ttl: number, options: ResolveOptions): AnswerGroup[] {
  const { domain, datacenter } = options.zone;
  const own = entry.service.address;
  let target: string;
  let address: string;
  if (own === '' || own === entry.node.address) {
    target = `${entry.node.node}.node.${datacenter}.${domain}`;
    address = entry.node.address;
  } else {
    const family = isIP(own);
    target =
      family === 0
        ? own.replace(/\.$/, '')
        : `${addrLabel(own, family as 4 | 6)}.addr.${datacenter}.${domain}`;
    address = family === 0 ? '' : own;
  }
  if (!isValidName(target)) return [];
  return [
    {
      answer: {
        type: 'SRV',
        name: owner,
        ttl,
        data: { priority: 1, weight: srvWeight(entry), port: entry.service.port, target },
      },
      additionals: targetRecords(target, address, ttl),
    },
  ];
}

/**
 * service_ttl: the service's own entry, else the longest matching "prefix*" entry, else "*",
 * else 0 (Consul's dns_config.service_ttl wildcard matching).
 */
export function serviceTtl(ttls: Record<string, number>, service: string): number {
  let best: { length: number; ttl: number } | null = null;
  for (const [pattern, ttl] of Object.entries(ttls)) {
    const key = pattern.toLowerCase();
    if (key === service) return ttl;
    if (!key.endsWith('*')) continue;
    const prefix = key.slice(0, -1);
    if (service.startsWith(prefix) && (best === null || prefix.length > best.length))
      best = { length: prefix.length, ttl };
  }
  return best?.ttl ?? 0;
}

/** Fisher-Yates on a copy. */
export function shuffle<T>(items: readonly T[], random: () => number): T[] {
  const result = [...items];
  for (let i = result.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [result[i], result[j]] = [result[j]!, result[i]!];
  }
  return result;
}

/** RFC 1035 §2.3.4: labels of 1-63 bytes, 255 bytes on the wire in all. */
export function isValidName(name: string): boolean {
  const labels = name.replace(/\.$/, '').split('.');
  if (Buffer.byteLength(name) > 253) return false;
  return labels.every((label) => {
    const bytes = Buffer.byteLength(label);
    return bytes >= 1 && bytes <= 63;
  });
}

function validCname(record: Answer): boolean {
  return record.type !== 'CNAME' || isValidName(String(record.data));
}
