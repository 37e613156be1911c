/**
 * The simulator's checkers must be able to fail: with a protocol rule deliberately broken,
 * a violation must turn up within a bounded number of seeds. (The two rarer bugs — Figure 8
 * commit-by-counting and the membership erratum — need an exact interleaving that random
 * faults seldom produce; scripted scenarios in test/raft catch those.)
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { InjectedBugs } from '../../src/raft/node.js';
import { runSeed } from './cluster.js';

function firstViolation(bugs: InjectedBugs, maxSeeds: number): { seed: number; violation: string } | null {
  for (let seed = 1; seed <= maxSeeds; seed++) {
    const r = runSeed({ seed, voters: ([3, 5, 7] as const)[seed % 3]!, bugs });
    if (r.violation) return { seed, violation: r.violation };
  }
  return null;
}

test('granting votes to stale logs is caught (§5.4.1)', () => {
  const found = firstViolation({ voteForStaleLog: true }, 50);
  assert.ok(found, 'no violation within 50 seeds');
  assert.match(
    found.violation,
    /Election Safety|Leader Completeness|State Machine Safety|Log Matching|Linearizability/,
  );
});

test('ReadIndex without a heartbeat round is caught as a stale read (thesis §6.4)', () => {
  const found = firstViolation({ readWithoutQuorumCheck: true }, 300);
  assert.ok(found, 'no violation within 300 seeds');
  assert.match(found.violation, /Linearizability/);
});

test('the correct core passes the same seeds', () => {
  for (let seed = 1; seed <= 30; seed++) {
    const r = runSeed({ seed, voters: ([3, 5, 7] as const)[seed % 3]! });
    assert.equal(r.violation, null, `seed ${seed}`);
  }
});
