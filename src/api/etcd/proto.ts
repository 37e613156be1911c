import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadSync, type Options, type PackageDefinition, type ServiceDefinition } from '@grpc/proto-loader';

/**
 * etcd's service definitions. rpc.proto (with kv.proto and auth.proto) is loaded from the
 * installed `etcd3` package, which ships etcd's own files; we never copy them. The lock and
 * election services are not in that package, so `proto/v3lock.proto` and
 * `proto/v3election.proto` here are our own definitions of etcd's documented wire format.
 */

const require = createRequire(import.meta.url);
const ETCD_PROTO_DIR = join(dirname(require.resolve('etcd3/package.json')), 'proto');
const OWN_PROTO_DIR = join(dirname(fileURLToPath(import.meta.url)), 'proto');

/** Field names as in the .proto files; 64-bit integers as decimal strings (no precision loss). */
export const LOADER_OPTIONS: Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
};

let definition: PackageDefinition | null = null;

/**
 * All three files parsed once (about 50 ms): the gRPC services and the JSON gateway's schema
 * both read this one definition.
 */
export function etcdProtoDefinition(): PackageDefinition {
  definition ??= loadSync(['rpc.proto', 'v3lock.proto', 'v3election.proto'], {
    ...LOADER_OPTIONS,
    includeDirs: [ETCD_PROTO_DIR, OWN_PROTO_DIR],
  });
  return definition;
}

/**
 * One service's methods (paths, protobuf serializers, options) by full name, e.g.
 * 'etcdserverpb.KV'. Straight from proto-loader: the server needs no grpc-js to serve them.
 */
export function etcdService(name: string): ServiceDefinition {
  const service = etcdProtoDefinition()[name];
  if (!service || 'format' in service) throw new Error(`no service ${name} in etcd's protos`);
  return service as ServiceDefinition;
}

export { ETCD_PROTO_DIR, OWN_PROTO_DIR };
