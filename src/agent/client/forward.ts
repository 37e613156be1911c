import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { request } from 'node:http';
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { HttpError } from '../../api/consul/errors.js';
import { splitHostPort } from '../../transport/address.js';
import { NoServersError, type PooledServer, type ServerPool } from './server-pool.js';

/**
 * A client agent forwards what it does not answer itself to a server, as Consul's clients
 * forward RPCs: HTTP requests (blocking queries included, held as long as the server holds
 * them), DNS queries (UDP and TCP) and etcd gRPC connections (bytes, both ways).
 */

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'upgrade',
  'host',
  'content-length',
]);

/** One HTTP request to a server; a connection failure marks the server and tries another once. */
function forwardOnce(
  server: PooledServer,
  req: FastifyRequest,
  reply: FastifyReply,
  body: Buffer | undefined,
): Promise<{ status: number; headers: Record<string, string | string[]>; body: Buffer }> {
  const { host, port } = splitHostPort(server.http);
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) headers[k] = v;
  return new Promise((resolve, reject) => {
    const upstream = request({ host, port, method: req.method, path: req.url, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => {
        const out: Record<string, string | string[]> = {};
        for (const [k, v] of Object.entries(res.headers))
          if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
        resolve({ status: res.statusCode ?? 502, headers: out, body: Buffer.concat(chunks) });
      });
      res.on('error', reject);
    });
    upstream.on('error', reject);
    // The caller went away (a blocking query abandoned): stop waiting on the server too.
    reply.raw.once('close', () => {
      if (!reply.raw.writableFinished) upstream.destroy();
    });
    upstream.end(body && body.byteLength > 0 ? body : undefined);
  });
}

/** Forwards one request to a server (another one once if the first cannot be reached). */
export async function forwardRequest(
  pool: ServerPool,
  req: FastifyRequest,
  reply: FastifyReply,
  body = req.body as Buffer | undefined,
): Promise<FastifyReply> {
  {
    let lastError: unknown = null;
    for (let attempt = 0; attempt < 2; attempt++) {
      let server: PooledServer;
      try {
        server = pool.pick();
      } catch (err) {
        if (err instanceof NoServersError) throw new HttpError(500, err.message);
        throw err;
      }
      try {
        const res = await forwardOnce(server, req, reply, body);
        return reply.code(res.status).headers(res.headers).send(res.body);
      } catch (err) {
        lastError = err;
        pool.markFailed(server);
      }
    }
    throw new HttpError(
      500,
      `rpc error: failed to reach a server: ${(lastError as Error)?.message ?? lastError}`,
    );
  }
}

export function registerHttpForwarding(app: FastifyInstance, pool: ServerPool): void {
  app.all('/*', (req, reply) => forwardRequest(pool, req, reply));
}

/** DNS on a client: each query goes to a server's DNS port and the answer comes back as is. */
export async function startDnsForwarder(
  pool: ServerPool,
  host: string,
  port: number,
): Promise<{ port: number; close(): Promise<void> }> {
  const udp = createSocket(host.includes(':') ? 'udp6' : 'udp4');
  udp.on('message', (msg, rinfo) => {
    let server: PooledServer;
    try {
      server = pool.pick();
    } catch {
      return; // no server: the client times out and retries, as with an unreachable resolver
    }
    const target = splitHostPort(server.dns);
    const upstream: UdpSocket = createSocket(target.host.includes(':') ? 'udp6' : 'udp4');
    const timer = setTimeout(() => {
      pool.markFailed(server);
      upstream.close();
    }, 2000);
    upstream.once('message', (answer) => {
      clearTimeout(timer);
      upstream.close();
      udp.send(answer, rinfo.port, rinfo.address);
    });
    upstream.on('error', () => {
      clearTimeout(timer);
      upstream.close();
    });
    upstream.send(msg, target.port, target.host);
  });
  await new Promise<void>((resolve, reject) => {
    udp.once('error', reject);
    udp.bind(port, host, () => resolve());
  });
  const bound = udp.address().port;
  let tcp: Server;
  try {
    tcp = await startTcpForwarder(host, bound, () => pool.pick().dns);
  } catch (err) {
    udp.close();
    throw err;
  }
  return {
    port: bound,
    close: async () => {
      udp.close();
      await new Promise<void>((r) => tcp.close(() => r()));
    },
  };
}

/** Bytes both ways between each accepted connection and a server address chosen per connection. */
export function startTcpForwarder(host: string, port: number, target: () => string): Promise<Server> {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    let address: string;
    try {
      address = target();
    } catch {
      client.destroy();
      return;
    }
    const { host: h, port: p } = splitHostPort(address);
    const upstream = connect({ host: h, port: p });
    sockets.add(client);
    sockets.add(upstream);
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  const close = server.close.bind(server);
  server.close = (cb?: (err?: Error) => void) => {
    for (const s of sockets) s.destroy();
    return close(cb);
  };
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}
