import Fastify from 'fastify';
import { GrpcServer } from '../../grpc/server.js';
import type { ConclaveServer } from '../../server/server.js';
import { ETCD_API_VERSION, type EtcdContext } from './context.js';
import { registerEtcdGateway } from './gateway.js';
import { EtcdListener } from './listener.js';
import { addEtcdServices } from './services.js';

/** The etcd v3 API on one port: gRPC services plus the HTTP/1.1 JSON gateway. */
export async function startEtcdApi(
  server: ConclaveServer,
  host: string,
  port: number,
): Promise<{ port: number; close: () => Promise<void> }> {
  const ctx: EtcdContext = { server, version: ETCD_API_VERSION };
  // etcd's limit: 1.5 MiB requests plus gRPC's overhead allowance (embed.DefaultMaxRequestBytes + 512 KiB).
  const grpcServer = new GrpcServer({ maxReceiveMessageBytes: 2 * 1024 * 1024 });
  addEtcdServices(grpcServer, ctx);
  const http = Fastify({ logger: false });
  registerEtcdGateway(http, ctx);
  const listener = new EtcdListener(grpcServer, http);
  const bound = await listener.listen(host, port);
  return { port: bound, close: () => listener.close() };
}
