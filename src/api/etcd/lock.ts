import { Status } from '../../grpc/call.js';
import type { ServiceImplementation } from '../../grpc/server.js';
import { type EtcdContext, etcdError, header, int64 } from './context.js';
import { expect } from './kv.js';
import {
  bytes,
  CANCELLED,
  cancelSignal,
  candidateKey,
  catchUp,
  dropCandidateLater,
  firstCreatedOp,
  prefixOf,
  recipeUnary,
  sessionLease,
  waitForTurn,
} from './recipes.js';

/**
 * etcd's v3lock service (server/etcdserver/api/v3lock), which runs concurrency.Mutex inside
 * the server with the caller's lease:
 *
 * - Lock puts `<name>/<lease hex>` (empty value, attached to the lease) if absent, in one txn
 *   that also reads the oldest key under `<name>/`; if that is ours the lock is held, else it
 *   waits for the deletion of the key created just before ours, until none older is left.
 *   A key that already exists for this lease is reused (re-entrant per lease, as etcd).
 * - lease 0: a fresh lease with etcd's default session TTL (60 s), never kept alive, as
 *   concurrency.NewSession does when the server's lock service is called without a lease.
 * - A missing lease fails the txn: "etcdserver: requested lease not found".
 * - Our key deleted while waiting (lease expired or revoked, or deleted by hand): fails with
 *   etcd's concurrency.ErrSessionExpired text "mutex: session is expired" (etcd finds out after
 *   the older keys are gone; we stop at once).
 * - The client cancelling the call stops the wait and deletes our key, as etcd's Mutex.Lock
 *   does ("release lock key if wait failed": m.Unlock with the client's own context; checked
 *   against etcd 3.4: the key is gone right after the cancel). The delete is guarded by the
 *   key's create revision, so a newer incarnation is never removed.
 * - Unlock deletes the key, whoever holds it (etcd: a plain Delete).
 *
 * Errors come back as etcd's do from this service: status UNKNOWN with etcd's text (recipeError).
 */

// biome-ignore lint/suspicious/noExplicitAny: decoded protobuf messages.
type Msg = any;

export const ERR_SESSION_EXPIRED = () => etcdError(Status.UNKNOWN, 'mutex: session is expired');

export async function lock(ctx: EtcdContext, r: Msg, signal: AbortSignal): Promise<Msg> {
  const prefix = prefixOf(bytes(r.name));
  const lease = await sessionLease(ctx, int64(r.lease, 'lease'));
  const key = candidateKey(prefix, lease);
  // concurrency.Mutex.tryAcquire: put if absent (else read ours), and read the current owner.
  const result = expect(
    await ctx.server.write({
      type: 'txn',
      compare: [{ key, target: 'create', result: 'equal', value: 0 }],
      success: [{ type: 'put', key, value: new Uint8Array(0), lease }, firstCreatedOp(prefix)],
      failure: [{ type: 'range', key }, firstCreatedOp(prefix)],
    }),
    'txn',
  );
  const mine = result.responses[0];
  const owner = result.responses[1];
  let myRevision = result.revision;
  if (!result.succeeded && mine?.type === 'range' && mine.kvs[0]) myRevision = mine.kvs[0].createRevision;
  const ownerKv = owner?.type === 'range' ? owner.kvs[0] : undefined;
  if (ownerKv === undefined || ownerKv.createRevision === myRevision)
    return { header: header(ctx, result.revision), key };

  if (signal.aborted) {
    dropCandidateLater(ctx, key, myRevision);
    throw CANCELLED();
  }
  await catchUp(ctx, result.revision);
  let turn: Awaited<ReturnType<typeof waitForTurn>>;
  try {
    turn = await waitForTurn(ctx, signal, prefix, key, myRevision);
  } catch (err) {
    dropCandidateLater(ctx, key, myRevision);
    throw err;
  }
  if (turn === 'lost') throw ERR_SESSION_EXPIRED();
  return { header: header(ctx), key };
}

export async function unlock(ctx: EtcdContext, r: Msg): Promise<Msg> {
  const result = expect(await ctx.server.write({ type: 'deleteRange', key: bytes(r.key) }), 'deleteRange');
  return { header: header(ctx, result.revision) };
}

export function lockService(ctx: EtcdContext): ServiceImplementation {
  return {
    Lock: recipeUnary((r: Msg, call) => lock(ctx, r, cancelSignal(call))),
    Unlock: recipeUnary((r: Msg) => unlock(ctx, r)),
  };
}
