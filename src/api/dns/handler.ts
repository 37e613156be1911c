import * as packet from 'dns-packet';
import type { DnsConfig } from '../../agent/config.js';
import { fitCount } from './fit.js';
import { type DnsSource, type Resolution, resolve } from './resolve.js';

/** One DNS message in, one out: decoding, checks on the query, limits of the transport, encoding. */

export type { DnsSource } from './resolve.js';
export type Transport = 'udp' | 'tcp';

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

const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
type Rcode = keyof typeof RCODE;
const FLAG_QR = 0x8000;
const FLAG_AA = 0x0400;
const FLAG_TC = 0x0200;
const FLAG_RD = 0x0100;
const OPCODE_MASK = 0x7800;
/** RFC 1035 §4.2.1: UDP messages are at most 512 bytes unless EDNS0 says more (RFC 6891). */
const UDP_PLAIN_MAX = 512;
/** The most we answer over UDP whatever a client advertises, and what our OPT advertises. */
const UDP_EDNS_MAX = 4096;
const TCP_MAX = 65535;
/** RFC 6891 §6.1.3: extended RCODE 16, BADVERS, is 1 in the OPT's upper bits and 0 in the header. */
const BADVERS_HIGH_BITS = 1;

/** The response to a query message, or null when it should be dropped (not a query, unreadable). */
export function handleQuery(query: Buffer, context: QueryContext): Buffer | null {
  if (query.length < 12 || (query.readUInt16BE(2) & FLAG_QR) !== 0) return null;
  const id = query.readUInt16BE(0);
  const requestFlags = query.readUInt16BE(2);
  let decoded: packet.DecodedPacket;
  try {
    decoded = packet.decode(query);
  } catch {
    return headerOnly(id, requestFlags, 'FORMERR');
  }
  try {
    return answerDecoded(decoded, id, requestFlags, context);
  } catch {
    // Whatever dns-packet cannot encode back (an odd class, a catalog value) costs one query.
    return headerOnly(id, requestFlags, 'SERVFAIL');
  }
}

function answerDecoded(
  decoded: packet.DecodedPacket,
  id: number,
  requestFlags: number,
  context: QueryContext,
): Buffer {
  const echoFlags = requestFlags & (OPCODE_MASK | FLAG_RD);
  const questions = decoded.questions ?? [];
  const opts = (decoded.additionals ?? []).filter((r): r is packet.OptAnswer => r.type === 'OPT');
  const opt = opts[0];
  const reply = (rcode: Rcode, extra: Partial<packet.Packet> = {}): Buffer =>
    packet.encode({
      type: 'response',
      id,
      flags: echoFlags | FLAG_AA | RCODE[rcode],
      questions,
      ...extra,
      additionals: [...(extra.additionals ?? []), ...(opt ? [responseOpt(0)] : [])],
    });

  if ((requestFlags & OPCODE_MASK) !== 0) return headerOnly(id, requestFlags, 'NOTIMP');
  if (questions.length !== 1 || opts.length > 1) return headerOnly(id, requestFlags, 'FORMERR');
  if (opt && opt.ednsVersion !== 0) {
    return packet.encode({
      type: 'response',
      id,
      flags: echoFlags | FLAG_AA,
      questions,
      additionals: [responseOpt(BADVERS_HIGH_BITS)],
    });
  }
  const question = questions[0]!;
  if (question.class !== undefined && question.class !== 'IN' && question.class !== 'ANY')
    return reply('REFUSED');
  if (context.serverFailure) return reply('SERVFAIL');

  const resolution = resolve(question, context.source, {
    zone: { domain: context.domain, datacenter: context.datacenter },
    dns: context.dns,
    nowS: context.nowS,
    random: context.random,
  });
  return encodeFitted(resolution, context, maxBytes(context.transport, opt), reply);
}

/** The response size a client can take: 512 over plain UDP, its EDNS0 buffer (capped) if it sent one. */
function maxBytes(transport: Transport, opt: packet.OptAnswer | undefined): number {
  if (transport === 'tcp') return TCP_MAX;
  if (!opt) return UDP_PLAIN_MAX;
  return Math.max(UDP_PLAIN_MAX, Math.min(opt.udpPayloadSize, UDP_EDNS_MAX));
}

/**
 * Encodes as many answer groups as fit. Over plain UDP, at most udp_answer_limit answers (TC
 * only if enable_truncate, as Consul); and never more bytes than the client can take: whatever had to
 * go for size sets TC, so the client retries over TCP (RFC 2181 §9).
 */
function encodeFitted(
  resolution: Resolution,
  context: QueryContext,
  limitBytes: number,
  reply: (rcode: Rcode, extra?: Partial<packet.Packet>) => Buffer,
): Buffer {
  const { groups } = resolution;
  const encodeFirst = (count: number): Buffer => {
    const kept = groups.slice(0, count);
    return reply(resolution.rcode, {
      answers: kept.map((g) => g.answer),
      authorities: resolution.authorities,
      additionals: unique(kept.flatMap((g) => g.additionals)),
    });
  };
  // Consul cuts to udp_answer_limit only for clients limited to 512 bytes (no EDNS0, or a
  // small buffer): a client that advertises a larger buffer (dig, HAProxy's resolvers) gets
  // every answer that fits (agent/dns.go trimUDPResponse).
  const countLimit =
    context.transport === 'udp' && context.dns.udpAnswerLimit > 0 && limitBytes <= UDP_PLAIN_MAX
      ? Math.min(groups.length, context.dns.udpAnswerLimit)
      : groups.length;
  const count = fitCount(countLimit, (n) => encodeFirst(n).length <= limitBytes);
  const message = encodeFirst(count);
  // Not even the empty answer fits (a long question and SOA in 512 bytes): say so in a header.
  if (message.length > limitBytes)
    return headerOnly(message.readUInt16BE(0), message.readUInt16BE(2), 'NOERROR', true);
  const cutForSize = count < countLimit;
  const cutForLimit = countLimit < groups.length && context.dns.enableTruncate;
  if (cutForSize || cutForLimit) message.writeUInt16BE(message.readUInt16BE(2) | FLAG_TC, 2);
  return message;
}

/** Additional records once each (two instances on one node share the node's address). */
function unique(records: packet.Answer[]): packet.Answer[] {
  const seen = new Set<string>();
  return records.filter((record) => {
    const key = `${record.type} ${record.name.toLowerCase()} ${JSON.stringify('data' in record ? record.data : null)}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

function responseOpt(extendedRcode: number): packet.OptAnswer {
  return {
    type: 'OPT',
    name: '.',
    udpPayloadSize: UDP_EDNS_MAX,
    extendedRcode,
    ednsVersion: 0,
    flags: 0,
    flag_do: false,
    options: [],
  };
}

/** A response with no sections: for queries we cannot (or will not) read any further. */
function headerOnly(id: number, requestFlags: number, rcode: Rcode, truncated = false): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  const flags = FLAG_QR | (requestFlags & (OPCODE_MASK | FLAG_RD)) | RCODE[rcode] | (truncated ? FLAG_TC : 0);
  header.writeUInt16BE(flags, 2);
  return header;
}
