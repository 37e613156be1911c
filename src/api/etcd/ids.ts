import { createHash } from 'node:crypto';

/**
 * etcd names members and clusters with uint64 ids; Conclave servers have UUIDs. A member id is
 * the first 8 bytes of SHA-256 of the node id (never 0), as a decimal string (proto-loader's
 * form for uint64), so every server computes the same id for a peer without a table.
 */
export function uint64Of(text: string): string {
  const n = createHash('sha256').update(text).digest().readBigUInt64BE(0);
  return (n === 0n ? 1n : n).toString();
}

export const memberIdOf = (nodeId: string): string => uint64Of(`member:${nodeId}`);
export const clusterIdOf = (clusterId: string): string => uint64Of(`cluster:${clusterId}`);
