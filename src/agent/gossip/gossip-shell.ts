import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { Packr } from 'msgpackr';
import {
  type ForceLeaveResult,
  type GossipConfig,
  type GossipMessage,
  GossipNode,
  type MemberEvent,
  type MemberMeta,
  type MemberState,
  type Outgoing,
} from '../../gossip/index.js';
import type { Logger } from '../../server/logger.js';
import { joinHostPort, splitHostPort } from '../../transport/address.js';
import type { Keyring } from './keyring.js';

/**
 * The gossip core on real sockets (memberlist's net transport): UDP for probes and piggybacked
 * updates, TCP for push-pull state exchange, both on -serf-lan-port. Messages are msgpack,
 * sealed with AES-GCM when a keyring is set; anything that does not decrypt or decode is
 * dropped and counted, never thrown. The core's timers are driven by one setTimeout aimed at
 * its next deadline.
 */

const packr = new Packr({ useRecords: false });
/** A TCP push-pull carries the whole member table: bounded, as the core bounds the members. */
const MAX_TCP_FRAME = 8 * 1024 * 1024;
const TCP_TIMEOUT_MS = 10_000;
/** Inbound TCP peers are named by this prefix plus their socket address, so a reply finds its socket. */
const INBOUND = 'tcp-in:';

export interface GossipShellOptions {
  name: string;
  bindHost: string;
  port: number;
  /** The host others reach us at (the bind host unless it is a wildcard). */
  advertiseHost: string;
  meta: MemberMeta;
  keyring: Keyring | null;
  log: Logger;
  config?: Partial<GossipConfig>;
}

export interface GossipShellStats {
  packetsIn: number;
  packetsOut: number;
  /** Packets or frames that did not decrypt or decode. */
  dropped: number;
}

export class GossipShell {
  private udp: UdpSocket | null = null;
  private tcp: Server | null = null;
  private node: GossipNode | null = null;
  private timer: NodeJS.Timeout | undefined;
  private readonly inbound = new Map<string, Socket>();
  private readonly sockets = new Set<Socket>();
  private listeners: ((event: MemberEvent) => void)[] = [];
  /** Joins waiting for their push-pull answer, by the address they were sent to. */
  private readonly joinWaiters = new Map<string, ((answered: boolean) => void)[]>();
  private stopped = false;
  readonly stats: GossipShellStats = { packetsIn: 0, packetsOut: 0, dropped: 0 };
  port = 0;

  constructor(private readonly options: GossipShellOptions) {}

  get address(): string {
    return joinHostPort(this.options.advertiseHost, this.port);
  }

  onEvent(listener: (event: MemberEvent) => void): void {
    this.listeners.push(listener);
  }

  members(): MemberState[] {
    return this.node?.memberList() ?? [];
  }

  /** The keyring that seals gossip (changes to it apply to the next packet), or null. */
  get keyring(): Keyring | null {
    return this.options.keyring;
  }

  async start(): Promise<void> {
    const { bindHost, port } = this.options;
    // UDP first (port 0 picks one), then TCP on the same port, as the DNS server does.
    for (let attempt = 0; ; attempt++) {
      const udp = createSocket({ type: bindHost.includes(':') ? 'udp6' : 'udp4' });
      try {
        await new Promise<void>((resolve, reject) => {
          udp.once('error', reject);
          udp.bind(port, bindHost, () => resolve());
        });
        const bound = udp.address().port;
        const tcp = createServer((socket) => this.acceptTcp(socket));
        await new Promise<void>((resolve, reject) => {
          tcp.once('error', reject);
          tcp.listen(bound, bindHost, () => resolve());
        });
        this.udp = udp;
        this.tcp = tcp;
        this.port = bound;
        break;
      } catch (err) {
        udp.close();
        if (port !== 0 || attempt >= 8) throw err;
      }
    }
    this.udp.on('message', (packet, rinfo) => this.receive(joinHostPort(rinfo.address, rinfo.port), packet));
    this.udp.on('error', (err) => this.options.log.warn('gossip UDP error', { error: String(err) }));
    this.node = new GossipNode({
      name: this.options.name,
      address: this.address,
      meta: this.options.meta,
      clock: () => performance.now(),
      random: Math.random,
      config: this.options.config ?? {},
      // A restarted agent starts above any incarnation others may remember for it.
      incarnation: Math.floor(Date.now() / 1000),
    });
    this.flush();
  }

  /** Join the pool through these addresses (host:port; the port defaults to the caller's). */
  join(addresses: string[]): void {
    if (!this.node || addresses.length === 0) return;
    this.node.join(addresses);
    this.flush();
  }

  /**
   * Join and wait, at most `timeoutMs`, for each seed's push-pull answer: how many answered
   * (memberlist Join's count; a seed with another key never answers in a way we can open).
   */
  async joinAndWait(addresses: string[], timeoutMs = 5000): Promise<number> {
    if (!this.node || this.stopped || addresses.length === 0) return 0;
    const unique = [...new Set(addresses)];
    const answers = unique.map(
      (address) =>
        new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => settle(false), timeoutMs);
          const settle = (answered: boolean): void => {
            clearTimeout(timer);
            const waiting = this.joinWaiters.get(address) ?? [];
            this.joinWaiters.set(
              address,
              waiting.filter((w) => w !== settle),
            );
            if (this.joinWaiters.get(address)?.length === 0) this.joinWaiters.delete(address);
            resolve(answered);
          };
          this.joinWaiters.set(address, [...(this.joinWaiters.get(address) ?? []), settle]);
        }),
    );
    this.join(unique);
    return (await Promise.all(answers)).filter(Boolean).length;
  }

  /** Consul's force-leave of a failed member (see GossipNode.forceLeave). */
  forceLeave(name: string): ForceLeaveResult {
    if (!this.node || this.stopped) return 'unknown';
    const result = this.node.forceLeave(name);
    this.flush();
    return result;
  }

  private settleJoin(address: string, answered: boolean): void {
    for (const settle of this.joinWaiters.get(address) ?? []) settle(answered);
  }

  updateMeta(meta: MemberMeta): void {
    this.node?.updateMeta(meta);
    this.flush();
  }

  /** Graceful leave: broadcast it, wait (bounded) for it to go out, then stop. */
  async leave(timeoutMs = 2000): Promise<void> {
    if (!this.node || this.stopped) return;
    this.node.leave();
    this.flush();
    const end = Date.now() + timeoutMs;
    while (!this.node.leaveBroadcastDone() && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    await this.stop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    for (const s of this.sockets) s.destroy();
    this.udp?.close();
    this.udp = null;
    const tcp = this.tcp;
    this.tcp = null;
    if (tcp) await new Promise<void>((r) => tcp.close(() => r()));
  }

  // ---- the core's input and output ----

  /** Whether the bytes opened, decoded and were a valid gossip message. */
  private receive(from: string, bytes: Buffer): boolean {
    if (this.stopped || !this.node) return false;
    this.stats.packetsIn++;
    const message = this.open(bytes);
    if (message === undefined) return false;
    const invalidBefore = this.node.stats.invalidMessages;
    this.node.receive(from, message);
    const valid = this.node.stats.invalidMessages === invalidBefore;
    this.flush();
    return valid;
  }

  private open(bytes: Buffer): unknown {
    const plain = this.options.keyring ? this.options.keyring.decrypt(bytes) : bytes;
    if (plain === null) {
      this.stats.dropped++;
      return undefined;
    }
    try {
      return packr.unpack(plain) as unknown;
    } catch {
      this.stats.dropped++;
      return undefined;
    }
  }

  private seal(message: GossipMessage): Buffer {
    const plain = packr.pack(message);
    return this.options.keyring ? this.options.keyring.encrypt(plain) : plain;
  }

  /** Sends what the core produced, hands its events out, and re-arms the timer. */
  private flush(): void {
    const node = this.node;
    if (!node || this.stopped) return;
    node.tick();
    const { messages, events } = node.takeOutput();
    for (const out of messages) this.send(out);
    for (const event of events) {
      for (const listener of this.listeners) {
        try {
          listener(event);
        } catch (err) {
          this.options.log.warn('gossip event listener failed', { error: String(err) });
        }
      }
    }
    clearTimeout(this.timer);
    const wait = Math.max(0, Math.min(1000, node.nextDeadlineMs() - performance.now()));
    this.timer = setTimeout(() => this.flush(), wait);
  }

  private send(out: Outgoing): void {
    const bytes = this.seal(out.message);
    this.stats.packetsOut++;
    if (out.transport === 'udp') {
      const { host, port } = splitHostPort(out.to);
      this.udp?.send(bytes, port, host);
      return;
    }
    // A reply to an inbound push-pull goes back on the connection it came in on.
    const inbound = this.inbound.get(out.to);
    if (inbound) {
      writeFrame(inbound, bytes);
      inbound.end();
      this.inbound.delete(out.to);
      return;
    }
    this.pushPull(out.to, bytes);
  }

  /** An outbound push-pull: one frame each way on a fresh connection. */
  private pushPull(to: string, bytes: Buffer): void {
    const { host, port } = splitHostPort(to);
    const socket = connect({ host, port });
    this.track(socket);
    readFrames(
      socket,
      (frame) => {
        socket.end();
        this.settleJoin(to, this.receive(to, frame));
      },
      () => this.stats.dropped++,
    );
    socket.once('close', () => this.settleJoin(to, false));
    socket.once('connect', () => writeFrame(socket, bytes));
  }

  private acceptTcp(socket: Socket): void {
    this.track(socket);
    const key = `${INBOUND}${socket.remoteAddress}:${socket.remotePort}`;
    this.inbound.set(key, socket);
    socket.once('close', () => this.inbound.delete(key));
    readFrames(
      socket,
      (frame) => this.receive(key, frame),
      () => this.stats.dropped++,
    );
  }

  private track(socket: Socket): void {
    this.sockets.add(socket);
    socket.setTimeout(TCP_TIMEOUT_MS, () => socket.destroy());
    socket.on('error', () => socket.destroy());
    socket.once('close', () => this.sockets.delete(socket));
  }
}

function writeFrame(socket: Socket, bytes: Buffer): void {
  const header = Buffer.alloc(4);
  header.writeUInt32BE(bytes.byteLength);
  socket.write(Buffer.concat([header, bytes]));
}

/** Length-prefixed frames; an oversized one drops the connection. */
function readFrames(socket: Socket, onFrame: (frame: Buffer) => void, onBad: () => void): void {
  let buffer = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    buffer = Buffer.concat([buffer, chunk]);
    while (buffer.byteLength >= 4) {
      const length = buffer.readUInt32BE(0);
      if (length > MAX_TCP_FRAME) {
        onBad();
        socket.destroy();
        return;
      }
      if (buffer.byteLength < 4 + length) return;
      const frame = buffer.subarray(4, 4 + length);
      buffer = buffer.subarray(4 + length);
      onFrame(frame);
    }
  });
}
