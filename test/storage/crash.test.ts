/** The kill -9 crash test in CI: a few dozen iterations (`npm run crash` runs hundreds). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runCrashTest } from './crash-main.js';

test('kill -9 at random moments never loses an acknowledged save', { timeout: 120_000 }, async () => {
  const seed = 20_240_601;
  const result = await runCrashTest({ iterations: 25, seed });
  assert.equal(result.iterations, 25);
  assert.ok(
    result.acknowledgedSaves > 0,
    'the children acknowledged nothing: the test did not exercise the WAL',
  );
});
