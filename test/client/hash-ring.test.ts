import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { sha256Hash32 } from '../../src/client/hash.js';
import { HashRing } from '../../src/client/hash-ring.js';
import { HashRingPicker } from '../../src/client/hash-ring-picker.js';
import { instance } from './make-instance.js';

// The consistent-hash ring's movement bound as properties: removing a member moves exactly the
// keys it owned, adding one moves keys only to it; the ring depends on the set, not its order.

const members = fc.uniqueArray(fc.stringMatching(/^[a-z0-9-]{1,12}$/), { minLength: 2, maxLength: 20 });
const keys = fc.uniqueArray(fc.string({ maxLength: 16 }), { minLength: 1, maxLength: 300 });
// A hash with only 256 values forces many equal points: the tie-break must keep the bound too.
const tinyHash = (key: string) => sha256Hash32(key) & 0xff;

function owners(ring: HashRing, keyList: readonly string[]): (string | undefined)[] {
  return keyList.map((k) => ring.lookup(k));
}

for (const [label, hash] of [
  ['sha256', sha256Hash32],
  ['an 8-bit hash (collisions)', tinyHash],
] as const) {
  test(`ring (${label}): removing one of N members moves only the keys it owned`, () => {
    fc.assert(
      fc.property(members, keys, fc.nat(), fc.integer({ min: 1, max: 64 }), (set, keyList, pick, vnodes) => {
        const ring = new HashRing({ virtualNodes: vnodes, hash });
        ring.setMembers(set);
        const before = owners(ring, keyList);
        const leaving = set[pick % set.length]!;
        ring.setMembers(set.filter((m) => m !== leaving));
        const after = owners(ring, keyList);
        keyList.forEach((_, i) => {
          if (before[i] !== leaving) assert.equal(after[i], before[i], 'a key not on the leaver moved');
          else assert.notEqual(after[i], leaving);
        });
      }),
      { numRuns: 200, seed: 1234 },
    );
  });

  test(`ring (${label}): a joining member takes keys and nothing else moves`, () => {
    fc.assert(
      fc.property(members, keys, fc.integer({ min: 1, max: 64 }), (set, keyList, vnodes) => {
        const [joining, ...rest] = set;
        const ring = new HashRing({ virtualNodes: vnodes, hash });
        ring.setMembers(rest);
        const before = owners(ring, keyList);
        ring.setMembers(set);
        owners(ring, keyList).forEach((owner, i) => {
          if (owner !== before[i]) assert.equal(owner, joining, 'a key moved between old members');
        });
      }),
      { numRuns: 200, seed: 5678 },
    );
  });

  test(`ring (${label}): the owner of a key depends on the member set, not its order`, () => {
    fc.assert(
      fc.property(members, keys, (set, keyList) => {
        const forward = new HashRing({ virtualNodes: 8, hash });
        forward.setMembers(set);
        const backward = new HashRing({ virtualNodes: 8, hash });
        backward.setMembers([...set].reverse());
        // And the same ring reached through a detour (cached points reused).
        const detour = new HashRing({ virtualNodes: 8, hash });
        detour.setMembers(set.slice(1));
        detour.setMembers(set);
        assert.deepEqual(owners(backward, keyList), owners(forward, keyList));
        assert.deepEqual(owners(detour, keyList), owners(forward, keyList));
      }),
      { numRuns: 100, seed: 9 },
    );
  });
}

test('ring: load spread with 160 virtual nodes over 10 members is within 25% of the mean', () => {
  const ring = new HashRing();
  ring.setMembers(Array.from({ length: 10 }, (_, i) => `node-${i}/web`));
  const counts = new Map<string, number>();
  for (let k = 0; k < 20_000; k++) {
    const owner = ring.lookup(`user-${k}`)!;
    counts.set(owner, (counts.get(owner) ?? 0) + 1);
  }
  assert.equal(counts.size, 10);
  const max = Math.max(...counts.values());
  assert.ok(max / 2000 < 1.25, `max/mean = ${max / 2000}`);
});

test('ring: empty ring, one member, and options checked', () => {
  const ring = new HashRing({ virtualNodes: 4 });
  assert.equal(ring.lookup('k'), undefined);
  ring.setMembers(['only', 'only']);
  assert.deepEqual(ring.members, ['only']);
  assert.equal(ring.lookup('k'), 'only');
  assert.throws(
    () => new HashRing({ virtualNodes: 0 }),
    /'virtualNodes' must be an integer.*current value is 0/,
  );
});

test('hash-ring picker: keys stick to instances by id, not by address; pick needs a key', () => {
  const picker = new HashRingPicker({ virtualNodes: 32 });
  assert.equal(picker.pick('k'), undefined);
  const set = ['a', 'b', 'c', 'd'].map((id) => instance(id));
  picker.update(set);
  const before = Array.from({ length: 200 }, (_, k) => picker.pick(`k${k}`)!.id);
  assert.equal(new Set(before).size, 4);
  // Same ids at new addresses: every key stays, and the instance returned is the new one.
  picker.update(set.map((i) => ({ ...i, address: '10.9.9.9' })));
  const after = Array.from({ length: 200 }, (_, k) => picker.pick(`k${k}`)!);
  assert.deepEqual(
    after.map((i) => i.id),
    before,
  );
  assert.ok(after.every((i) => i.address === '10.9.9.9'));
  assert.throws(() => picker.pick(), /needs a string key/);
});
