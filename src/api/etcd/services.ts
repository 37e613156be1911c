import type { GrpcServer } from '../../grpc/server.js';
import { clusterService } from './cluster.js';
import type { EtcdContext } from './context.js';
import { electionService } from './election.js';
import { kvService } from './kv.js';
import { leaseService } from './lease.js';
import { lockService } from './lock.js';
import { maintenanceService } from './maintenance.js';
import { etcdService } from './proto.js';
import { watchService } from './watch.js';

/** Every etcd service this server answers, added to one gRPC server. */
export function addEtcdServices(server: GrpcServer, ctx: EtcdContext): void {
  server.addService(etcdService('etcdserverpb.KV'), kvService(ctx));
  server.addService(etcdService('etcdserverpb.Maintenance'), maintenanceService(ctx));
  server.addService(etcdService('etcdserverpb.Cluster'), clusterService(ctx));
  server.addService(etcdService('v3lockpb.Lock'), lockService(ctx));
  server.addService(etcdService('v3electionpb.Election'), electionService(ctx));
  server.addService(etcdService('etcdserverpb.Watch'), watchService(ctx));
  server.addService(etcdService('etcdserverpb.Lease'), leaseService(ctx));
}
