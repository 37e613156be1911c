import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { committedValue, quorumSize } from '../../src/raft/quorum.js';

// The commit index is the quorum-th largest match index (Raft §5.3, §5.4.2). committedValue
// counts instead of sorting; this holds it to the sorted definition.
test('committedValue is the quorum-th largest value', () => {
  fc.assert(
    fc.property(fc.array(fc.nat({ max: 50 }), { maxLength: 9 }), (values) => {
      const sorted = [...values].sort((a, b) => b - a);
      const expected = values.length === 0 ? 0 : sorted[quorumSize(values.length) - 1]!;
      assert.equal(committedValue(values), expected);
    }),
    { numRuns: 2000 },
  );
});

test('committedValue: a majority, not a plurality, decides', () => {
  assert.equal(committedValue([7, 7, 3]), 7);
  assert.equal(committedValue([9, 5, 1]), 5);
  assert.equal(committedValue([9, 5, 1, 0]), 1);
  assert.equal(committedValue([4]), 4);
  assert.equal(committedValue([]), 0);
});
