import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { clampWait, DEFAULT_WAIT_MS, MAX_WAIT_MS, waitParam } from '../../src/api/consul/query.js';

// Consul's ?wait= for blocking queries: parsing (Go durations) and the wait actually used.

describe('clampWait', () => {
  test('no wait, zero or negative: the 5 minute default', () => {
    assert.equal(DEFAULT_WAIT_MS, 300_000);
    for (const requested of [undefined, 0, -1000]) assert.equal(clampWait(requested, 0), DEFAULT_WAIT_MS);
  });

  test('capped at 10 minutes', () => {
    assert.equal(MAX_WAIT_MS, 600_000);
    assert.equal(clampWait(3_600_000, 0), MAX_WAIT_MS);
    assert.equal(clampWait(10_000, 0), 10_000);
  });

  test('jitter adds up to 1/16 of the wait', () => {
    assert.equal(clampWait(16_000, 0.5), 16_500);
    assert.ok(clampWait(16_000, 0.999_999) < 17_000);
    assert.ok(clampWait(MAX_WAIT_MS * 2, 0.999_999) < MAX_WAIT_MS + MAX_WAIT_MS / 16);
  });
});

describe('waitParam', () => {
  const wait = (value: string | undefined) => waitParam(value === undefined ? {} : { wait: value });

  test('Go durations; "0" is the one bare number', () => {
    assert.equal(wait(undefined), undefined);
    assert.equal(wait('10s'), 10_000);
    assert.equal(wait('1m30s'), 90_000);
    assert.equal(wait('250ms'), 250);
    assert.equal(wait('0'), 0);
    assert.equal(wait('-5s'), -5000);
  });

  test('a bare number or garbage is 400 "Invalid wait time"', () => {
    for (const value of ['10', '1.5', 'soon', '10x', '5s5']) {
      assert.throws(() => wait(value), { status: 400, message: 'Invalid wait time' });
    }
  });
});
