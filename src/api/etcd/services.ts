import type { GrpcServer } from '../../grpc/server.js';
import { clusterService } from './cluster.js';
import type { EtcdContext } from './context.js';
import { electionService } from './election.js';
import { kvService } from './kv.js';
import { leaseService } from './lease.js';
import { lockService } from './lock.js';
import { maintenanceService } from './maintenance.js';
import { etcdProtos } from './proto.js';
import { watchService } from './watch.js';

/** Every etcd service this server answers, added to one gRPC server. */
export function addEtcdServices(server: GrpcServer, ctx: EtcdContext): void {
  const { etcdserverpb, v3lockpb, v3electionpb } = etcdProtos();
  server.addService(etcdserverpb.KV.service, kvService(ctx));
  server.addService(etcdserverpb.Maintenance.service, maintenanceService(ctx));
  server.addService(etcdserverpb.Cluster.service, clusterService(ctx));
  server.addService(v3lockpb.Lock.service, lockService(ctx));
  server.addService(v3electionpb.Election.service, electionService(ctx));
  server.addService(etcdserverpb.Watch.service, watchService(ctx));
  server.addService(etcdserverpb.Lease.service, leaseService(ctx));
}
