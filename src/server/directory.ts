import { Packr } from 'msgpackr';
import type { ConfChange, Entry, NodeId } from '../raft/types.js';

/**
 * Who the servers are and where to reach them. Raft's configuration names servers by id only;
 * their names and RPC addresses ride in the log itself — the bootstrap entry's data and each
 * ConfChange's context (as etcd carries peer URLs in ConfChange.Context) — so every server
 * learns a new peer's address from the same entry that adds it, and a snapshot carries the
 * whole directory.
 */

export interface ServerInfo {
  id: NodeId;
  /** Consul's node name. */
  name: string;
  /** Server RPC address, host:port. */
  address: string;
  /** Its etcd v3 client address, host:port (etcd's clientURLs), when it serves one. */
  etcd?: string;
  /** Its Consul HTTP and DNS addresses, for client agents that forward to it. */
  http?: string;
  dns?: string;
  /** Its gossip (serf LAN) address, so servers and clients can join the pool through it. */
  serf?: string;
}

const packr = new Packr({ useRecords: false });

export class ServerDirectory {
  private readonly servers = new Map<NodeId, ServerInfo>();
  /** Set by the bootstrap entry; every server of one cluster shares it (the transport checks it). */
  clusterId = '';

  get(id: NodeId): ServerInfo | undefined {
    return this.servers.get(id);
  }

  all(): ServerInfo[] {
    return [...this.servers.values()];
  }

  /** Record what an entry says about servers. Idempotent: entries may be seen twice (appended, then applied). */
  observe(entry: Entry): void {
    if (entry.change) {
      if (entry.change.context && entry.change.context.byteLength > 0) {
        const info = decodeServerInfo(entry.change.context);
        if (info && info.id === entry.change.node) this.servers.set(info.id, info);
      }
    } else if (entry.config && entry.data.byteLength > 0) {
      const boot = decodeBootstrap(entry.data);
      if (boot) {
        this.clusterId = boot.clusterId;
        for (const s of boot.servers) this.servers.set(s.id, s);
      }
    }
  }

  /** A learned address (a join request, a discovery answer) before any entry carries it. */
  remember(info: ServerInfo): void {
    this.servers.set(info.id, info);
  }

  toJSON(): { clusterId: string; servers: ServerInfo[] } {
    return { clusterId: this.clusterId, servers: this.all() };
  }

  load(state: { clusterId: string; servers: ServerInfo[] }): void {
    this.clusterId = state.clusterId;
    for (const s of state.servers) this.servers.set(s.id, s);
  }
}

function plain(info: ServerInfo): ServerInfo {
  const out: ServerInfo = { id: info.id, name: info.name, address: info.address };
  if (info.etcd) out.etcd = info.etcd;
  return out;
}

export function encodeServerInfo(info: ServerInfo): Uint8Array {
  return packr.pack(plain(info));
}

function isServerInfo(v: unknown): v is ServerInfo {
  const o = v as Partial<ServerInfo> | null;
  return (
    typeof o === 'object' &&
    o !== null &&
    typeof o.id === 'string' &&
    typeof o.name === 'string' &&
    typeof o.address === 'string' &&
    (o.etcd === undefined || typeof o.etcd === 'string')
  );
}

export function decodeServerInfo(bytes: Uint8Array): ServerInfo | null {
  try {
    const v = packr.unpack(bytes) as unknown;
    return isServerInfo(v) ? plain(v) : null;
  } catch {
    return null;
  }
}

/** The bootstrap entry's data: the cluster's identity and its first servers. */
export function encodeBootstrap(clusterId: string, servers: ServerInfo[]): Uint8Array {
  return packr.pack({
    clusterId,
    servers: servers.map(plain),
  });
}

function decodeBootstrap(bytes: Uint8Array): { clusterId: string; servers: ServerInfo[] } | null {
  try {
    const v = packr.unpack(bytes) as { clusterId?: unknown; servers?: unknown };
    if (typeof v?.clusterId !== 'string' || !Array.isArray(v.servers)) return null;
    return { clusterId: v.clusterId, servers: v.servers.filter(isServerInfo).map(plain) };
  } catch {
    return null;
  }
}

export function changeContext(change: ConfChange): ServerInfo | null {
  return change.context ? decodeServerInfo(change.context) : null;
}
