import * as grpc from '@grpc/grpc-js';
import { etcdProtoDefinition } from '../../src/api/etcd/proto.js';

// biome-ignore lint/suspicious/noExplicitAny: grpc's loaded packages are untyped by nature.
type Loaded = any;

let cached: { etcdserverpb: Loaded; v3lockpb: Loaded; v3electionpb: Loaded } | null = null;

/** grpc-js client constructors for etcd's services, from the same definition the server serves. */
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
