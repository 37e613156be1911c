/** Majority arithmetic over one configuration's voters (etcd-io/raft's quorum package). */

export function quorumSize(voterCount: number): number {
  return Math.floor(voterCount / 2) + 1;
}

/**
 * The largest value that a majority of voters has reached (the quorum-th largest): the
 * largest v with at least a quorum of values >= v. Used for the commit index and for
 * ReadIndex rounds, several times per write. Counting instead of sorting allocates nothing
 * (every Array.prototype.sort call allocates its merge state, about 1.5 KB in V8), and
 * configurations are a handful of voters.
 */
export function committedValue(values: readonly number[]): number {
  const quorum = quorumSize(values.length);
  let best = 0;
  for (const v of values) {
    if (v <= best) continue;
    let reached = 0;
    for (const w of values) if (w >= v) reached++;
    if (reached >= quorum) best = v;
  }
  return best;
}

export type VoteResult = 'won' | 'lost' | 'pending';

export function voteResult(voters: readonly string[], votes: ReadonlyMap<string, boolean>): VoteResult {
  let granted = 0;
  let rejected = 0;
  for (const v of voters) {
    const vote = votes.get(v);
    if (vote === true) granted++;
    else if (vote === false) rejected++;
  }
  const q = quorumSize(voters.length);
  if (granted >= q) return 'won';
  if (voters.length - rejected < q) return 'lost';
  return 'pending';
}
