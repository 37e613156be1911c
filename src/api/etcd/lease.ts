import { type GrpcCall, Status } from '../../grpc/call.js';
import type { ServiceImplementation } from '../../grpc/server.js';
import type { ConclaveServer } from '../../server/server.js';
import {
  type EtcdContext,
  etcdError,
  header,
  int64,
  type ResponseHeader,
  toEtcdError,
  unary,
} from './context.js';
import { KeepAliveBatcher } from './keepalive-batcher.js';
import { expect } from './kv.js';
import { requireLeader } from './require-leader.js';

/**
 * etcd's Lease service: LeaseGrant, LeaseRevoke, LeaseKeepAlive, LeaseTimeToLive, LeaseLeases.
 * TTLs are seconds on the wire and ms in the store. Grants, revokes and keep-alives are
 * replicated commands; expiry is proposed by the leader (leader-duties.ts). The plain async
 * functions are transport-independent (an HTTP gateway can call them).
 */

// biome-ignore lint/suspicious/noExplicitAny: decoded protobuf messages.
type Msg = any;

/** etcd lease.MaxLeaseTTL: 9,000,000,000 s. */
export const MAX_LEASE_TTL_SECONDS = 9_000_000_000;

/**
 * etcd's minimum lease TTL (etcdserver/server.go): minTTL = (3 * electionTicks / 2) heartbeats,
 * rounded up to whole seconds (lessor MinLeaseTTL); a shorter grant is raised to it. With
 * etcd's defaults, which are also Conclave's (100 ms ticks, 10 election ticks), that is
 * ceil(1.5 s) = 2 s.
 */
export function minLeaseTtlSeconds(tickMs = 100, electionTicks = 10): number {
  return Math.ceil((Math.floor((3 * electionTicks) / 2) * tickMs) / 1000);
}

export const MIN_LEASE_TTL_SECONDS = minLeaseTtlSeconds();

const seconds = (ms: number): string => String(Math.ceil(ms / 1000));

export async function leaseGrant(ctx: EtcdContext, r: Msg): Promise<Msg> {
  const requested = int64(r?.TTL, 'TTL');
  const id = int64(r?.ID, 'ID');
  if (requested > MAX_LEASE_TTL_SECONDS)
    throw etcdError(Status.OUT_OF_RANGE, 'etcdserver: too large lease TTL');
  // etcd lessor.Grant: a TTL below the minimum (zero and negative included) is raised to it.
  const ttl = Math.max(requested, MIN_LEASE_TTL_SECONDS);
  const result = expect(
    await ctx.server.write({ type: 'leaseGrant', id, ttlMs: ttl * 1000, behavior: 'delete' }),
    'leaseGrant',
  );
  return {
    header: header(ctx, result.revision),
    ID: String(result.id),
    TTL: seconds(result.ttlMs),
    error: '',
  };
}

/** Revoking deletes the lease's keys in the same revision; etcd: "requested lease not found". */
export async function leaseRevoke(ctx: EtcdContext, r: Msg): Promise<Msg> {
  const id = int64(r?.ID, 'ID');
  const result = expect(await ctx.server.write({ type: 'leaseRevoke', id }), 'leaseRevoke');
  return { header: header(ctx, result.revision) };
}

const batchers = new WeakMap<ConclaveServer, KeepAliveBatcher>();

function batcherFor(server: ConclaveServer): KeepAliveBatcher {
  let batcher = batchers.get(server);
  if (!batcher) {
    batcher = new KeepAliveBatcher({
      renew: async (ids) => {
        const result = expect(await server.write({ type: 'leaseKeepAlive', ids }), 'leaseKeepAlive');
        return new Map(result.leases.map((l) => [l.id, l.found ? l.ttlMs : -1]));
      },
    });
    batchers.set(server, batcher);
  }
  return batcher;
}

/**
 * One keep-alive: {ID, TTL} with the granted TTL, or TTL 0 when the lease does not exist (etcd
 * answers a missing lease that way, not with an error). Other failures (no leader) throw.
 */
export async function leaseKeepAliveOnce(
  ctx: EtcdContext,
  id: number,
): Promise<{ header: ResponseHeader; ID: string; TTL: string }> {
  // etcd fills the header before renewing, so its revision never runs ahead of the renewal.
  const hdr = header(ctx);
  const ttlMs = await batcherFor(ctx.server).keepAlive(id);
  return { header: hdr, ID: String(id), TTL: ttlMs < 0 ? '0' : seconds(ttlMs) };
}

/** etcd: TTL is the remaining time truncated to seconds, -1 when the lease does not exist. */
export async function leaseTimeToLive(ctx: EtcdContext, r: Msg): Promise<Msg> {
  const id = int64(r?.ID, 'ID');
  await ctx.server.readBarrier('default');
  const store = ctx.server.store;
  const lease = store.lease(id);
  if (!lease) return { header: header(ctx), ID: String(id), TTL: '-1', grantedTTL: '0', keys: [] };
  const remainingMs = store.leaseRemainingMs(id, Date.now());
  return {
    header: header(ctx),
    ID: String(id),
    TTL: String(Math.floor(remainingMs / 1000)),
    grantedTTL: seconds(lease.ttlMs),
    keys: r?.keys ? lease.keys.map((k) => Buffer.from(k)) : [],
  };
}

export async function leaseLeases(ctx: EtcdContext): Promise<Msg> {
  await ctx.server.readBarrier('default');
  const leases = ctx.server.store.leases().map((l) => ({ ID: String(l.id) }));
  return { header: header(ctx), leases };
}

/** Keep-alives answered in request order; a stream that floods us is paused, not buffered. */
const MAX_IN_FLIGHT = 1024;

function keepAliveStream(ctx: EtcdContext, call: GrpcCall): void {
  let chain: Promise<void> = Promise.resolve();
  let inFlight = 0;
  let ended = false;
  const fail = (err: unknown) => {
    if (ended) return;
    ended = true;
    call.emit('error', toEtcdError(err));
  };
  const stopLeaderCheck = requireLeader(ctx, call, fail);
  call.on('data', (request: Msg) => {
    let reply: Promise<Msg>;
    try {
      reply = leaseKeepAliveOnce(ctx, int64(request?.ID, 'ID'));
    } catch (err) {
      reply = Promise.reject(err);
    }
    reply.catch(() => {}); // observed below, in order
    if (++inFlight >= MAX_IN_FLIGHT) call.pause();
    chain = chain
      .then(async () => {
        const response = await reply;
        if (!ended) call.write(response);
      })
      .catch(fail)
      .finally(() => {
        if (--inFlight === MAX_IN_FLIGHT / 2) call.resume();
      });
  });
  // etcd: a client that closes its side ends the stream with OK once earlier answers are out.
  call.on('end', () => {
    void chain.then(() => {
      if (ended) return;
      stop();
      call.end();
    });
  });
  const stop = () => {
    ended = true;
    stopLeaderCheck();
  };
  call.on('cancelled', stop);
  call.on('close', stop);
}

export function leaseService(ctx: EtcdContext): ServiceImplementation {
  return {
    LeaseGrant: unary((r: Msg) => leaseGrant(ctx, r)),
    LeaseRevoke: unary((r: Msg) => leaseRevoke(ctx, r)),
    LeaseKeepAlive: (call: GrpcCall) => keepAliveStream(ctx, call),
    LeaseTimeToLive: unary((r: Msg) => leaseTimeToLive(ctx, r)),
    LeaseLeases: unary(() => leaseLeases(ctx)),
  };
}
