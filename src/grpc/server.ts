import type { Socket } from 'node:net';
import type { MethodDefinition } from './call.js';
import { type ConnectionLimits, Http2Connection, type MethodHandler } from './connection.js';

/**
 * A gRPC server on sockets handed to it (the etcd port's listener sniffs each connection and
 * passes the HTTP/2 ones here). Services are added as with @grpc/grpc-js: a service definition
 * from @grpc/proto-loader (paths, serializers) and an object of handlers by method name.
 *
 * Why not grpc-js's server: on the 2-core machine the benchmarks run on, grpc-js and node:http2
 * together were about 60 % of the CPU an etcd Range cost us; this connection does the same
 * protocol work on the raw socket in a fraction of it (docs/benchmarks.md).
 */

export type ServiceDefinition = Record<string, MethodDefinition>;
// biome-ignore lint/suspicious/noExplicitAny: handlers of every call shape.
export type ServiceImplementation = Record<string, (...args: any[]) => void>;

export class GrpcServer {
  private readonly methods = new Map<string, MethodHandler>();
  private readonly connections = new Set<Http2Connection>();
  private readonly limits: ConnectionLimits;

  constructor(limits: Partial<ConnectionLimits> = {}) {
    this.limits = { maxReceiveMessageBytes: 4 * 1024 * 1024, maxConcurrentStreams: 10_000, ...limits };
  }

  addService(service: ServiceDefinition, implementation: ServiceImplementation): void {
    for (const [name, definition] of Object.entries(service)) {
      const handler = implementation[name];
      if (!handler) continue; // not implemented: callers get UNIMPLEMENTED
      if (this.methods.has(definition.path)) throw new Error(`method ${definition.path} added twice`);
      this.methods.set(definition.path, { definition, handler });
    }
  }

  /** Serve HTTP/2 on a socket whose first bytes (the connection preface) are still unread. */
  handleConnection(socket: Socket): void {
    const connection = new Http2Connection(socket, this.methods, this.limits, (c) =>
      this.connections.delete(c),
    );
    this.connections.add(connection);
  }

  /** Tell every client we are going away, then close the connections. */
  close(): void {
    for (const c of this.connections) c.goAway();
    setImmediate(() => {
      for (const c of this.connections) c.destroy();
      this.connections.clear();
    });
  }
}
