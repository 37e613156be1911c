import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EntryType } from '../src/raft/types.js';

test('entry types are distinct', () => {
  assert.notEqual(EntryType.Normal, EntryType.ConfChange);
});
