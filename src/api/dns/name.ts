/**
 * What a query name asks for, following Consul's static DNS lookups
 * (https://developer.hashicorp.com/consul/docs/discover/service/static):
 *
 *   [TAG.]NAME.service[.DC].DOMAIN       service instances, optionally by tag
 *   _NAME._TAG.service[.DC].DOMAIN       RFC 2782 form; _tcp/_udp mean "any tag"
 *   NODE.node[.DC].DOMAIN                a node (node names may contain dots)
 *   HEX.addr[.DC].DOMAIN                 an IP address, hex encoded (SRV targets use it)
 *   DOMAIN                               the zone apex (SOA, NS)
 *
 * Matching is case-insensitive (RFC 4343): every label comes back lower-cased.
 */

export type DnsName =
  | { kind: 'apex' }
  | { kind: 'service'; service: string; tag: string | null }
  | { kind: 'node'; node: string }
  | { kind: 'addr'; address: string }
  /** Inside the zone but nothing we answer (unknown form, another datacenter): NXDOMAIN. */
  | { kind: 'unknown' }
  /** Not in the zone: we do not recurse, so REFUSED. */
  | { kind: 'outside' };

export interface Zone {
  /** Lower case, no leading or trailing dot ("consul"). */
  domain: string;
  datacenter: string;
}

const QUERY_TYPES = new Set(['service', 'node', 'addr']);

/** Splits a presentation name ("web.service.consul", trailing dot optional) into lower-case labels. */
export function labelsOf(name: string): string[] {
  const trimmed = name.endsWith('.') ? name.slice(0, -1) : name;
  return trimmed === '' ? [] : trimmed.toLowerCase().split('.');
}

export function parseName(name: string, zone: Zone): DnsName {
  const labels = labelsOf(name);
  const domain = labelsOf(zone.domain);
  if (labels.length < domain.length) return { kind: 'outside' };
  const suffix = labels.slice(labels.length - domain.length);
  if (suffix.some((label, i) => label !== domain[i])) return { kind: 'outside' };
  const inner = labels.slice(0, labels.length - domain.length);
  if (inner.length === 0) return { kind: 'apex' };

  // Consul: the query type is the last label, or the one before it when the last is a datacenter.
  let typeAt = inner.length - 1;
  let datacenter = zone.datacenter.toLowerCase();
  if (!QUERY_TYPES.has(inner[typeAt]!)) {
    typeAt = inner.length - 2;
    if (typeAt < 0 || !QUERY_TYPES.has(inner[typeAt]!)) return { kind: 'unknown' };
    datacenter = inner[inner.length - 1]!;
  }
  if (datacenter !== zone.datacenter.toLowerCase()) return { kind: 'unknown' };
  const parts = inner.slice(0, typeAt);
  if (parts.length === 0 || parts.some((label) => label === '')) return { kind: 'unknown' };

  switch (inner[typeAt]) {
    case 'service':
      return serviceName(parts);
    case 'node':
      return { kind: 'node', node: parts.join('.') };
    case 'addr':
      return addrName(parts);
    default:
      return { kind: 'unknown' };
  }
}

function serviceName(parts: string[]): DnsName {
  const [first, second] = parts;
  if (parts.length === 1) return { kind: 'service', service: first!, tag: null };
  if (parts.length !== 2) return { kind: 'unknown' };
  if (first!.startsWith('_') && second!.startsWith('_')) {
    // RFC 2782: _service._proto. Consul treats the protocol as a tag, except that the
    // conventional _tcp (and here _udp) filter nothing.
    const tag = second!.slice(1);
    const service = first!.slice(1);
    if (service === '') return { kind: 'unknown' };
    return { kind: 'service', service, tag: tag === 'tcp' || tag === 'udp' || tag === '' ? null : tag };
  }
  return { kind: 'service', service: second!, tag: first! };
}

/** Consul's .addr form: 8 hex digits for IPv4, 32 for IPv6. */
function addrName(parts: string[]): DnsName {
  if (parts.length !== 1) return { kind: 'unknown' };
  const hex = parts[0]!;
  if (!/^[0-9a-f]+$/.test(hex)) return { kind: 'unknown' };
  if (hex.length === 8) {
    const octets = [0, 2, 4, 6].map((i) => Number.parseInt(hex.slice(i, i + 2), 16));
    return { kind: 'addr', address: octets.join('.') };
  }
  if (hex.length === 32) {
    const groups = [];
    for (let i = 0; i < 32; i += 4) groups.push(hex.slice(i, i + 4));
    return { kind: 'addr', address: groups.join(':') };
  }
  return { kind: 'unknown' };
}

/** The .addr label of an IP address (inverse of the parse above); null for a host name. */
export function addrLabel(address: string, family: 4 | 6): string {
  if (family === 4)
    return address
      .split('.')
      .map((octet) => Number(octet).toString(16).padStart(2, '0'))
      .join('');
  return expandIpv6(address).join('');
}

/**
 * The address a reverse name stands for (RFC 1035 §3.5 in-addr.arpa, RFC 3596 §2.5 ip6.arpa),
 * or null. Consul answers these with PTR records for nodes and services it knows.
 */
export function parseReverse(name: string): string | null {
  const labels = labelsOf(name);
  const tail = labels.slice(-2).join('.');
  const digits = labels.slice(0, -2).reverse();
  if (tail === 'in-addr.arpa') {
    if (digits.length !== 4 || !digits.every((d) => /^\d{1,3}$/.test(d) && Number(d) <= 255)) return null;
    return digits.map(Number).join('.');
  }
  if (tail === 'ip6.arpa') {
    if (digits.length !== 32 || !digits.every((d) => /^[0-9a-f]$/.test(d))) return null;
    const groups = [];
    for (let i = 0; i < 32; i += 4) groups.push(digits.slice(i, i + 4).join(''));
    return groups.join(':');
  }
  return null;
}

/** Whether two IP address texts name the same address ("2001:db8::1" and "2001:0db8:0:0:0:0:0:1" do). */
export function sameAddress(a: string, b: string, family: 4 | 6): boolean {
  if (a === b) return true;
  return family === 6 && b.includes(':') && expandIpv6(a).join(':') === expandIpv6(b).join(':');
}

/** An IPv6 address as 8 groups of 4 hex digits ("::1" -> 0000 ... 0001). */
function expandIpv6(address: string): string[] {
  let text = address.toLowerCase();
  // An embedded IPv4 tail ("::ffff:10.0.0.1") becomes two hex groups.
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const missing = tail === undefined ? 0 : 8 - left.length - right.length;
  return [...left, ...Array<string>(missing).fill('0'), ...right].map((g) => g.padStart(4, '0'));
}
