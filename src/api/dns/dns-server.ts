import dgram from 'node:dgram';
import net from 'node:net';
import type { DnsConfig } from '../../agent/config.js';
import type { Logger } from '../../server/logger.js';
import type { Catalog } from '../../store/catalog.js';
import { type DnsSource, handleQuery, type Transport } from './handler.js';

/**
 * Consul's DNS interface on one port, UDP and TCP (Consul's -dns-port, 8600 by default). The
 * sockets only move bytes: what a query means is handler.ts's job.
 */

/** What DNS needs of a ConclaveServer (tests pass a store of their own). */
export interface DnsBackend {
  readonly store: { readonly catalog: Catalog };
  /** The servers, whose node names the zone's NS records give. */
  raftConfiguration(): { servers: { name: string }[] };
  /** Resolves when local reads reflect every acknowledged write (for allow_stale=false). */
  readBarrier(): Promise<void>;
}

export interface DnsServerOptions {
  /** The server whose replicated catalog is answered from. */
  server: DnsBackend;
  config: { domain: string; datacenter: string; dns: DnsConfig };
  host: string;
  /** 0 picks a free port shared by UDP and TCP. */
  port: number;
  log: Logger;
}

export interface DnsServer {
  port: number;
  close(): Promise<void>;
}

/** Attempts at finding a port free for both UDP and TCP when asked for port 0. */
const BIND_ATTEMPTS = 8;
/** RFC 7766 §6.2.3: close idle TCP connections; clients reopen. */
const TCP_IDLE_MS = 10_000;
const TCP_CONNECTIONS_MAX = 256;
/** UDP queries in flight (waiting on a read barrier with allow_stale=false); beyond, drop: clients retry. */
const UDP_PENDING_MAX = 1024;
/** Queries in flight on one TCP connection (RFC 7766 pipelining), beyond which reading pauses. */
const TCP_PENDING_MAX = 16;

export async function startDnsServer(options: DnsServerOptions): Promise<DnsServer> {
  const { server, config, host, log } = options;
  if (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535)
    throw new Error(`Cannot serve DNS as 'port' must be 0-65535: current value is ${options.port}`);
  const source: DnsSource = {
    get catalog() {
      return server.store.catalog;
    },
    serverNames: () =>
      server
        .raftConfiguration()
        .servers.map((s) => s.name)
        .filter((name) => name !== ''),
  };
  const answer = async (query: Buffer, transport: Transport): Promise<Buffer | null> => {
    let consistent = true;
    // allow_stale=false: Consul reads from the leader; here, a ReadIndex barrier first.
    if (!config.dns.allowStale) {
      await server.readBarrier().catch((err: unknown) => {
        consistent = false;
        log.debug('dns read barrier failed', { error: String(err) });
      });
    }
    return handleQuery(query, {
      transport,
      source,
      domain: config.domain,
      datacenter: config.datacenter,
      dns: config.dns,
      serverFailure: !consistent,
      nowS: Math.floor(Date.now() / 1000),
      random: Math.random,
    });
  };

  let lastError: unknown = null;
  for (let attempt = 0; attempt < (options.port === 0 ? BIND_ATTEMPTS : 1); attempt++) {
    const udp = await bindUdp(host, options.port).catch((err: unknown) => {
      lastError = err;
      return null;
    });
    if (!udp) continue;
    const port = udp.address().port;
    const tcp = await bindTcp(host, port).catch((err: unknown) => {
      lastError = err;
      return null;
    });
    if (!tcp) {
      await new Promise<void>((resolve) => udp.close(() => resolve()));
      continue;
    }
    return serve(udp, tcp, port, answer, log);
  }
  throw lastError instanceof Error ? lastError : new Error(String(lastError));
}

function bindUdp(host: string, port: number): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
    socket.once('error', reject);
    socket.bind(port, host, () => {
      socket.off('error', reject);
      resolve(socket);
    });
  });
}

function bindTcp(host: string, port: number): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.maxConnections = TCP_CONNECTIONS_MAX;
    server.once('error', reject);
    server.listen({ host, port, exclusive: true }, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

type Answer = (query: Buffer, transport: Transport) => Promise<Buffer | null>;

function serve(udp: dgram.Socket, tcp: net.Server, port: number, answer: Answer, log: Logger): DnsServer {
  udp.on('error', (err) => log.warn('dns udp socket error', { error: err.message }));
  let udpPending = 0;
  udp.on('message', (message, remote) => {
    if (udpPending >= UDP_PENDING_MAX) return;
    udpPending++;
    answer(message, 'udp')
      .then(
        (reply) => {
          if (reply) udp.send(reply, remote.port, remote.address);
        },
        (err: unknown) => log.warn('dns query failed', { error: String(err) }),
      )
      .finally(() => {
        udpPending--;
      });
  });

  const connections = new Set<net.Socket>();
  tcp.on('error', (err) => log.warn('dns tcp server error', { error: err.message }));
  tcp.on('connection', (socket) => {
    connections.add(socket);
    socket.on('close', () => connections.delete(socket));
    serveTcpConnection(socket, answer, log);
  });

  let closing: Promise<void> | null = null;
  return {
    port,
    close() {
      closing ??= Promise.all([
        new Promise<void>((resolve) => udp.close(() => resolve())),
        new Promise<void>((resolve) => {
          tcp.close(() => resolve());
          for (const socket of connections) socket.destroy();
        }),
      ]).then(() => undefined);
      return closing;
    },
  };
}

/** RFC 1035 §4.2.2 / RFC 7766: each message is preceded by its two-byte length. */
function serveTcpConnection(socket: net.Socket, answer: Answer, log: Logger): void {
  let buffered = Buffer.alloc(0);
  let pending = 0;
  socket.setTimeout(TCP_IDLE_MS, () => socket.destroy());
  socket.on('error', (err) => log.debug('dns tcp connection error', { error: err.message }));
  socket.on('data', (chunk) => {
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
    while (buffered.length >= 2) {
      const length = buffered.readUInt16BE(0);
      if (buffered.length < 2 + length) break;
      const message = buffered.subarray(2, 2 + length);
      buffered = buffered.subarray(2 + length);
      pending++;
      if (pending >= TCP_PENDING_MAX) socket.pause();
      answer(message, 'tcp')
        .then(
          (reply) => {
            if (!reply || socket.destroyed) return;
            const frame = Buffer.alloc(2 + reply.length);
            frame.writeUInt16BE(reply.length, 0);
            reply.copy(frame, 2);
            socket.write(frame);
          },
          (err: unknown) => log.warn('dns query failed', { error: String(err) }),
        )
        .finally(() => {
          pending--;
          if (pending < TCP_PENDING_MAX && socket.isPaused()) socket.resume();
        });
    }
  });
}
