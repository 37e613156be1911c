/**
 * The index for the next blocking query, from the one just sent and the X-Consul-Index that
 * came back. Consul's "Blocking Queries — Implementation Details":
 * - an index below 1 (a Consul bug, or a missing header here) would make the next query return
 *   at once, a busy loop: use 1, which is always safe to block on;
 * - an index lower than the one sent means the result went backwards (snapshot restore, a
 *   deleted highest-index item, finer-grained indexes after an upgrade): restart from 0, one
 *   non-blocking read that returns the current index.
 */
export function nextBlockingIndex(sentIndex: number, returnedHeader: string | null): number {
  const returned = returnedHeader === null ? Number.NaN : Number(returnedHeader);
  if (!Number.isSafeInteger(returned) || returned < 1) return 1;
  if (returned < sentIndex) return 0;
  return returned;
}
