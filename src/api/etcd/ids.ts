import { createHash } from 'node:crypto';

/**
 * etcd names members and clusters with uint64 ids; Conclave servers have UUIDs. A member id is
 * the first 8 bytes of SHA-256 of the node id (never 0), as a decimal string (proto-loader's
 * form for uint64), so every server computes the same id for a peer without a table.
 */
const cache = new Map<string, string>();

export function uint64Of(text: string): string {
  // Every response header carries two of these: hash each id once.
  let id = cache.get(text);
  if (id === undefined) {
    const n = createHash('sha256').update(text).digest().readBigUInt64BE(0);
    id = (n === 0n ? 1n : n).toString();
    if (cache.size > 10_000) cache.clear();
    cache.set(text, id);
  }
  return id;
}

export const memberIdOf = (nodeId: string): string => uint64Of(`member:${nodeId}`);
export const clusterIdOf = (clusterId: string): string => uint64Of(`cluster:${clusterId}`);
