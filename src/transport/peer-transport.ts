import { createServer, type Server, Socket } from 'node:net';
import type { Message, NodeId } from '../raft/types.js';
import { Backoff } from './backoff.js';
import { DEFAULT_MAX_MESSAGE_BYTES, encodeFrame, FrameDecoder } from './frame.js';

/**
 * Server-to-server transport: TCP with length-prefixed msgpack frames.
 *
 * Each server dials one connection to each peer and reuses it for every Raft message and
 * request it sends there; the peer answers requests on the same connection. So a pair of
 * servers holds two connections, one dialed by each (as etcd's rafthttp streams and
 * hashicorp/raft's pools do): neither end waits for the other to dial, and there is no race
 * over which of two simultaneous dials survives. A handshake names
 * both ends and the cluster, so a stray process (another cluster, a mistyped address) is
 * refused before it can deliver a Raft message. Outgoing queues are bounded: when a peer is
 * slow or down, messages are dropped and the peer reported unreachable — Raft retransmits.
 */

/**
 * Peers of another version are refused. 2: Raft messages in their own binary layout
 * (raft-codec.ts). 3: what servers replicate may hold what a version 2 server cannot read:
 * snapshots with 'kvBin' frames, Consul txns with the get-or-empty verb. A version 2 server
 * would fail to install such a snapshot, or reject such a command while the others apply it and
 * so diverge from them; refusing it at the handshake is the safe failure. (Nothing negotiates a
 * cluster-wide format level yet, which rolling upgrades would need.)
 */
export const PROTOCOL_VERSION = 3;

type Frame =
  | { t: 'hello'; v: number; cluster: string; from: NodeId; to: NodeId }
  | { t: 'welcome'; from: NodeId }
  | { t: 'reject'; reason: string }
  | { t: 'raft'; m: Message }
  | { t: 'req'; id: number; body: unknown }
  | { t: 'res'; id: number; ok: boolean; body: unknown };

export interface PeerTransportOptions {
  nodeId: NodeId;
  /** Cluster identity; '' before this server belongs to a cluster (it may then only make requests). */
  clusterId: string;
  host: string;
  /** 0 picks an ephemeral port. */
  port: number;
  onRaftMessage: (m: Message) => void;
  /**
   * Answer a peer's request (forwarded writes, read-index, join); throw to send an error back.
   * `trusted`: the peer's hello named our cluster (a joining server or a client agent does not).
   */
  onRequest?: (from: NodeId, body: unknown, trusted: boolean) => Promise<unknown>;
  onUnreachable?: (peer: NodeId) => void;
  log?: (level: 'debug' | 'info' | 'warn', message: string, fields?: Record<string, unknown>) => void;
  maxFrameBytes?: number;
  maxQueuedFramesPerPeer?: number;
  handshakeTimeoutMs?: number;
  reconnectBaseMs?: number;
  reconnectMaxMs?: number;
}

export class TransportError extends Error {
  override name = 'TransportError';
  /**
   * True when a request never left this process (no connection yet, queue dropped), so the
   * peer cannot have acted on it and the caller may safely retry it elsewhere.
   */
  readonly notSent: boolean;
  constructor(message: string, options: { notSent?: boolean } = {}) {
    super(message);
    this.notSent = options.notSent ?? false;
  }
}

interface PendingRequest {
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
  /** Written to a connected socket (from then on, the peer may have acted on it). */
  sent: boolean;
}

/** The outgoing connection to one peer. */
class PeerLink {
  socket: Socket | null = null;
  ready = false;
  queue: Buffer[] = [];
  reconnectTimer: NodeJS.Timeout | null = null;
  readonly backoff: Backoff;
  pending = new Map<number, PendingRequest>();

  constructor(
    readonly id: NodeId,
    public address: string,
    baseMs: number,
    maxMs: number,
  ) {
    this.backoff = new Backoff(baseMs, maxMs);
  }
}

export class PeerTransport {
  private readonly opts: Required<Omit<PeerTransportOptions, 'onRequest' | 'onUnreachable' | 'log'>> &
    Pick<PeerTransportOptions, 'onRequest' | 'onUnreachable' | 'log'>;
  private server: Server | null = null;
  private readonly links = new Map<NodeId, PeerLink>();
  private readonly inbound = new Set<Socket>();
  private nextRequestId = 1;
  private closed = false;
  clusterId: string;
  /** Counters for metrics and tests. */
  readonly stats = { framesIn: 0, framesOut: 0, dropped: 0, rejectedHandshakes: 0, untrustedRaftFrames: 0 };

  constructor(options: PeerTransportOptions) {
    this.opts = {
      maxFrameBytes: 64 << 20,
      maxQueuedFramesPerPeer: 8192,
      handshakeTimeoutMs: 5000,
      reconnectBaseMs: 50,
      reconnectMaxMs: 2000,
      ...options,
    };
    this.clusterId = options.clusterId;
  }

  /** Start listening; resolves with the bound port. */
  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      const server = createServer((socket) => this.accept(socket));
      server.once('error', reject);
      server.listen(this.opts.port, this.opts.host, () => {
        server.off('error', reject);
        this.server = server;
        const addr = server.address();
        resolve(typeof addr === 'object' && addr ? addr.port : this.opts.port);
      });
    });
  }

  /** Where to reach a peer ("host:port"). Changing the address reconnects. */
  setPeer(id: NodeId, address: string): void {
    if (id === this.opts.nodeId) return;
    const link = this.links.get(id);
    if (link) {
      if (link.address !== address) {
        link.address = address;
        this.dropConnection(link, 'address changed');
      }
      return;
    }
    this.links.set(id, new PeerLink(id, address, this.opts.reconnectBaseMs, this.opts.reconnectMaxMs));
  }

  removePeer(id: NodeId): void {
    const link = this.links.get(id);
    if (!link) return;
    this.links.delete(id);
    if (link.reconnectTimer) clearTimeout(link.reconnectTimer);
    this.failPending(link, new TransportError(`peer ${id} removed`));
    link.socket?.destroy();
  }

  hasPeer(id: NodeId): boolean {
    return this.links.has(id);
  }

  /** Queue a Raft message. Returns false if it was dropped (unknown peer or full queue). */
  send(m: Message): boolean {
    const link = this.links.get(m.to);
    if (!link) {
      this.stats.dropped++;
      return false;
    }
    return this.enqueue(link, { t: 'raft', m });
  }

  /**
   * Write out now what this turn has queued on the peers' sockets, instead of at the end of the
   * turn (writes are corked per turn, see writeCorked): the Raft host calls it once its messages
   * are handed over, so appends and their answers are not held back by work later in the turn.
   */
  flush(): void {
    for (const link of this.links.values()) {
      if (link.socket && link.socket.writableCorked > 0) link.socket.uncork();
    }
  }

  /** A request to a peer, answered by its onRequest handler. */
  request(to: NodeId, body: unknown, timeoutMs: number): Promise<unknown> {
    const link = this.links.get(to);
    if (!link)
      return Promise.reject(new TransportError(`no address known for peer ${to}`, { notSent: true }));
    const id = this.nextRequestId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        link.pending.delete(id);
        reject(new TransportError(`request to ${to} timed out after ${timeoutMs}ms`));
      }, timeoutMs);
      const pending: PendingRequest = { resolve, reject, timer, sent: false };
      link.pending.set(id, pending);
      if (!this.enqueue(link, { t: 'req', id, body })) {
        clearTimeout(timer);
        link.pending.delete(id);
        reject(new TransportError(`queue to ${to} is full`, { notSent: true }));
        return;
      }
      pending.sent = link.ready && link.socket !== null;
    });
  }

  /**
   * One request to a server known only by address (discovery, join): a short-lived connection
   * whose hello names no target node. Resolves with the answer and the answering node's id.
   */
  requestAt(address: string, body: unknown, timeoutMs: number): Promise<{ from: NodeId; body: unknown }> {
    return new Promise((resolve, reject) => {
      let host: string;
      let portText: string;
      try {
        [host, portText] = splitHostPort(address);
      } catch (err) {
        reject(err);
        return;
      }
      const socket = new Socket();
      const decoder = new FrameDecoder(this.opts.maxFrameBytes);
      let from: NodeId | null = null;
      let settled = false;
      const finish = (err: Error | null, value?: { from: NodeId; body: unknown }) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.destroy();
        if (err) reject(err);
        else resolve(value as { from: NodeId; body: unknown });
      };
      const timer = setTimeout(
        () => finish(new TransportError(`request to ${address} timed out after ${timeoutMs}ms`)),
        timeoutMs,
      );
      socket.setNoDelay(true);
      socket.on('connect', () => socket.write(this.hello('')));
      socket.on('data', (chunk: Buffer) => {
        let frames: unknown[];
        try {
          frames = decoder.push(chunk);
        } catch (err) {
          finish(err as Error);
          return;
        }
        for (const raw of frames) {
          const f = raw as Frame;
          if (f.t === 'reject') return finish(new TransportError(`${address} refused: ${f.reason}`));
          if (f.t === 'welcome' && from === null) {
            from = f.from;
            socket.write(encodeFrame({ t: 'req', id: 1, body }, this.opts.maxFrameBytes));
          } else if (f.t === 'res' && f.id === 1 && from !== null) {
            if (f.ok) finish(null, { from, body: f.body });
            else finish(new TransportError(String(f.body)));
          }
        }
      });
      socket.on('error', (err) => finish(new TransportError(`${address}: ${err.message}`)));
      socket.on('close', () => finish(new TransportError(`${address} closed the connection`)));
      socket.connect(Number(portText), host);
    });
  }

  /**
   * Adopt a cluster identity (after bootstrapping or joining). Connections made under the old
   * identity are dropped, so every peer handshakes again and is trusted under the new one.
   */
  setClusterId(clusterId: string): void {
    if (clusterId === this.clusterId) return;
    this.clusterId = clusterId;
    for (const link of this.links.values()) this.dropConnection(link, 'cluster identity changed');
    for (const s of this.inbound) s.destroy();
    this.inbound.clear();
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const link of this.links.values()) {
      if (link.reconnectTimer) clearTimeout(link.reconnectTimer);
      this.failPending(link, new TransportError('transport closed'));
      link.socket?.destroy();
    }
    this.links.clear();
    for (const s of this.inbound) s.destroy();
    this.inbound.clear();
    const server = this.server;
    this.server = null;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  // ------------------------------------------------------------ outgoing

  private enqueue(link: PeerLink, frame: Frame): boolean {
    if (this.closed) return false;
    let bytes: Buffer;
    try {
      bytes = encodeFrame(frame, this.opts.maxFrameBytes);
    } catch (err) {
      this.opts.log?.('warn', 'dropping an unencodable frame', { peer: link.id, error: String(err) });
      this.stats.dropped++;
      return false;
    }
    if (link.ready && link.socket) {
      this.stats.framesOut++;
      writeCorked(link.socket, bytes);
      return true;
    }
    if (link.queue.length >= this.opts.maxQueuedFramesPerPeer) {
      this.stats.dropped++;
      return false;
    }
    link.queue.push(bytes);
    if (!link.socket && !link.reconnectTimer) this.connect(link);
    return true;
  }

  /** The first frame on a connection we open; `to` is '' when we know only the address. */
  private hello(to: NodeId): Buffer {
    return encodeFrame(
      { t: 'hello', v: PROTOCOL_VERSION, cluster: this.clusterId, from: this.opts.nodeId, to },
      this.opts.maxFrameBytes,
    );
  }

  private connect(link: PeerLink): void {
    const [host, portText] = splitHostPort(link.address);
    const socket = new Socket();
    link.socket = socket;
    link.ready = false;
    socket.setNoDelay(true);
    const decoder = new FrameDecoder(this.opts.maxFrameBytes);
    const handshakeTimer = setTimeout(
      () => socket.destroy(new TransportError('handshake timed out')),
      this.opts.handshakeTimeoutMs,
    );
    socket.on('connect', () => socket.write(this.hello(link.id)));
    socket.on('data', (chunk: Buffer) => {
      let frames: unknown[];
      try {
        frames = decoder.push(chunk);
      } catch (err) {
        socket.destroy(err as Error);
        return;
      }
      for (const raw of frames) {
        const f = raw as Frame;
        if (!link.ready) {
          if (f.t === 'welcome') {
            clearTimeout(handshakeTimer);
            link.ready = true;
            link.backoff.reset();
            const queued = link.queue;
            link.queue = [];
            for (const p of link.pending.values()) p.sent = true;
            for (const b of queued) {
              this.stats.framesOut++;
              socket.write(b);
            }
          } else if (f.t === 'reject') {
            this.opts.log?.('warn', 'peer refused our handshake', { peer: link.id, reason: f.reason });
            socket.destroy();
            return;
          }
          continue;
        }
        if (f.t === 'res') {
          const p = link.pending.get(f.id);
          if (!p) continue;
          link.pending.delete(f.id);
          clearTimeout(p.timer);
          if (f.ok) p.resolve(f.body);
          else p.reject(new TransportError(String(f.body)));
        }
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(handshakeTimer);
      if (link.socket === socket) this.onLinkClosed(link);
    });
    socket.connect(Number(portText), host);
  }

  private onLinkClosed(link: PeerLink): void {
    const wasReady = link.ready;
    link.socket = null;
    link.ready = false;
    this.failPending(link, new TransportError(`connection to ${link.id} closed`));
    if (wasReady || link.queue.length > 0) this.opts.onUnreachable?.(link.id);
    // Drop what was queued: Raft retransmits, and stale appends only cost bandwidth.
    this.stats.dropped += link.queue.length;
    link.queue = [];
    if (this.closed || !this.links.has(link.id)) return;
    const delay = link.backoff.nextDelayMs();
    link.reconnectTimer = setTimeout(() => {
      link.reconnectTimer = null;
      if (!this.closed && this.links.get(link.id) === link && !link.socket) this.connect(link);
    }, delay);
  }

  private dropConnection(link: PeerLink, why: string): void {
    this.opts.log?.('debug', 'dropping peer connection', { peer: link.id, why });
    link.socket?.destroy();
  }

  private failPending(link: PeerLink, err: Error): void {
    for (const p of link.pending.values()) {
      clearTimeout(p.timer);
      p.reject(p.sent ? err : new TransportError(`${err.message} (request not sent)`, { notSent: true }));
    }
    link.pending.clear();
  }

  // ------------------------------------------------------------ incoming

  private accept(socket: Socket): void {
    this.inbound.add(socket);
    socket.setNoDelay(true);
    // One frame's worth per message until the hello names our cluster (see FrameDecoder).
    const decoder = new FrameDecoder(this.opts.maxFrameBytes, this.opts.maxFrameBytes);
    let peer: NodeId | null = null;
    let trusted = false;
    const handshakeTimer = setTimeout(() => socket.destroy(), this.opts.handshakeTimeoutMs);
    const refuse = (reason: string, level: 'warn' | 'debug' = 'warn') => {
      this.stats.rejectedHandshakes++;
      this.opts.log?.(level, 'refused a peer connection', { reason, remote: socket.remoteAddress });
      socket.end(encodeFrame({ t: 'reject', reason }, this.opts.maxFrameBytes));
    };
    socket.on('data', (chunk: Buffer) => {
      let frames: unknown[];
      try {
        frames = decoder.push(chunk);
      } catch (err) {
        this.opts.log?.('warn', 'closing a peer connection after a bad frame', { peer, error: String(err) });
        socket.destroy();
        return;
      }
      for (const raw of frames) {
        this.stats.framesIn++;
        const f = raw as Frame;
        if (peer === null) {
          clearTimeout(handshakeTimer);
          // Not our protocol at all (most often a gossip join sent to this port because one
          // -retry-join address serves both purposes): counted, logged at debug only.
          if (typeof f !== 'object' || f === null || f.t !== 'hello')
            return refuse('expected a hello frame', 'debug');
          if (f.v !== PROTOCOL_VERSION) return refuse(`protocol version ${f.v} is not ${PROTOCOL_VERSION}`);
          if (f.to !== '' && f.to !== this.opts.nodeId)
            return refuse(`this is node ${this.opts.nodeId}, not ${f.to}`);
          if (f.cluster !== '' && this.clusterId !== '' && f.cluster !== this.clusterId) {
            return refuse(`cluster ${f.cluster} does not match ${this.clusterId}`);
          }
          if (typeof f.from !== 'string' || f.from === '') return refuse('hello names no node');
          peer = f.from;
          trusted = f.cluster !== '' && f.cluster === this.clusterId;
          if (trusted) decoder.maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES;
          socket.write(encodeFrame({ t: 'welcome', from: this.opts.nodeId }, this.opts.maxFrameBytes));
          continue;
        }
        if (f.t === 'raft') {
          if (!trusted || f.m?.from !== peer || f.m?.to !== this.opts.nodeId) {
            this.stats.untrustedRaftFrames++;
            continue;
          }
          this.opts.onRaftMessage(f.m);
        } else if (f.t === 'req') {
          this.answer(socket, peer, trusted, f.id, f.body);
        }
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(handshakeTimer);
      this.inbound.delete(socket);
    });
  }

  private answer(socket: Socket, from: NodeId, trusted: boolean, id: number, body: unknown): void {
    const handler = this.opts.onRequest;
    const reply = (ok: boolean, result: unknown) => {
      if (socket.destroyed) return;
      let bytes: Buffer;
      try {
        bytes = encodeFrame({ t: 'res', id, ok, body: result }, this.opts.maxFrameBytes);
      } catch (err) {
        bytes = encodeFrame({ t: 'res', id, ok: false, body: String(err) }, this.opts.maxFrameBytes);
      }
      // Answers to forwarded writes resolve together when their entries apply: one writev.
      writeCorked(socket, bytes);
    };
    if (!handler) {
      reply(false, 'this server takes no requests');
      return;
    }
    handler(from, body, trusted).then(
      (result) => reply(true, result),
      (err: unknown) => reply(false, err instanceof Error ? err.message : String(err)),
    );
  }
}

function splitHostPort(address: string): [string, string] {
  const i = address.lastIndexOf(':');
  if (i <= 0) throw new TransportError(`peer address '${address}' is not host:port`);
  let host = address.slice(0, i);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  return [host, address.slice(i + 1)];
}

/**
 * Frames written in one turn of the event loop leave in one writev, not a syscall each: on
 * loopback a write costs the sender the receiver's TCP work too, and it adds up per message.
 */
function writeCorked(socket: Socket, bytes: Buffer): void {
  if (socket.writableCorked === 0) {
    socket.cork();
    process.nextTick(() => socket.uncork());
  }
  socket.write(bytes);
}
