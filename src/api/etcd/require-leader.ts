import type { GrpcCall, ServiceError } from '../../grpc/call.js';
import { ERR_NO_LEADER, type EtcdContext } from './context.js';

/**
 * etcd's require-leader streams (metadata `hasleader: true`, set by clientv3.WithRequireLeader,
 * e.g. by `etcdctl watch` and lease keep-alives): refused while this server knows no leader,
 * and failed with "etcdserver: no leader" once it has had none for three election timeouts
 * (etcd's monitorLeader, maxNoLeaderCnt = 3), so a client on a cut-off member moves to one that
 * still sees the cluster's writes instead of waiting on a stream that has gone quiet.
 */

/** etcd checks once per election timeout: 1 s with default timing. */
const CHECK_EVERY_MS = 1000;
const MAX_NO_LEADER_CHECKS = 3;

/** Returns a stop function; calls `fail` (at most once) when the stream must end. */
export function requireLeader(
  ctx: EtcdContext,
  call: GrpcCall,
  fail: (error: ServiceError) => void,
): () => void {
  if (call.metadata.get('hasleader')[0] !== 'true') return () => {};
  if (ctx.server.leaderId() === '') {
    fail(ERR_NO_LEADER());
    return () => {};
  }
  let misses = 0;
  const timer = setInterval(() => {
    misses = ctx.server.leaderId() === '' ? misses + 1 : 0;
    if (misses < MAX_NO_LEADER_CHECKS) return;
    clearInterval(timer);
    fail(ERR_NO_LEADER());
  }, CHECK_EVERY_MS);
  timer.unref();
  return () => clearInterval(timer);
}
