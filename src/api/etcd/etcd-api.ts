import * as grpc from '@grpc/grpc-js';
import Fastify from 'fastify';
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
  const grpcServer = new grpc.Server({
    'grpc.max_receive_message_length': 2 * 1024 * 1024,
    'grpc.keepalive_permit_without_calls': 1,
    // Channelz keeps per-call statistics for grpc's own debugging service, which we do not serve.
    'grpc.enable_channelz': 0,
  });
  addEtcdServices(grpcServer, ctx);
  const http = Fastify({ logger: false });
  registerEtcdGateway(http, ctx);
  const listener = new EtcdListener(grpcServer, http);
  const bound = await listener.listen(host, port);
  return { port: bound, close: () => listener.close() };
}
