import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { EntryArena } from '../../src/raft/entry-arena.js';
import { type Entry, EntryType } from '../../src/raft/types.js';

const membership = (term: number, index: number): Entry => ({
  term,
  index,
  type: EntryType.ConfChange,
  data: new Uint8Array(0),
  change: { type: 'addVoter', node: `n${index}` },
  config: { voters: ['a', `n${index}`], learners: [] },
});

type Op =
  | { kind: 'push'; size: number; membership: boolean; termStep: number }
  | { kind: 'truncate'; keep: number }
  | { kind: 'drop'; count: number }
  | { kind: 'clear' };

const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({
      kind: fc.constant('push' as const),
      // Mostly small, sometimes empty, sometimes bigger than a quarter block (a block of its own).
      size: fc.oneof(fc.integer({ min: 0, max: 600 }), fc.integer({ min: 60_000, max: 140_000 })),
      membership: fc.boolean(),
      termStep: fc.integer({ min: 0, max: 1 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate' as const), keep: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('drop' as const), count: fc.nat() }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'clear' as const }) },
);

test('the arena gives back every entry as pushed, through truncation, compaction and clearing', () => {
  fc.assert(
    fc.property(fc.array(op, { maxLength: 120 }), (ops) => {
      const arena = new EntryArena();
      let model: Entry[] = [];
      let firstIndex = 1;
      let term = 1;
      let fill = 0;
      for (const o of ops) {
        if (o.kind === 'push') {
          term += o.termStep;
          const index = firstIndex + model.length;
          const data = Buffer.alloc(o.size, fill++ % 251);
          const entry: Entry = o.membership
            ? membership(term, index)
            : { term, index, type: EntryType.Normal, data };
          arena.push(entry);
          // The model keeps its own copy: the arena must not depend on the caller's bytes.
          model.push(o.membership ? entry : { ...entry, data: Buffer.from(data) });
        } else if (o.kind === 'truncate') {
          const keep = o.keep % (model.length + 1);
          arena.truncate(keep, firstIndex);
          model = model.slice(0, keep);
        } else if (o.kind === 'drop') {
          const count = o.count % (model.length + 1);
          arena.dropFront(count, firstIndex);
          model = model.slice(count);
          firstIndex += count;
        } else {
          arena.clear();
          firstIndex += model.length + 5;
          model = [];
        }
        assert.equal(arena.length, model.length);
      }
      for (const [position, expected] of model.entries()) {
        const got = arena.entry(position, expected.index);
        assert.equal(arena.term(position), expected.term);
        assert.equal(arena.dataBytes(position), expected.data.byteLength);
        assert.deepEqual(got, expected);
      }
    }),
  );
});

test('bytes of an entry handed out stay as they were after it is truncated and others take its place', () => {
  const arena = new EntryArena();
  arena.push({ term: 1, index: 1, type: EntryType.Normal, data: Buffer.from('first') });
  arena.push({ term: 1, index: 2, type: EntryType.Normal, data: Buffer.from('second') });
  const handedOut = arena.entry(1, 2);
  arena.truncate(1, 1);
  arena.push({ term: 2, index: 2, type: EntryType.Normal, data: Buffer.from('replaced') });
  assert.equal(Buffer.from(handedOut.data).toString(), 'second');
  assert.equal(Buffer.from(arena.entry(1, 2).data).toString(), 'replaced');
});

test('compaction releases the blocks only compacted entries used', () => {
  const arena = new EntryArena();
  const value = Buffer.alloc(1000, 7);
  for (let i = 1; i <= 2000; i++) arena.push({ term: 1, index: i, type: EntryType.Normal, data: value });
  const before = arena.blockBytes();
  assert.ok(before >= 2000 * 1000, `${before} bytes held`);
  arena.dropFront(1990, 1);
  assert.ok(arena.blockBytes() <= 2 * 256 * 1024, `${arena.blockBytes()} bytes held after compaction`);
  assert.deepEqual(arena.entry(0, 1991).data, value);
  arena.dropFront(10, 1991);
  assert.equal(arena.length, 0);
  assert.ok(arena.blockBytes() <= 256 * 1024, 'at most the block being filled');
});
