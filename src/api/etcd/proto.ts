import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { loadSync, type Options, type PackageDefinition } from '@grpc/proto-loader';

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

// biome-ignore lint/suspicious/noExplicitAny: grpc's loaded packages are untyped by nature.
type Loaded = any;

let definition: PackageDefinition | null = null;
let cached: { etcdserverpb: Loaded; v3lockpb: Loaded; v3electionpb: Loaded } | null = null;

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

export function etcdProtos(): { etcdserverpb: Loaded; v3lockpb: Loaded; v3electionpb: Loaded } {
  if (cached) return cached;
  const loaded = grpc.loadPackageDefinition(etcdProtoDefinition()) as Loaded;
  cached = {
    etcdserverpb: loaded.etcdserverpb,
    v3lockpb: loaded.v3lockpb,
    v3electionpb: loaded.v3electionpb,
  };
  return cached;
}

export { ETCD_PROTO_DIR, OWN_PROTO_DIR };
