import { createServer, type Server, type Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { GrpcServer } from '../../grpc/server.js';

/**
 * One port for gRPC and etcd's HTTP/1.1 JSON gateway, as etcd serves them: the first bytes of
 * a connection decide. HTTP/2 with prior knowledge (every gRPC client) opens with the
 * connection preface "PRI * HTTP/2.0"; anything else is handed to the HTTP/1.1 server.
 */

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
const SNIFF_TIMEOUT_MS = 10_000;

export class EtcdListener {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();

  constructor(
    private readonly grpcServer: GrpcServer,
    private readonly http: FastifyInstance,
  ) {}

  async listen(host: string, port: number): Promise<number> {
    await this.http.ready();
    const server = createServer((socket) => this.route(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    const address = server.address();
    return typeof address === 'object' && address ? address.port : port;
  }

  private route(socket: Socket): void {
    this.sockets.add(socket);
    // net.Server leaves Nagle on (http.createServer would turn it off): HTTP/2 frames and
    // streamed chunks would wait for the peer's delayed ACK, ~40 ms a gRPC call.
    socket.setNoDelay(true);
    socket.once('close', () => this.sockets.delete(socket));
    let seen = Buffer.alloc(0);
    const timer = setTimeout(() => socket.destroy(), SNIFF_TIMEOUT_MS);
    // A connection closed before it said anything (or by close()) must not keep its timer.
    socket.once('close', () => clearTimeout(timer));
    const onData = (chunk: Buffer) => {
      seen = Buffer.concat([seen, chunk]);
      const n = Math.min(seen.length, PREFACE.length);
      const isHttp2 = seen.subarray(0, n).equals(PREFACE.subarray(0, n));
      if (isHttp2 && seen.length < PREFACE.length) return; // need more bytes to decide
      clearTimeout(timer);
      socket.off('data', onData);
      // The bytes read to decide go back into the socket's buffer, for whichever server reads next.
      socket.pause();
      socket.unshift(seen);
      if (isHttp2) {
        this.grpcServer.handleConnection(socket);
        socket.resume();
      } else {
        this.http.server.emit('connection', socket);
        socket.resume();
      }
    };
    socket.on('data', onData);
    socket.on('error', () => {});
  }

  async close(): Promise<void> {
    // gRPC clients first get a GOAWAY (written on the next turn), so they move to another
    // member at once rather than on a reset connection; then every socket is closed.
    this.grpcServer.close();
    await new Promise((resolve) => setImmediate(resolve));
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    const server = this.server;
    this.server = null;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    await this.http.close();
  }
}
