import type * as grpc from '@grpc/grpc-js';
import { type EtcdContext, header, unary } from './context.js';
import { memberIdOf } from './ids.js';

// biome-ignore lint/suspicious/noExplicitAny: decoded protobuf messages.
type Msg = any;

/** etcd's Maintenance service: Status. */
export function status(ctx: EtcdContext): Msg {
  const { server } = ctx;
  const s = server.raftStatus();
  const store = server.store.status();
  const leader = server.leaderId();
  return {
    header: header(ctx),
    version: ctx.version,
    dbSize: String(store.storedBytes),
    dbSizeInUse: String(store.storedBytes),
    leader: leader ? memberIdOf(leader) : '0',
    raftIndex: String(s.commit),
    raftTerm: String(s.term),
    raftAppliedIndex: String(s.applied),
    errors: store.quotaAlarm ? ['memberID:' + memberIdOf(server.id) + ' alarm:NOSPACE '] : [],
    isLearner: s.config.learners.includes(server.id),
  };
}

export function maintenanceService(ctx: EtcdContext): grpc.UntypedServiceImplementation {
  return {
    Status: unary(async () => status(ctx)),
  };
}
