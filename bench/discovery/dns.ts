import dgram from 'node:dgram';
import packet from 'dns-packet';
import { percentile } from './stats.js';

/**
 * A UDP DNS client for the benchmark: one socket, many queries in flight, told apart by their
 * 16-bit ID. The throughput loop re-sends one pre-encoded query with a fresh ID and reads only
 * the reply header (RFC 1035 §4.1.1: ID, RCODE, ANCOUNT), so the generator spends little CPU
 * per query; `lookupA` decodes the whole reply.
 */

const ID_SPACE = 0x10000;
/** A query not answered in this long counts as lost (UDP: the server may drop under load). */
const QUERY_TIMEOUT_MS = 2000;
/** EDNS0 buffer for `lookupA`: with it, udp_answer_limit (3 by default) does not apply. */
const EDNS_UDP_BYTES = 4096;

interface Pending {
  sentAt: number;
  timer: NodeJS.Timeout;
  done: (reply: Buffer | null) => void;
}

export class DnsClient {
  private readonly socket = dgram.createSocket('udp4');
  private readonly pending = new Map<number, Pending>();
  /** IDs of queries counted as lost, so an answer that still comes is counted as late. */
  private readonly timedOut = new Set<number>();
  private nextId = 1;
  /** Answers that came after their query was counted as lost: the server did answer them. */
  lateAnswers = 0;

  constructor(private readonly port: number) {
    this.socket.on('message', (reply) => {
      if (reply.length < 12) return;
      const id = reply.readUInt16BE(0);
      const entry = this.pending.get(id);
      if (!entry) {
        if (this.timedOut.delete(id)) this.lateAnswers++;
        return;
      }
      this.pending.delete(id);
      clearTimeout(entry.timer);
      entry.done(reply);
    });
    this.socket.on('error', () => {});
  }

  /** Sends `query` (its ID overwritten) and resolves with the reply, or null on timeout. */
  exchange(query: Buffer): Promise<Buffer | null> {
    if (this.pending.size >= ID_SPACE - 1) throw new Error('DNS client: every query ID is in flight');
    let id = this.nextId;
    while (this.pending.has(id)) id = (id + 1) % ID_SPACE;
    this.timedOut.delete(id);
    this.nextId = (id + 1) % ID_SPACE;
    const message = Buffer.from(query);
    message.writeUInt16BE(id, 0);
    return new Promise((res) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        this.timedOut.add(id);
        res(null);
      }, QUERY_TIMEOUT_MS);
      this.pending.set(id, { sentAt: performance.now(), timer, done: res });
      this.socket.send(message, this.port, '127.0.0.1');
    });
  }

  /** The A record addresses for `name` (with EDNS0, so every healthy instance), or null if lost. */
  async lookupA(name: string): Promise<string[] | null> {
    const reply = await this.exchange(encodeQuery(name, 'A', EDNS_UDP_BYTES));
    if (reply === null) return null;
    const decoded = packet.decode(reply);
    if (decoded.flag_tc) throw new Error(`DNS answer for ${name} truncated; use a smaller service`);
    const addresses: string[] = [];
    for (const answer of decoded.answers ?? []) if (answer.type === 'A') addresses.push(answer.data);
    return addresses;
  }

  close(): void {
    for (const p of this.pending.values()) clearTimeout(p.timer);
    this.pending.clear();
    this.socket.close();
  }
}

export function encodeQuery(name: string, type: packet.RecordType, ednsBytes?: number): Buffer {
  const message: packet.Packet = {
    type: 'query',
    id: 0,
    flags: packet.RECURSION_DESIRED,
    questions: [{ name, type, class: 'IN' }],
  };
  if (ednsBytes !== undefined) {
    message.additionals = [
      {
        type: 'OPT',
        name: '.',
        udpPayloadSize: ednsBytes,
        extendedRcode: 0,
        ednsVersion: 0,
        flags: 0,
        flag_do: false,
        options: [],
      },
    ];
  }
  return packet.encode(message);
}

export interface DnsLoadResult {
  seconds: number;
  answered: number;
  /** Answered without error but with no answer records (the name had no healthy instance?). */
  empty: number;
  /** RCODE other than NOERROR. */
  errors: number;
  lost: number;
  /** Lost queries the server answered after all (too late): with them, what it served per second. */
  late: number;
  servedPerS: number;
  answersPerS: number;
  p50Ms: number;
  p99Ms: number;
  /** Answer records in the last reply (A: at most udp_answer_limit without EDNS0). */
  recordsPerAnswer: number;
  generatorCpuS: number;
}

/** `inFlight` queries outstanding at all times, for `seconds`. */
export async function dnsLoad(
  port: number,
  query: Buffer,
  options: { seconds: number; inFlight: number },
): Promise<DnsLoadResult> {
  if (!(options.inFlight >= 1 && options.inFlight < ID_SPACE / 2))
    throw new Error(
      `Cannot run DNS load as 'inFlight' must be 1-32767: current value is ${options.inFlight}`,
    );
  const client = new DnsClient(port);
  const latencies: number[] = [];
  let empty = 0;
  let errors = 0;
  let lost = 0;
  let recordsPerAnswer = 0;
  const cpuBefore = process.cpuUsage();
  const began = performance.now();
  const end = began + options.seconds * 1000;
  try {
    await Promise.all(
      Array.from({ length: options.inFlight }, async () => {
        while (performance.now() < end) {
          const sentAt = performance.now();
          const reply = await client.exchange(query);
          if (reply === null) {
            lost++;
            continue;
          }
          const rcode = reply.readUInt16BE(2) & 0xf;
          const answers = reply.readUInt16BE(6);
          if (rcode !== 0) errors++;
          else if (answers === 0) empty++;
          else {
            latencies.push(performance.now() - sentAt);
            recordsPerAnswer = answers;
          }
        }
      }),
    );
  } catch (err) {
    client.close();
    throw err;
  }
  const seconds = (performance.now() - began) / 1000;
  // Answers still on their way are counted late if they come within one more timeout.
  await new Promise((r) => setTimeout(r, QUERY_TIMEOUT_MS));
  const late = client.lateAnswers;
  client.close();
  const cpu = process.cpuUsage(cpuBefore);
  latencies.sort((a, b) => a - b);
  return {
    seconds,
    answered: latencies.length,
    empty,
    errors,
    lost,
    late,
    servedPerS: (latencies.length + empty + errors + late) / seconds,
    answersPerS: latencies.length / seconds,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    recordsPerAnswer,
    generatorCpuS: (cpu.user + cpu.system) / 1e6,
  };
}
