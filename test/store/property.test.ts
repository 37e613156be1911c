/**
 * Property tests: random command sequences against a tiny reference model (a Map plus
 * revision counters), covering txns, compaction, lease expiry, Consul no-op writes and watch
 * delivery; then snapshot -> restore -> same state and behaviour, and log replay determinism.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { type Command, restore, Store, snapshot, type WatchEvent } from '../../src/store/index.js';
import { b, s } from './helpers.js';

interface Entry {
  value: string;
  create: number;
  mod: number;
  version: number;
  lease: number;
}

class Model {
  revision = 1;
  compact = 0;
  nowMs = 1000;
  nextLease = 1;
  kv = new Map<string, Entry>();
  leases = new Map<number, { deadline: number; ttl: number }>();
  history = new Map<number, Map<string, Entry>>([[1, new Map()]]);
  events: { type: string; key: string; mod: number; value: string }[] = [];

  /** Commit a set of changes (key -> entry or null for delete) as one revision. */
  commit(changes: Map<string, Entry | null>, force = false): void {
    const real = [...changes].filter(([key, entry]) => entry !== null || this.kv.has(key));
    if (real.length === 0 && !force) return;
    this.revision++;
    for (const [key, entry] of real.sort((x, y) => (x[0] < y[0] ? -1 : 1))) {
      if (entry === null) {
        this.kv.delete(key);
        this.events.push({ type: 'delete', key, mod: this.revision, value: '' });
      } else {
        this.kv.set(key, entry);
        this.events.push({ type: 'put', key, mod: this.revision, value: entry.value });
      }
    }
    this.history.set(this.revision, new Map(this.kv));
  }

  entryFor(key: string, value: string, lease: number): Entry {
    const old = this.kv.get(key);
    return {
      value,
      create: old ? old.create : this.revision + 1,
      mod: this.revision + 1,
      version: old ? old.version + 1 : 1,
      lease,
    };
  }

  at(revision: number): Map<string, Entry> {
    let r = revision;
    while (!this.history.has(r)) r--;
    return this.history.get(r)!;
  }
}

const KEYS = ['a', 'a/x', 'a/y', 'b', 'c'];
const key = fc.constantFrom(...KEYS);
const value = fc.constantFrom('1', '2', '3');

type Op =
  | { op: 'put'; key: string; value: string; withLease: boolean }
  | { op: 'delete'; key: string }
  | { op: 'deletePrefix'; prefix: string }
  | { op: 'txn'; key: string; version: number; onSuccess: string; onFailure: string; value: string }
  | { op: 'consulSet'; key: string; value: string }
  | { op: 'grant'; ttl: number }
  | { op: 'expire'; advance: number }
  | { op: 'compact'; back: number }
  | { op: 'drain' };

const opArbitrary: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({ op: fc.constant('put' as const), key, value, withLease: fc.boolean() }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('delete' as const), key }) },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('deletePrefix' as const),
      prefix: fc.constantFrom('a', 'a/', 'b'),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('txn' as const),
      key,
      version: fc.integer({ min: 0, max: 3 }),
      onSuccess: key,
      onFailure: key,
      value,
    }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('consulSet' as const), key, value }) },
  {
    weight: 1,
    arbitrary: fc.record({ op: fc.constant('grant' as const), ttl: fc.integer({ min: 1, max: 5000 }) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ op: fc.constant('expire' as const), advance: fc.integer({ min: 0, max: 3000 }) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ op: fc.constant('compact' as const), back: fc.integer({ min: 0, max: 6 }) }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('drain' as const) }) },
);

function live(store: Store, revision = 0): Map<string, Entry> {
  const result = store.range({ key: b('a'), rangeEnd: new Uint8Array([0]), revision });
  return new Map(
    result.kvs.map((kv) => [
      s(kv.key),
      {
        value: s(kv.value),
        create: kv.createRevision,
        mod: kv.modRevision,
        version: kv.version,
        lease: kv.lease,
      },
    ]),
  );
}

/** Run the ops against store and model; returns the applied log. */
function run(ops: Op[]): {
  store: Store;
  model: Model;
  log: Command[];
  events: WatchEvent[];
  canceledAt: number;
} {
  const store = new Store();
  const model = new Model();
  const log: Command[] = [];
  const watcher = store.watch({ key: b('a'), rangeEnd: new Uint8Array([0]), maxBufferedEvents: 3 });
  const events: WatchEvent[] = [];
  let canceledAt = 0;
  const drain = () => {
    for (let guard = 0; guard < 1000 && canceledAt === 0; guard++) {
      const batch = watcher.take();
      events.push(...batch.events);
      if (batch.canceled) canceledAt = batch.compactRevision;
      if (batch.synced && batch.events.length === 0) return;
    }
  };
  const apply = (body: Record<string, unknown>) => {
    const command = { timeMs: model.nowMs, ...body } as Command;
    log.push(command);
    return store.apply(log.length, command);
  };

  for (const op of ops) {
    switch (op.op) {
      case 'put': {
        const lease = op.withLease && model.leases.size > 0 ? [...model.leases.keys()][0]! : 0;
        apply({ type: 'put', key: b(op.key), value: b(op.value), lease });
        model.commit(new Map([[op.key, model.entryFor(op.key, op.value, lease)]]));
        break;
      }
      case 'delete':
        apply({ type: 'deleteRange', key: b(op.key) });
        model.commit(new Map([[op.key, null]]));
        break;
      case 'deletePrefix': {
        const end =
          op.prefix.slice(0, -1) + String.fromCharCode(op.prefix.charCodeAt(op.prefix.length - 1) + 1);
        apply({ type: 'deleteRange', key: b(op.prefix), rangeEnd: b(end) });
        model.commit(
          new Map([...model.kv.keys()].filter((k) => k >= op.prefix && k < end).map((k) => [k, null])),
        );
        break;
      }
      case 'txn': {
        const result = apply({
          type: 'txn',
          compare: [{ key: b(op.key), target: 'version', result: 'equal', value: op.version }],
          success: [{ type: 'put', key: b(op.onSuccess), value: b(op.value) }],
          failure: [{ type: 'put', key: b(op.onFailure), value: b(op.value) }],
        });
        const succeeded = (model.kv.get(op.key)?.version ?? 0) === op.version;
        assert.equal(result.type === 'txn' && result.succeeded, succeeded);
        const target = succeeded ? op.onSuccess : op.onFailure;
        model.commit(new Map([[target, model.entryFor(target, op.value, 0)]]));
        break;
      }
      case 'consulSet': {
        apply({ type: 'consulTxn', ops: [{ verb: 'set', key: b(op.key), value: b(op.value) }] });
        const old = model.kv.get(op.key);
        if (old?.value !== op.value)
          model.commit(new Map([[op.key, model.entryFor(op.key, op.value, old?.lease ?? 0)]]));
        break;
      }
      case 'grant': {
        const result = apply({ type: 'leaseGrant', id: 0, ttlMs: op.ttl });
        assert.equal(result.type === 'leaseGrant' && result.id, model.nextLease);
        model.leases.set(model.nextLease++, { deadline: model.nowMs + op.ttl, ttl: op.ttl });
        model.commit(new Map(), true);
        break;
      }
      case 'expire': {
        model.nowMs += op.advance;
        const due = store.leasesDue(model.nowMs);
        const expected = [...model.leases]
          .filter(([, lease]) => lease.deadline <= model.nowMs)
          .map(([id]) => id);
        assert.deepEqual([...due].sort(), [...expected].sort());
        apply({ type: 'leaseExpire', ids: due });
        const changes = new Map<string, Entry | null>();
        for (const id of expected) {
          model.leases.delete(id);
          for (const [k, entry] of model.kv) if (entry.lease === id) changes.set(k, null);
        }
        model.commit(changes, expected.length > 0);
        break;
      }
      case 'compact': {
        const target = Math.max(1, model.revision - op.back);
        const result = apply({ type: 'compact', revision: target });
        if (target > model.compact) {
          assert.equal(result.type, 'compact');
          model.compact = target;
        } else {
          assert.equal(result.type, 'error');
        }
        break;
      }
      case 'drain':
        drain();
        break;
    }
    assert.equal(store.revision, model.revision);
    assert.deepEqual(live(store), model.kv);
  }
  drain();
  return { store, model, log, events, canceledAt };
}

test('random command sequences match the reference model', () => {
  fc.assert(
    fc.property(fc.array(opArbitrary, { maxLength: 60 }), fc.nat(), (ops, pick) => {
      const { store, model, events, canceledAt } = run(ops);
      store.checkInvariants();
      // Any readable past revision matches the model's history.
      const oldest = Math.max(model.compact, 1);
      const revision = oldest + (pick % (model.revision - oldest + 1));
      assert.deepEqual(live(store, revision), model.at(revision));
      // Watch delivery: every event in order exactly once, or a prefix then an explicit compaction signal.
      const delivered = events.map((e) => ({
        type: e.type,
        key: s(e.kv.key),
        mod: e.kv.modRevision,
        value: s(e.kv.value),
      }));
      if (canceledAt === 0) assert.deepEqual(delivered, model.events);
      else {
        assert.deepEqual(delivered, model.events.slice(0, delivered.length));
        const next = model.events[delivered.length];
        assert.ok(
          next === undefined || next.mod < canceledAt,
          'cancelled only when the next event was compacted',
        );
      }
    }),
    { numRuns: 150 },
  );
});

test('snapshot -> restore gives the same state and the same behaviour; replay is deterministic', () => {
  fc.assert(
    fc.property(
      fc.array(opArbitrary, { maxLength: 40 }),
      fc.array(opArbitrary, { maxLength: 15 }),
      (ops, moreOps) => {
        const { store, log } = run([...ops, ...moreOps]);
        // Replay the first part of the log, snapshot, restore, replay the rest: same bytes as the original.
        const cut = Math.min(log.length, Math.floor(log.length / 2));
        const first = new Store();
        log.slice(0, cut).forEach((command, i) => {
          first.apply(i + 1, command);
        });
        const restored = restore(snapshot(first));
        log.slice(cut).forEach((command, i) => {
          const index = cut + i + 1;
          assert.deepEqual(restored.apply(index, command), first.apply(index, command));
        });
        const bytes = Buffer.from(snapshot(store));
        assert.deepEqual(Buffer.from(snapshot(first)), bytes, 'same log twice -> identical snapshot bytes');
        assert.deepEqual(Buffer.from(snapshot(restored)), bytes, 'restored replica converges byte for byte');
      },
    ),
    { numRuns: 100 },
  );
});
