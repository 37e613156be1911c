import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { loadSync, type Options } from '@grpc/proto-loader';

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

let cached: { etcdserverpb: Loaded; v3lockpb: Loaded; v3electionpb: Loaded } | null = null;

export function etcdProtos(): { etcdserverpb: Loaded; v3lockpb: Loaded; v3electionpb: Loaded } {
  if (cached) return cached;
  const rpc = grpc.loadPackageDefinition(
    loadSync(join(ETCD_PROTO_DIR, 'rpc.proto'), LOADER_OPTIONS),
  ) as Loaded;
  const lock = grpc.loadPackageDefinition(
    loadSync(join(OWN_PROTO_DIR, 'v3lock.proto'), { ...LOADER_OPTIONS, includeDirs: [ETCD_PROTO_DIR] }),
  ) as Loaded;
  const election = grpc.loadPackageDefinition(
    loadSync(join(OWN_PROTO_DIR, 'v3election.proto'), { ...LOADER_OPTIONS, includeDirs: [ETCD_PROTO_DIR] }),
  ) as Loaded;
  cached = { etcdserverpb: rpc.etcdserverpb, v3lockpb: lock.v3lockpb, v3electionpb: election.v3electionpb };
  return cached;
}

export { ETCD_PROTO_DIR };
