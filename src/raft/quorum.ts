/** Majority arithmetic over one configuration's voters (etcd-io/raft's quorum package). */

export function quorumSize(voterCount: number): number {
  return Math.floor(voterCount / 2) + 1;
}

/**
 * The largest value that a majority of voters has reached: with values sorted descending,
 * the one at position quorum-1. Used for the commit index and for ReadIndex rounds.
 */
export function committedValue(values: number[]): number {
  if (values.length === 0) return 0;
  const sorted = values.slice().sort((a, b) => b - a);
  return sorted[quorumSize(values.length) - 1]!;
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
