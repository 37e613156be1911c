import { createHash } from 'node:crypto';

/**
 * etcd names members and clusters with uint64 ids; Conclave servers have UUIDs. A member id is
 * the first 8 bytes of SHA-256 of the node id (never 0), as a decimal string (proto-loader's
 * form for uint64), so every server computes the same id for a peer without a table.
 */
/**
 * A uint64 as protobufjs takes it without parsing: its two 32-bit halves (as a Long holds them).
 * From a decimal string it would parse with Long arithmetic on every response.
 */
export interface Uint64Bits {
  low: number;
  high: number;
  unsigned: true;
}

/** Each id in both forms: the decimal string for JSON and lists, the halves for headers. */
const cache = new Map<string, { id: string; bits: Uint64Bits }>();

function idOf(text: string): { id: string; bits: Uint64Bits } {
  // Every response header carries two of these: hash each id once.
  let known = cache.get(text);
  if (known === undefined) {
    const hashed = createHash('sha256').update(text).digest().readBigUInt64BE(0);
    const n = hashed === 0n ? 1n : hashed;
    known = {
      id: n.toString(),
      bits: { low: Number(BigInt.asIntN(32, n)), high: Number(BigInt.asIntN(32, n >> 32n)), unsigned: true },
    };
    if (cache.size > 10_000) cache.clear();
    cache.set(text, known);
  }
  return known;
}

export const memberIdOf = (nodeId: string): string => idOf(`member:${nodeId}`).id;
export const clusterIdOf = (clusterId: string): string => idOf(`cluster:${clusterId}`).id;
export const memberIdBitsOf = (nodeId: string): Uint64Bits => idOf(`member:${nodeId}`).bits;
export const clusterIdBitsOf = (clusterId: string): Uint64Bits => idOf(`cluster:${clusterId}`).bits;
