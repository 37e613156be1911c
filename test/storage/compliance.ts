/**
 * The RaftLogStorage compliance suite (js-libp2p's interface-compliance-tests, for storage):
 * every implementation runs the same tests through a small harness. A "restart" is a new
 * instance over the same backing state (directory or MemoryDisk).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Entry, HardState, Snapshot } from '../../src/raft/types.js';
import { EntryType } from '../../src/raft/types.js';
import { StorageFailedError, StorageNotLoadedError } from '../../src/storage/errors.js';
import type { RaftLogStorage, RecoveredState } from '../../src/storage/types.js';

export interface StorageHarness {
  /** A new, unloaded instance over this harness's backing state. */
  open(): RaftLogStorage;
  /** Remove the backing state. */
  cleanup(): Promise<void>;
}

export type StorageHarnessFactory = () => Promise<StorageHarness>;

/** Deterministic entry bytes, so any reload can be checked against (index, term). */
export function entryData(index: number, term: number, sizeBytes = 16): Uint8Array {
  const data = new Uint8Array(sizeBytes);
  let x = (index * 2654435761 + term * 40503) >>> 0;
  for (let i = 0; i < sizeBytes; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    data[i] = x >>> 24;
  }
  return data;
}

export function makeEntry(index: number, term: number, sizeBytes = 16): Entry {
  return { index, term, type: EntryType.Normal, data: entryData(index, term, sizeBytes) };
}

export function makeEntries(fromIndex: number, toIndex: number, term: number, sizeBytes = 16): Entry[] {
  const entries: Entry[] = [];
  for (let index = fromIndex; index <= toIndex; index++) entries.push(makeEntry(index, term, sizeBytes));
  return entries;
}

export function makeSnapshot(index: number, term: number, voters: string[] = ['a', 'b', 'c']): Snapshot {
  return { meta: { index, term, config: { voters, learners: [] } }, data: entryData(index, term, 64) };
}

/** Compare a recovered state with an expectation; entries by index, term, type, data. */
export function assertRecovered(
  actual: RecoveredState,
  expected: { hardState?: HardState; snapshotIndex?: number; entries: Entry[] },
): void {
  if (expected.hardState !== undefined) assert.deepStrictEqual(actual.hardState, expected.hardState);
  assert.equal(actual.snapshot?.meta.index ?? 0, expected.snapshotIndex ?? 0, 'snapshot index');
  assert.deepStrictEqual(
    actual.entries.map((e) => [e.index, e.term]),
    expected.entries.map((e) => [e.index, e.term]),
    'entry positions',
  );
  for (let i = 0; i < expected.entries.length; i++) {
    assert.deepStrictEqual(actual.entries[i], expected.entries[i], `entry ${expected.entries[i]!.index}`);
  }
}

export function registerStorageCompliance(name: string, factory: StorageHarnessFactory): void {
  describe(`RaftLogStorage compliance: ${name}`, () => {
    /** Run `body` with a loaded instance; the harness is cleaned up afterwards. */
    const withStorage = (title: string, body: (s: RaftLogStorage, h: StorageHarness) => Promise<void>) =>
      test(title, async () => {
        const harness = await factory();
        const storage = harness.open();
        try {
          await storage.load();
          await body(storage, harness);
        } finally {
          await storage.close();
          await harness.cleanup();
        }
      });

    const reload = async (harness: StorageHarness, storage: RaftLogStorage): Promise<RecoveredState> => {
      await storage.close();
      const again = harness.open();
      try {
        return await again.load();
      } finally {
        await again.close();
      }
    };

    test('a fresh store recovers empty', async () => {
      const harness = await factory();
      const storage = harness.open();
      try {
        const state = await storage.load();
        assertRecovered(state, { hardState: { term: 0, vote: '', commit: 0 }, entries: [] });
        assert.equal(state.snapshot, null);
      } finally {
        await storage.close();
        await harness.cleanup();
      }
    });

    test('save before load rejects', async () => {
      const harness = await factory();
      const storage = harness.open();
      try {
        await assert.rejects(storage.save({ entries: [makeEntry(1, 1)] }), StorageNotLoadedError);
      } finally {
        await storage.close();
        await harness.cleanup();
      }
    });

    withStorage('appended entries and hard state survive a restart', async (storage, harness) => {
      const entries = makeEntries(1, 50, 1, 100);
      await storage.save({ entries: entries.slice(0, 20), hardState: { term: 1, vote: 'a', commit: 0 } });
      await storage.save({ entries: entries.slice(20), hardState: { term: 1, vote: 'a', commit: 20 } });
      assertRecovered(await reload(harness, storage), {
        hardState: { term: 1, vote: 'a', commit: 20 },
        entries,
      });
    });

    withStorage('many concurrent saves resolve in call order and all survive', async (storage, harness) => {
      const order: number[] = [];
      const calls: Promise<void>[] = [];
      for (let index = 1; index <= 300; index++) {
        calls.push(
          storage.save({ entries: [makeEntry(index, 1 + Math.floor(index / 100))] }).then(() => {
            order.push(index);
          }),
        );
      }
      await Promise.all(calls);
      assert.deepStrictEqual(
        order,
        Array.from({ length: 300 }, (_, i) => i + 1),
      );
      const state = await reload(harness, storage);
      assert.equal(state.entries.length, 300);
      assert.equal(state.entries.at(-1)!.term, 4);
    });

    withStorage('entries at or below the last index truncate the stored suffix', async (storage, harness) => {
      await storage.save({ entries: makeEntries(1, 10, 1) });
      await storage.save({ entries: makeEntries(6, 8, 2), hardState: { term: 2, vote: '', commit: 5 } });
      const expected = [...makeEntries(1, 5, 1), ...makeEntries(6, 8, 2)];
      assertRecovered(await reload(harness, storage), { entries: expected });
    });

    withStorage('a truncation and the new entries survive further appends', async (storage, harness) => {
      await storage.save({ entries: makeEntries(1, 10, 1) });
      await storage.save({ entries: makeEntries(4, 4, 2) });
      await storage.save({ entries: makeEntries(5, 9, 3) });
      await storage.save({ entries: makeEntries(9, 12, 4) });
      const expected = [
        ...makeEntries(1, 3, 1),
        makeEntry(4, 2),
        ...makeEntries(5, 8, 3),
        ...makeEntries(9, 12, 4),
      ];
      assertRecovered(await reload(harness, storage), { entries: expected });
    });

    withStorage('the latest hard state wins; a vote may be cast once per term', async (storage, harness) => {
      await storage.save({ entries: [], hardState: { term: 1, vote: '', commit: 0 } });
      await storage.save({ entries: [], hardState: { term: 1, vote: 'b', commit: 0 } });
      await storage.save({ entries: [], hardState: { term: 3, vote: 'c', commit: 0 } });
      assertRecovered(await reload(harness, storage), {
        hardState: { term: 3, vote: 'c', commit: 0 },
        entries: [],
      });
    });

    withStorage('an empty update resolves', async (storage) => {
      await storage.save({ entries: [] });
    });

    withStorage(
      'configuration-change entries keep their change, context and configuration',
      async (storage, harness) => {
        // The bootstrap entry carries a configuration and data but no change.
        const boot: Entry = {
          index: 1,
          term: 1,
          type: EntryType.ConfChange,
          data: new Uint8Array([7, 7]),
          config: { voters: ['a', 'b', 'c'], learners: [] },
        };
        const change: Entry = {
          index: 2,
          term: 1,
          type: EntryType.ConfChange,
          data: new Uint8Array(0),
          change: { type: 'addLearner', node: 'd', context: new Uint8Array([1, 2, 3]) },
          config: { voters: ['a', 'b', 'c'], learners: ['d'] },
        };
        const plain: Entry = {
          index: 3,
          term: 1,
          type: EntryType.ConfChange,
          data: new Uint8Array([9]),
          change: { type: 'removeNode', node: 'a' },
          config: { voters: ['b', 'c'], learners: ['d'] },
        };
        await storage.save({ entries: [boot, change, plain] });
        assertRecovered(await reload(harness, storage), { entries: [boot, change, plain] });
      },
    );

    withStorage('an application snapshot compacts the log it covers', async (storage, harness) => {
      await storage.save({ entries: makeEntries(1, 30, 1), hardState: { term: 1, vote: 'a', commit: 30 } });
      await storage.saveSnapshot(makeSnapshot(20, 1));
      const state = await reload(harness, storage);
      assertRecovered(state, {
        hardState: { term: 1, vote: 'a', commit: 30 },
        snapshotIndex: 20,
        entries: makeEntries(21, 30, 1),
      });
      assert.deepStrictEqual(state.snapshot, makeSnapshot(20, 1));
    });

    withStorage('snapshots, appends and restarts interleave', async (storage, harness) => {
      await storage.save({ entries: makeEntries(1, 10, 1) });
      await storage.saveSnapshot(makeSnapshot(5, 1));
      await storage.save({ entries: makeEntries(11, 20, 2), hardState: { term: 2, vote: 'b', commit: 15 } });
      await storage.saveSnapshot(makeSnapshot(15, 2));
      await storage.save({ entries: makeEntries(18, 25, 3) });
      await storage.saveSnapshot(makeSnapshot(17, 2));
      const expected = [makeEntry(18, 3), ...makeEntries(19, 25, 3)];
      await storage.close();
      const second = harness.open();
      assertRecovered(await second.load(), { snapshotIndex: 17, entries: expected });
      await second.save({ entries: makeEntries(26, 30, 3) });
      await second.saveSnapshot(makeSnapshot(28, 3));
      assertRecovered(await reload(harness, second), { snapshotIndex: 28, entries: makeEntries(29, 30, 3) });
    });

    withStorage(
      'kept snapshots read back (application, installed, recovered); replaced ones are null',
      async (storage, harness) => {
        const bytes = (data: Uint8Array | null) => (data === null ? null : [...data]);
        await storage.save({ entries: makeEntries(1, 10, 1) });
        await storage.saveSnapshot(makeSnapshot(4, 1));
        assert.deepStrictEqual(bytes(await storage.readSnapshot(makeSnapshot(4, 1).meta)), [
          ...makeSnapshot(4, 1).data,
        ]);
        assert.equal(await storage.readSnapshot(makeSnapshot(4, 2).meta), null, 'another term');
        assert.equal(await storage.readSnapshot(makeSnapshot(5, 1).meta), null, 'no snapshot there');
        // Installed from a leader, through save().
        await storage.save({ snapshot: makeSnapshot(8, 1), entries: [] });
        assert.deepStrictEqual(bytes(await storage.readSnapshot(makeSnapshot(8, 1).meta)), [
          ...makeSnapshot(8, 1).data,
        ]);
        // Recovered after a restart.
        await storage.close();
        const second = harness.open();
        await second.load();
        try {
          assert.deepStrictEqual(bytes(await second.readSnapshot(makeSnapshot(8, 1).meta)), [
            ...makeSnapshot(8, 1).data,
          ]);
          // Two are kept by default: a third replaces the oldest.
          await second.save({ entries: makeEntries(9, 12, 1) });
          await second.saveSnapshot(makeSnapshot(12, 1));
          assert.equal(await second.readSnapshot(makeSnapshot(4, 1).meta), null, 'replaced');
          assert.notEqual(await second.readSnapshot(makeSnapshot(12, 1).meta), null);
        } finally {
          await second.close();
        }
      },
    );

    withStorage('a stale application snapshot is a no-op', async (storage, harness) => {
      await storage.save({ entries: makeEntries(1, 10, 1) });
      await storage.saveSnapshot(makeSnapshot(8, 1));
      await storage.saveSnapshot(makeSnapshot(4, 1));
      assertRecovered(await reload(harness, storage), { snapshotIndex: 8, entries: makeEntries(9, 10, 1) });
    });

    withStorage(
      'an installed snapshot that does not match discards the log (Raft §7)',
      async (storage, harness) => {
        await storage.save({ entries: makeEntries(1, 10, 1), hardState: { term: 1, vote: 'a', commit: 3 } });
        await storage.save({
          snapshot: makeSnapshot(8, 2),
          entries: makeEntries(9, 11, 2),
          hardState: { term: 2, vote: '', commit: 8 },
        });
        const state = await reload(harness, storage);
        assertRecovered(state, {
          hardState: { term: 2, vote: '', commit: 8 },
          snapshotIndex: 8,
          entries: makeEntries(9, 11, 2),
        });
      },
    );

    withStorage(
      'an installed snapshot matching a stored entry keeps the log after it',
      async (storage, harness) => {
        await storage.save({ entries: makeEntries(1, 10, 1) });
        await storage.save({ snapshot: makeSnapshot(6, 1), entries: [] });
        assertRecovered(await reload(harness, storage), { snapshotIndex: 6, entries: makeEntries(7, 10, 1) });
      },
    );

    withStorage('an installed snapshot beyond the log, then appends', async (storage, harness) => {
      await storage.save({ entries: makeEntries(1, 3, 1) });
      await storage.save({
        snapshot: makeSnapshot(50, 4),
        entries: [],
        hardState: { term: 4, vote: '', commit: 50 },
      });
      await storage.save({ entries: makeEntries(51, 60, 4) });
      await storage.saveSnapshot(makeSnapshot(55, 4));
      assertRecovered(await reload(harness, storage), { snapshotIndex: 55, entries: makeEntries(56, 60, 4) });
    });

    const rejectsAndFails = (
      title: string,
      setup: (s: RaftLogStorage) => Promise<void>,
      bad: (s: RaftLogStorage) => Promise<void>,
    ) =>
      withStorage(title, async (storage) => {
        await setup(storage);
        await assert.rejects(bad(storage), StorageFailedError);
        // Fail-stop: everything afterwards is refused too.
        await assert.rejects(storage.save({ entries: [] }), StorageFailedError);
      });

    rejectsAndFails(
      'entries leaving a gap are refused and fail the storage',
      (s) => s.save({ entries: makeEntries(1, 5, 1) }),
      (s) => s.save({ entries: [makeEntry(7, 1)] }),
    );
    rejectsAndFails(
      'non-contiguous entries are refused',
      async () => undefined,
      (s) => s.save({ entries: [makeEntry(1, 1), makeEntry(3, 1)] }),
    );
    rejectsAndFails(
      'decreasing entry terms are refused',
      (s) => s.save({ entries: makeEntries(1, 5, 3) }),
      (s) => s.save({ entries: [makeEntry(6, 2)] }),
    );
    rejectsAndFails(
      'truncating at or below the snapshot is refused',
      async (s) => {
        await s.save({ entries: makeEntries(1, 10, 1) });
        await s.saveSnapshot(makeSnapshot(6, 1));
      },
      (s) => s.save({ entries: [makeEntry(6, 2)] }),
    );
    rejectsAndFails(
      'a decreasing hard state term is refused',
      (s) => s.save({ entries: [], hardState: { term: 5, vote: '', commit: 0 } }),
      (s) => s.save({ entries: [], hardState: { term: 4, vote: '', commit: 0 } }),
    );
    rejectsAndFails(
      'a second vote in the same term is refused',
      (s) => s.save({ entries: [], hardState: { term: 5, vote: 'a', commit: 0 } }),
      (s) => s.save({ entries: [], hardState: { term: 5, vote: 'b', commit: 0 } }),
    );
    rejectsAndFails(
      'an application snapshot beyond the log is refused',
      (s) => s.save({ entries: makeEntries(1, 3, 1) }),
      (s) => s.saveSnapshot(makeSnapshot(4, 1)),
    );
    rejectsAndFails(
      'an application snapshot with the wrong term is refused',
      (s) => s.save({ entries: makeEntries(1, 3, 1) }),
      (s) => s.saveSnapshot(makeSnapshot(3, 2)),
    );

    withStorage('a failed save leaves earlier resolved saves durable', async (storage, harness) => {
      await storage.save({ entries: makeEntries(1, 5, 1) });
      await assert.rejects(storage.save({ entries: [makeEntry(9, 1)] }), StorageFailedError);
      assertRecovered(await reload(harness, storage), { entries: makeEntries(1, 5, 1) });
    });
  });
}
