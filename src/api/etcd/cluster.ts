import { Status } from '../../grpc/call.js';
import type { ServiceImplementation } from '../../grpc/server.js';
import type { RaftServerView } from '../../server/server.js';
import { type EtcdContext, etcdError, header, unary } from './context.js';
import { memberIdOf } from './ids.js';

/**
 * etcd's Cluster service over the Raft configuration.
 *
 * - Members are the voters and learners of this server's latest configuration, named from the
 *   server directory; ID is ids.ts memberIdOf(node id); peerURLs `http://<server RPC address>`.
 * - clientURLs: the etcd address each server published in the directory when it joined. For
 *   a server that published none, the member answering uses the authority the caller dialled
 *   (itself) or the host of the peer's RPC address with this member's etcd port.
 * - MemberRemove removes the server from the configuration (forwarded to the leader).
 * - MemberPromote: Conclave's leader promotes a learner itself once its log has caught up
 *   (LeaderDuties), so promotion is not a separate command here: a learner that is in sync is
 *   promoted within about two seconds, and MemberPromote waits for that; a learner that the
 *   leader does not see in sync gets etcd's ErrLearnerNotReady.
 * - MemberAdd and MemberUpdate are refused with FAILED_PRECONDITION: a Conclave server joins by
 *   starting with -retry-join (it announces its own id, name and address, and enters as a
 *   learner), and its address changes when it restarts with another one; there is no way to
 *   pre-register a member by peer URL, which is what these calls do.
 */

// biome-ignore lint/suspicious/noExplicitAny: decoded protobuf messages.
type Msg = any;

export const ERR_MEMBER_NOT_FOUND = () => etcdError(Status.NOT_FOUND, 'etcdserver: member not found');
export const ERR_MEMBER_NOT_LEARNER = () =>
  etcdError(Status.FAILED_PRECONDITION, 'etcdserver: can only promote a learner member');
export const ERR_LEARNER_NOT_READY = () =>
  etcdError(
    Status.FAILED_PRECONDITION,
    'etcdserver: can only promote a learner member which is in sync with leader',
  );

/** How long MemberPromote waits for the leader to promote a caught-up learner. */
const PROMOTE_WAIT_MS = 3500;
/** etcd's readyPercent: a learner is in sync when its log holds 90% of the leader's. */
const LEARNER_READY_RATIO = 0.9;

const MEMBERSHIP_BY_JOIN =
  'Conclave servers join by starting with -retry-join <address of a member> (they enter as ' +
  'learners and are promoted once caught up); members cannot be added or updated by peer URL';

export interface Member {
  ID: string;
  name: string;
  peerURLs: string[];
  clientURLs: string[];
  isLearner: boolean;
}

/** host:port → [host, port]; IPv6 hosts keep their brackets. */
function splitHostPort(address: string): [string, string] {
  const at = address.lastIndexOf(':');
  return at < 0 ? [address, ''] : [address.slice(0, at), address.slice(at + 1)];
}

export function memberOf(ctx: EtcdContext, view: RaftServerView, authority: string): Member {
  const self = view.id === ctx.server.id;
  const [, etcdPort] = splitHostPort(authority);
  const [peerHost] = splitHostPort(view.address);
  let client = view.etcd;
  if (!client && self && authority !== '') client = authority;
  else if (!client && view.address !== '' && etcdPort !== '') client = `${peerHost}:${etcdPort}`;
  return {
    ID: memberIdOf(view.id),
    name: view.name,
    peerURLs: view.address ? [`http://${view.address}`] : [],
    clientURLs: client ? [`http://${client}`] : [],
    isLearner: !view.voter,
  };
}

export function members(ctx: EtcdContext, authority: string, without?: string): Member[] {
  return ctx.server
    .raftConfiguration()
    .servers.filter((s) => s.id !== without)
    .map((s) => memberOf(ctx, s, authority));
}

/** The configuration member with this etcd member id. */
export function findMember(ctx: EtcdContext, id: unknown): RaftServerView | undefined {
  const wanted = String(id ?? '');
  return ctx.server.raftConfiguration().servers.find((s) => memberIdOf(s.id) === wanted);
}

const authorityOf = (call: { getHost(): string }): string => {
  try {
    return call.getHost();
  } catch {
    return '';
  }
};

export async function memberList(ctx: EtcdContext, r: Msg, authority: string): Promise<Msg> {
  if (r.linearizable) await ctx.server.readBarrier('default');
  return { header: header(ctx), members: members(ctx, authority) };
}

export async function memberRemove(ctx: EtcdContext, r: Msg, authority: string): Promise<Msg> {
  const target = findMember(ctx, r.ID);
  if (!target) throw ERR_MEMBER_NOT_FOUND();
  await ctx.server.removePeer(target.id);
  return { header: header(ctx), members: members(ctx, authority, target.id) };
}

export async function memberPromote(ctx: EtcdContext, r: Msg, authority: string): Promise<Msg> {
  const target = findMember(ctx, r.ID);
  if (!target) throw ERR_MEMBER_NOT_FOUND();
  if (target.voter) throw ERR_MEMBER_NOT_LEARNER();
  if (ctx.server.isLeader()) {
    // The leader knows the learner's progress: refuse at once when it is behind, as etcd does.
    const s = ctx.server.raftStatus();
    const p = s.progress[target.id];
    if (!p?.recentActive || p.match < s.commit * LEARNER_READY_RATIO) throw ERR_LEARNER_NOT_READY();
  }
  const end = Date.now() + PROMOTE_WAIT_MS;
  for (;;) {
    const now = findMember(ctx, r.ID);
    if (!now) throw ERR_MEMBER_NOT_FOUND();
    if (now.voter) return { header: header(ctx), members: members(ctx, authority) };
    if (Date.now() >= end) throw ERR_LEARNER_NOT_READY();
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export function clusterService(ctx: EtcdContext): ServiceImplementation {
  const refuse = async (): Promise<Msg> => {
    throw etcdError(Status.FAILED_PRECONDITION, `etcdserver: ${MEMBERSHIP_BY_JOIN}`);
  };
  return {
    MemberList: unary((r: Msg, call) => memberList(ctx, r, authorityOf(call))),
    MemberRemove: unary((r: Msg, call) => memberRemove(ctx, r, authorityOf(call))),
    MemberPromote: unary((r: Msg, call) => memberPromote(ctx, r, authorityOf(call))),
    MemberAdd: unary(refuse),
    MemberUpdate: unary(refuse),
  };
}
