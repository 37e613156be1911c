import { isIPv4, isIPv6 } from 'node:net';
import type { Answer } from 'dns-packet';

/** Resource records the DNS interface builds, as dns-packet answers (owner names without the final dot). */

/**
 * Records for `address` under `owner` that answer a question of type `qtype`: A for IPv4, AAAA
 * for IPv6, and a CNAME for a host name (Consul answers service addresses that are names so).
 */
export function addressRecords(owner: string, address: string, qtype: string, ttl: number): Answer[] {
  const any = qtype === 'ANY';
  if (isIPv4(address)) return qtype === 'A' || any ? [{ type: 'A', name: owner, ttl, data: address }] : [];
  if (isIPv6(address))
    return qtype === 'AAAA' || any ? [{ type: 'AAAA', name: owner, ttl, data: address }] : [];
  if (address === '') return [];
  return qtype === 'A' || qtype === 'AAAA' || any
    ? [{ type: 'CNAME', name: owner, ttl, data: address.replace(/\.$/, '') }]
    : [];
}

/** The address records to put beside an SRV target: whatever family the address is. */
export function targetRecords(target: string, address: string, ttl: number): Answer[] {
  return addressRecords(target, address, 'ANY', ttl);
}

/**
 * The zone's SOA as Consul writes it: ns.DOMAIN and hostmaster.DOMAIN, the current unix time
 * as serial, refresh 3600, retry 600, expire 86400, and minimum TTL 0 (its TTL too, so
 * negative answers are not cached longer than Consul's soa.min_ttl).
 */
export function soaRecord(domain: string, nowS: number): Answer {
  return {
    type: 'SOA',
    name: domain,
    ttl: 0,
    data: {
      mname: `ns.${domain}`,
      rname: `hostmaster.${domain}`,
      serial: nowS >>> 0,
      refresh: 3600,
      retry: 600,
      expire: 86400,
      minimum: 0,
    },
  };
}

/** Node meta as TXT records, "key=value" (Consul: a key prefixed "rfc1035-" gives the value alone). */
export function metaRecords(owner: string, meta: Record<string, string>, ttl: number): Answer[] {
  return Object.keys(meta)
    .sort()
    .map((key) => ({
      type: 'TXT' as const,
      name: owner,
      ttl,
      data: characterStrings(key.startsWith('rfc1035-') ? meta[key]! : `${key}=${meta[key]}`),
    }));
}

/** TXT data as <character-string>s of at most 255 bytes each (RFC 1035 §3.3). */
function characterStrings(text: string): Buffer[] {
  const bytes = Buffer.from(text);
  const chunks: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += 255) chunks.push(bytes.subarray(at, at + 255));
  return chunks.length === 0 ? [Buffer.alloc(0)] : chunks;
}
