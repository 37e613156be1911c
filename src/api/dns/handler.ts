import * as packet from 'dns-packet';
import type { DnsConfig } from '../../agent/config.js';
import type { Catalog } from '../../store/catalog.js';

export type Transport = 'udp' | 'tcp';

/** What the DNS interface reads: the replicated catalog and the names of the servers. */
export interface DnsSource {
  readonly catalog: Catalog;
  /** Node names of the servers (the zone's NS records). */
  serverNames(): string[];
}

export interface QueryContext {
  transport: Transport;
  source: DnsSource;
  domain: string;
  datacenter: string;
  dns: DnsConfig;
  /** The consistent read asked for (allow_stale=false) failed: answer SERVFAIL. */
  serverFailure: boolean;
  nowS: number;
  random: () => number;
}

/** One query message in, one response message out (null: drop it). */
export function handleQuery(query: Buffer, _context: QueryContext): Buffer | null {
  if (query.length < 12) return null;
  const id = query.readUInt16BE(0);
  return packet.encode({ type: 'response', id, flags: 5 });
}
