import { type GrpcCall, Status } from '../../grpc/call.js';
import type { ServiceImplementation } from '../../grpc/server.js';
import type { KeyValue } from '../../store/index.js';
import { type EtcdContext, etcdError, header, int64, toEtcdKv } from './context.js';
import { expect } from './kv.js';
import {
  bytes,
  CANCELLED,
  cancelSignal,
  candidateKey,
  catchUp,
  dropCandidate,
  dropCandidateLater,
  firstCreated,
  prefixOf,
  prefixRange,
  recipeError,
  recipeUnary,
  sessionLease,
  until,
  waitForTurn,
} from './recipes.js';

/**
 * etcd's v3election service (server/etcdserver/api/v3election), which runs
 * concurrency.Election inside the server:
 *
 * - Campaign puts `<name>/<lease hex>` with the value (attached to the lease) if absent; if the
 *   key exists it is reused and, when its value differs, proclaimed. It then waits until no key
 *   under `<name>/` is older, and answers the LeaderKey {name, key, rev: create revision,
 *   lease} with the header of the campaign txn. lease 0: a fresh 60 s lease, as NewSession.
 *   Cancelled by the client: the key is deleted (etcd resigns with the client's context). Our
 *   key deleted while waiting (where etcd would go on waiting and then claim a leadership it
 *   no longer has): "etcdserver: requested lease not found" if its lease is gone, else
 *   "election: not leader".
 * - Proclaim puts the new value if the key still has the campaign's create revision, else
 *   "election: not leader" (etcd's ErrElectionNotLeader). Like etcd it does not check that the
 *   key is still the oldest. It puts with the LeaderKey's lease (etcd's server would attach a
 *   fresh session lease when that lease is 0; we keep 0).
 * - Resign deletes the key if it has the campaign's create revision; no error otherwise.
 * - Leader: the oldest key under `<name>/`, or "election: no leader" (ErrElectionNoLeader).
 * - Observe: the current leader, then every value it proclaims, then the next leader when it
 *   goes; with no leader it waits for one. Consecutive puts applied in one batch on this server
 *   are all sent; puts missed across a store replacement (snapshot install) collapse into the
 *   latest value, as etcd's Observe promises only the most recent one.
 * - No LeaderKey in Proclaim/Resign: etcd's ErrMissingLeaderKey text.
 *
 * Errors come back as etcd's do from this service: status UNKNOWN with etcd's text (recipeError;
 * checked against etcd 3.4).
 */

// biome-ignore lint/suspicious/noExplicitAny: decoded protobuf messages.
type Msg = any;

export const ERR_NOT_LEADER = () => etcdError(Status.UNKNOWN, 'election: not leader');
export const ERR_NO_LEADER = () => etcdError(Status.UNKNOWN, 'election: no leader');
export const ERR_MISSING_LEADER_KEY = () => etcdError(Status.UNKNOWN, '"leader" field must be provided');
const ERR_LEASE_NOT_FOUND = () => etcdError(Status.UNKNOWN, 'etcdserver: requested lease not found');

interface LeaderKey {
  name: Uint8Array;
  key: Uint8Array;
  rev: number;
  lease: number;
}

function leaderKeyOf(r: Msg): LeaderKey {
  const leader = r.leader;
  if (leader === null || leader === undefined) throw ERR_MISSING_LEADER_KEY();
  return {
    name: bytes(leader.name),
    key: bytes(leader.key),
    rev: int64(leader.rev, 'rev'),
    lease: int64(leader.lease, 'lease'),
  };
}

/** Put the value if the key is still the incarnation created at `rev`; false when it is not. */
async function proclaimAs(
  ctx: EtcdContext,
  key: Uint8Array,
  rev: number,
  lease: number,
  value: Uint8Array,
): Promise<{ revision: number; succeeded: boolean }> {
  const result = expect(
    await ctx.server.write({
      type: 'txn',
      compare: [{ key, target: 'create', result: 'equal', value: rev }],
      success: [{ type: 'put', key, value, lease }],
      failure: [],
    }),
    'txn',
  );
  return { revision: result.revision, succeeded: result.succeeded };
}

export async function campaign(ctx: EtcdContext, r: Msg, signal: AbortSignal): Promise<Msg> {
  const name = bytes(r.name);
  const value = bytes(r.value);
  const prefix = prefixOf(name);
  const lease = await sessionLease(ctx, int64(r.lease, 'lease'));
  const key = candidateKey(prefix, lease);
  const result = expect(
    await ctx.server.write({
      type: 'txn',
      compare: [{ key, target: 'create', result: 'equal', value: 0 }],
      success: [{ type: 'put', key, value, lease }],
      failure: [{ type: 'range', key }],
    }),
    'txn',
  );
  let rev = result.revision;
  let revision = result.revision;
  if (!result.succeeded) {
    const existing = result.responses[0]?.type === 'range' ? result.responses[0].kvs[0] : undefined;
    if (existing === undefined) throw ERR_NOT_LEADER(); // deleted in between: cannot happen in one txn
    rev = existing.createRevision;
    if (!Buffer.from(existing.value).equals(Buffer.from(value))) {
      const proclaimed = await proclaimAs(ctx, key, rev, lease, value);
      if (!proclaimed.succeeded) {
        await dropCandidate(ctx, key, rev);
        throw ERR_NOT_LEADER();
      }
      revision = proclaimed.revision;
    }
  }
  if (signal.aborted) {
    dropCandidateLater(ctx, key, rev);
    throw CANCELLED();
  }
  await catchUp(ctx, revision);
  let turn: Awaited<ReturnType<typeof waitForTurn>>;
  try {
    turn = await waitForTurn(ctx, signal, prefix, key, rev);
  } catch (err) {
    dropCandidateLater(ctx, key, rev);
    throw err;
  }
  if (turn === 'lost')
    throw ctx.server.store.lease(lease) === null ? ERR_LEASE_NOT_FOUND() : ERR_NOT_LEADER();
  return {
    header: header(ctx, result.revision),
    leader: { name, key, rev: String(rev), lease: String(lease) },
  };
}

export async function proclaim(ctx: EtcdContext, r: Msg): Promise<Msg> {
  const leader = leaderKeyOf(r);
  const result = await proclaimAs(ctx, leader.key, leader.rev, leader.lease, bytes(r.value));
  if (!result.succeeded) throw ERR_NOT_LEADER();
  return { header: header(ctx, result.revision) };
}

export async function resign(ctx: EtcdContext, r: Msg): Promise<Msg> {
  const leader = leaderKeyOf(r);
  const result = await dropCandidate(ctx, leader.key, leader.rev);
  return { header: header(ctx, result.revision) };
}

export async function leader(ctx: EtcdContext, r: Msg): Promise<Msg> {
  await ctx.server.readBarrier('default');
  const kv = firstCreated(ctx.server.store, prefixOf(bytes(r.name)));
  if (kv === null) throw ERR_NO_LEADER();
  return { header: header(ctx), kv: toEtcdKv(kv) };
}

/** Observe: stream the leader and its proclaimed values until the client goes away. */
export async function observe(
  ctx: EtcdContext,
  r: Msg,
  signal: AbortSignal,
  send: (message: Msg) => void,
): Promise<void> {
  const prefix = prefixOf(bytes(r.name));
  await ctx.server.readBarrier('default');
  let sent: KeyValue | null = null;
  const sendKv = (kv: KeyValue) => {
    sent = kv;
    send({ header: header(ctx), kv: toEtcdKv(kv) });
  };
  for (;;) {
    // The current leader; with none, wait for a key under the prefix.
    const current = await until<KeyValue>(ctx, signal, (store) => {
      const kv = firstCreated(store, prefix);
      return kv ? { done: kv } : { watch: [prefixRange(prefix)] };
    });
    const s = sent as KeyValue | null;
    if (s === null || !sameVersion(s, current)) sendKv(current);
    // Follow it: every put on its key is a proclamation; its deletion ends its term.
    const leaderKey = current.key;
    await until<null>(ctx, signal, (store, events) => {
      for (const e of events) {
        if (!Buffer.from(e.kv.key).equals(Buffer.from(leaderKey))) continue;
        if (e.type === 'delete' || e.kv.createRevision !== current.createRevision) return { done: null };
        sendKv(e.kv);
      }
      const now = store.get(leaderKey);
      if (now === null || now.createRevision !== current.createRevision) return { done: null };
      const last = sent as KeyValue | null;
      if (last === null || now.modRevision > last.modRevision) sendKv(now);
      return { watch: [{ key: leaderKey }] };
    });
  }
}

function sameVersion(a: KeyValue, b: KeyValue): boolean {
  return a.modRevision === b.modRevision && Buffer.from(a.key).equals(Buffer.from(b.key));
}

export function electionService(ctx: EtcdContext): ServiceImplementation {
  return {
    Campaign: recipeUnary((r: Msg, call) => campaign(ctx, r, cancelSignal(call))),
    Proclaim: recipeUnary((r: Msg) => proclaim(ctx, r)),
    Leader: recipeUnary((r: Msg) => leader(ctx, r)),
    Resign: recipeUnary((r: Msg) => resign(ctx, r)),
    Observe: (call: GrpcCall) => {
      const signal = cancelSignal(call);
      observe(ctx, call.request, signal, (m) => call.write(m)).then(
        () => call.end(),
        (err: unknown) => {
          if (signal.aborted) return; // the client left: nobody to tell
          call.emit('error', recipeError(err));
        },
      );
    },
  };
}
