import type { GrpcCall } from '../../grpc/call.js';
import type { ServiceImplementation } from '../../grpc/server.js';
import { type EtcdContext, toEtcdError } from './context.js';
import { requireLeader } from './require-leader.js';
import { WatchSession } from './watch-session.js';

/**
 * etcd's Watch service: one bidirectional stream, one WatchSession. Like etcd, a client that
 * half-closes its side keeps receiving events (etcd's recvLoop returns nil on EOF and the
 * stream lives on); the session ends when the call is canceled, fails or closes.
 */

export {
  ERR_COMPACTED_REASON,
  ERR_DUPLICATE_WATCH_ID,
  ERR_EMPTY_WATCH_RANGE,
  setProgressReportInterval,
  WatchSession,
  type WatchSessionOptions,
} from './watch-session.js';
export type { WatchResponse } from './watch-wire.js';

// biome-ignore lint/suspicious/noExplicitAny: decoded protobuf messages.
type Msg = any;

export function watchService(ctx: EtcdContext): ServiceImplementation {
  return {
    Watch: (call: GrpcCall) => {
      let ended = false;
      const fail = (err: unknown) => {
        if (ended) return;
        ended = true;
        session.close();
        call.emit('error', toEtcdError(err));
      };
      const session = new WatchSession(ctx, {
        onResponse: (response) => (ended ? true : call.write(response)),
        onError: fail,
      });
      const stopLeaderCheck = requireLeader(ctx, call, fail);
      const close = () => {
        ended = true;
        stopLeaderCheck();
        session.close();
      };
      call.on('data', (request: Msg) => session.handleRequest(request));
      call.on('drain', () => session.resume());
      call.on('cancelled', close);
      call.on('error', close);
      call.on('close', close);
    },
  };
}
