import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EntryType } from '../../src/raft/types.js';
import { ReplicatedState } from '../../src/server/replicated-state.js';
import { encodeCommand, utf8 } from '../../src/store/index.js';

test('a snapshot stream holds the state of the moment it was asked for, whatever is applied while it is pulled', () => {
  const state = new ReplicatedState();
  let index = 0;
  const put = (key: string) =>
    state.apply({
      term: 1,
      index: ++index,
      type: EntryType.Normal,
      data: encodeCommand({ type: 'put', key: utf8(key), value: utf8('v'), timeMs: 1 }),
    });
  put('a');
  put('b');
  const askedAt = index;
  const stream = state.snapshotChunks()[Symbol.iterator]();
  // Applies before the first pull, and after it (RaftHost pulls in slices and applies between).
  put('c');
  const chunks: Uint8Array[] = [stream.next().value as Uint8Array];
  put('d');
  for (let next = stream.next(); !next.done; next = stream.next()) chunks.push(next.value);
  const restored = new ReplicatedState();
  restored.restore(Buffer.concat(chunks));
  assert.equal(restored.store.appliedIndex, askedAt);
  assert.deepEqual(
    ['a', 'b', 'c', 'd'].map((k) => restored.store.get(utf8(k)) !== null),
    [true, true, false, false],
  );
});
