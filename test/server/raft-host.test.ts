import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { type Entry, type Message, MessageType } from '../../src/raft/types.js';
import {
  RaftHost,
  type RaftHostOptions,
  RetryableError,
  type StateMachine,
} from '../../src/server/raft-host.js';
import { MemoryStorage, type RaftLogStorage, WalStorage } from '../../src/storage/index.js';
import { PeerTransport } from '../../src/transport/peer-transport.js';

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** A list of applied commands: enough to check order and completeness. */
class ListMachine implements StateMachine {
  items: string[] = [];
  apply(e: Entry): unknown {
    if (e.data.byteLength === 0) return null;
    this.items.push(decoder.decode(e.data));
    return this.items.length;
  }
  snapshot(): Uint8Array {
    return encoder.encode(JSON.stringify(this.items));
  }
  restore(data: Uint8Array): void {
    this.items = JSON.parse(decoder.decode(data)) as string[];
  }
}

interface Member {
  id: string;
  host: RaftHost;
  transport: PeerTransport;
  sm: ListMachine;
  port: number;
}

async function startCluster(
  n: number,
  storageFor: (id: string) => RaftLogStorage = () => new MemoryStorage(),
): Promise<Member[]> {
  const ids = Array.from({ length: n }, (_, i) => `s${i + 1}`);
  const members: Member[] = [];
  for (const id of ids) {
    const sm = new ListMachine();
    let host: RaftHost | null = null;
    const transport = new PeerTransport({
      nodeId: id,
      clusterId: 'test',
      host: '127.0.0.1',
      port: 0,
      onRaftMessage: (m) => host?.step(m),
    });
    const port = await transport.listen();
    host = new RaftHost({
      id,
      storage: storageFor(id),
      stateMachine: sm,
      send: (m) => transport.send(m),
      bootstrap: { voters: ids },
      tickMs: 10,
      snapshotEveryEntries: 50,
      keepEntriesAfterSnapshot: 10,
      requestTimeoutMs: 3000,
    });
    members.push({ id, host, transport, sm, port });
  }
  for (const m of members) for (const o of members) m.transport.setPeer(o.id, `127.0.0.1:${o.port}`);
  for (const m of members) await m.host.start();
  return members;
}

async function stopAll(members: Member[]): Promise<void> {
  for (const m of members) {
    await m.host.stop();
    await m.transport.close();
  }
}

async function waitForLeader(members: Member[], timeoutMs = 5000): Promise<Member> {
  const began = Date.now();
  for (;;) {
    const leader = members.find((m) => m.host.status().role === 'leader');
    if (leader) return leader;
    if (Date.now() - began > timeoutMs) throw new Error('no leader elected');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Propose on whoever leads, again if leadership moved first (tick of 10 ms: a loaded machine
 * can miss an election timeout). Only refusals that say the entry was never kept are retried.
 */
async function proposeOnLeader(members: Member[], text: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const leader = await waitForLeader(members);
    try {
      await leader.host.propose(encoder.encode(text));
      return;
    } catch (err) {
      const refused =
        err instanceof RetryableError && ['not-leader', 'no-leader', 'overwritten'].includes(err.code);
      if (!refused || Date.now() > deadline) throw err;
    }
  }
}

test('three servers over loopback elect a leader, replicate, and serve linearizable reads everywhere', async () => {
  const members = await startCluster(3);
  try {
    const leader = await waitForLeader(members);
    const results = await Promise.all(
      Array.from({ length: 100 }, (_, i) => leader.host.propose(encoder.encode(`w${i}`))),
    );
    assert.equal(results.length, 100);
    for (const m of members) {
      await m.host.readBarrier();
      assert.equal(m.sm.items.length, 100, `${m.id} applied everything acknowledged before its read`);
    }
    const follower = members.find((m) => m !== leader)!;
    await assert.rejects(follower.host.propose(encoder.encode('x')), (err: unknown) => {
      assert.ok(err instanceof RetryableError);
      assert.equal(err.code, 'not-leader');
      assert.equal(err.leader, leader.id);
      return true;
    });
  } finally {
    await stopAll(members);
  }
});

test('after the leader stops, the others elect a new one and keep every acknowledged write', async () => {
  const members = await startCluster(3);
  try {
    for (let i = 0; i < 120; i++) await proposeOnLeader(members, `a${i}`);
    const leader = await waitForLeader(members);
    await leader.host.stop();
    await leader.transport.close();
    const rest = members.filter((m) => m !== leader);
    await proposeOnLeader(rest, 'after');
    for (const m of rest) {
      await m.host.readBarrier();
      assert.deepEqual(
        m.sm.items.slice(0, 120),
        Array.from({ length: 120 }, (_, i) => `a${i}`),
      );
      assert.equal(m.sm.items[120], 'after');
    }
    members.splice(members.indexOf(leader), 1);
  } finally {
    await stopAll(members);
  }
});

test('a whole cluster on the write-ahead log restarts with every acknowledged write', async () => {
  const root = mkdtempSync(join(tmpdir(), 'conclave-host-'));
  const wal = (id: string) => new WalStorage({ dir: join(root, id), preallocateBytes: 64 * 1024 });
  try {
    let members = await startCluster(3, wal);
    try {
      for (let i = 0; i < 80; i++) await proposeOnLeader(members, `d${i}`);
    } finally {
      await stopAll(members);
    }
    members = await startCluster(3, wal);
    try {
      await proposeOnLeader(members, 'again');
      for (const m of members) {
        await m.host.readBarrier();
        assert.deepEqual(m.sm.items, [...Array.from({ length: 80 }, (_, i) => `d${i}`), 'again']);
      }
    } finally {
      await stopAll(members);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

/**
 * A machine whose snapshot streams slowly, one item per chunk, over a copy taken when the stream
 * starts (its copy-on-write view), and that records what each finished stream held.
 */
class StreamingMachine extends ListMachine {
  streaming = false;
  appliedDuringStream = 0;
  streamsTaken = 0;
  /** For each finished stream: the items it carried, and the items applied when it began. */
  readonly finished: { carried: string[]; atStart: string[] }[] = [];
  override apply(e: Entry): unknown {
    if (this.streaming) this.appliedDuringStream++;
    return super.apply(e);
  }
  *snapshotChunks(): Generator<Uint8Array> {
    this.streaming = true;
    this.streamsTaken++;
    try {
      const items = [...this.items];
      let text = '[';
      yield encoder.encode('[');
      for (let i = 0; i < items.length; i++) {
        // Burn a little time per chunk so the capture spans several event-loop turns.
        const until = performance.now() + 0.2;
        while (performance.now() < until) {}
        const chunk = `${i > 0 ? ',' : ''}${JSON.stringify(items[i])}`;
        text += chunk;
        yield encoder.encode(chunk);
      }
      yield encoder.encode(']');
      this.finished.push({ carried: JSON.parse(`${text}]`) as string[], atStart: items });
    } finally {
      this.streaming = false;
    }
  }
}

test('a snapshot is captured in slices while applies go on; it holds the state of its index; nothing is lost', async () => {
  // One voter with a streaming machine and small snapshots.
  const sm = new StreamingMachine();
  const storage = new MemoryStorage();
  const saved: { index: number; bytes: number; captureMs: number; saveMs: number }[] = [];
  const host = new RaftHost({
    id: 'solo',
    storage,
    stateMachine: sm,
    send: () => {},
    bootstrap: { voters: ['solo'] },
    tickMs: 5,
    snapshotEveryEntries: 40,
    keepEntriesAfterSnapshot: 5,
    requestTimeoutMs: 5000,
    onSnapshotSaved: (info) => saved.push(info),
  });
  await host.start();
  try {
    const end = Date.now() + 5000;
    while (host.status().role !== 'leader' && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
    // Many writes, in waves, so some commit while a capture is in progress.
    const waves: Promise<unknown>[] = [];
    for (let wave = 0; wave < 10; wave++) {
      for (let i = 0; i < 30; i++) waves.push(host.propose(encoder.encode(`w${wave}-${i}`)));
      await new Promise((r) => setTimeout(r, 3));
    }
    await Promise.all(waves);
    await host.readBarrier();
    assert.equal(sm.items.length, 300, 'every acknowledged write applied, in order');
    assert.deepEqual(sm.items.slice(0, 2), ['w0-0', 'w0-1']);
    assert.ok(sm.streamsTaken >= 2, `snapshots taken: ${sm.streamsTaken}`);
    assert.ok(sm.appliedDuringStream > 0, 'entries were applied while a snapshot streamed');
    for (const { carried, atStart } of sm.finished) assert.deepEqual(carried, atStart);
    // The durable snapshot holds exactly the writes at or below its index, though later ones
    // were applied while it was captured.
    const snapshot = storage.disk.snapshots.at(-1);
    assert.ok(snapshot);
    const held = JSON.parse(Buffer.from(snapshot.data).toString()) as string[];
    const writesAfter = storage.disk.entries.filter(
      (e) => e.index > snapshot.meta.index && e.data.byteLength > 0,
    );
    assert.ok(held.length > 0 && held.length < 300);
    assert.deepEqual(held, sm.items.slice(0, held.length));
    assert.equal(held.length + writesAfter.length, 300, 'the snapshot ends exactly at its index');
    assert.ok(host.status().snapshotIndex > 0);
    // Each durable snapshot of our own is reported once, as saved.
    assert.equal(saved.length, storage.disk.snapshots.length);
    assert.deepEqual(
      saved.map((s) => [s.index, s.bytes]),
      storage.disk.snapshots.map((s) => [s.meta.index, s.data.byteLength]),
    );
  } finally {
    await host.stop();
  }
});

/**
 * Three hosts linked in memory: `deliver(m)` decides whether a message arrives (a cut link, or
 * counting what passes). `leaderAmong` waits for one of `among` to lead. `setup(id, sm)` may
 * adjust a host's machine and give it more options.
 */
async function startLinkedHosts(
  deliver: (m: Message) => boolean,
  requestTimeoutMs: number,
  setup: (id: string, sm: ListMachine) => Partial<RaftHostOptions> = () => ({}),
) {
  const ids = ['a', 'b', 'c'];
  const hosts = new Map<string, RaftHost>();
  const machines = new Map<string, ListMachine>();
  for (const id of ids) {
    const sm = new ListMachine();
    machines.set(id, sm);
    hosts.set(
      id,
      new RaftHost({
        id,
        storage: new MemoryStorage(),
        stateMachine: sm,
        send: (m) => {
          if (deliver(m)) setImmediate(() => hosts.get(m.to)?.step(m));
        },
        bootstrap: { voters: ids },
        tickMs: 10,
        requestTimeoutMs,
        ...setup(id, sm),
      }),
    );
  }
  const all = [...hosts.values()];
  for (const host of all) await host.start();
  const leaderAmong = async (among: RaftHost[] = all) => {
    const end = Date.now() + 10_000;
    for (;;) {
      const leader = among.find((h) => h.status().role === 'leader');
      if (leader) return leader;
      assert.ok(Date.now() < end, 'no leader elected');
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  const machineOf = (host: RaftHost) => machines.get(host.status().id)!;
  const stop = async () => {
    for (const host of all) await host.stop();
  };
  return { all, leaderAmong, machineOf, machines, stop };
}

test('proposals of a leader cut off are failed as overwritten once the new leader replaces its log, even on an idle cluster', async () => {
  // In-memory links, so the old leader can be cut off and healed. The request timeout is long
  // enough that a timeout can never be what fails the proposals below.
  const cut = new Set<string>();
  const { all, leaderAmong, stop } = await startLinkedHosts(
    (m) => !cut.has(m.from) && !cut.has(m.to),
    60_000,
  );
  try {
    const old = await leaderAmong();
    await old.propose(encoder.encode('before'));
    const oldId = old.status().id;
    cut.add(oldId);
    const stranded = Array.from({ length: 5 }, (_, i) =>
      old.propose(encoder.encode(`stranded${i}`)).then(
        () => 'committed',
        (err: unknown) => (err instanceof RetryableError ? err.code : String(err)),
      ),
    );
    const others = all.filter((h) => h !== old);
    const fresh = await leaderAmong(others);
    await fresh.readBarrier();
    // Nothing more is written: the new leader's log ends before most stranded indexes.
    cut.delete(oldId);
    assert.deepEqual(await Promise.all(stranded), Array(5).fill('overwritten'));
  } finally {
    await stop();
  }
});

test('a save whose only change is the commit index is not made on the request path (commit is volatile in Raft)', async () => {
  // Count every save on each member, and those that carry nothing but a new commit index.
  const saves = new Map<string, { all: number; commitOnly: number }>();
  const counting = (id: string): RaftLogStorage => {
    const inner = new MemoryStorage();
    const count = { all: 0, commitOnly: 0 };
    saves.set(id, count);
    let last = { term: 0, vote: '' };
    return new Proxy(inner, {
      get(target, prop, receiver) {
        if (prop !== 'save') return Reflect.get(target, prop, receiver);
        return (update: Parameters<RaftLogStorage['save']>[0]) => {
          count.all++;
          const hs = update.hardState;
          if (
            hs &&
            update.entries.length === 0 &&
            !update.snapshot &&
            hs.term === last.term &&
            hs.vote === last.vote
          )
            count.commitOnly++;
          if (hs) last = { term: hs.term, vote: hs.vote };
          return target.save(update);
        };
      },
    });
  };
  const members = await startCluster(3, counting);
  try {
    const leader = await waitForLeader(members);
    for (let i = 0; i < 30; i++) await leader.host.propose(encoder.encode(`one-at-a-time-${i}`));
    for (const m of members) await m.host.readBarrier();
    for (const m of members) assert.equal(m.sm.items.length, 30);
    for (const [id, count] of saves) {
      assert.equal(count.commitOnly, 0, `${id} made ${count.commitOnly} commit-only saves of ${count.all}`);
      assert.ok(count.all >= 30, `${id} saved the entries`);
    }
  } finally {
    await stopAll(members);
  }
});

test('reads that arrive together on a follower share one ReadIndex request, and each sees every write acknowledged before it', async () => {
  const readIndexSent = new Map<string, number>();
  const { all, leaderAmong, machineOf, stop } = await startLinkedHosts((m) => {
    if (m.type === MessageType.ReadIndex) readIndexSent.set(m.from, (readIndexSent.get(m.from) ?? 0) + 1);
    return true;
  }, 10_000);
  try {
    const leader = await leaderAmong();
    const follower = all.find((h) => h !== leader)!;
    const followerId = follower.status().id;
    for (let round = 0; round < 5; round++) {
      await leader.propose(encoder.encode(`w${round}`));
      const before = readIndexSent.get(followerId) ?? 0;
      // 100 reads in one turn of the event loop, each after the write above was acknowledged.
      await Promise.all(Array.from({ length: 100 }, () => follower.readBarrier()));
      assert.equal((readIndexSent.get(followerId) ?? 0) - before, 1, 'one ReadIndex for the whole batch');
      assert.equal(machineOf(follower).items.at(-1), `w${round}`, 'the read saw the acknowledged write');
    }
  } finally {
    await stop();
  }
});

test('a proposal that cannot commit fails with a timeout after the request timeout, and later ones each after theirs', async () => {
  // The leader is cut off from both followers right after the election: nothing commits.
  let cutOff = '';
  const { leaderAmong, stop } = await startLinkedHosts((m) => m.from !== cutOff && m.to !== cutOff, 300);
  try {
    const leader = await leaderAmong();
    cutOff = leader.status().id;
    const outcome = (p: Promise<unknown>, began: number) =>
      p.then(
        () => ({ code: 'committed', ms: 0 }),
        (err: unknown) => ({
          code: err instanceof RetryableError ? err.code : String(err),
          ms: Date.now() - began,
        }),
      );
    const first = outcome(leader.propose(encoder.encode('one')), Date.now());
    await new Promise((r) => setTimeout(r, 150));
    const second = outcome(leader.propose(encoder.encode('two')), Date.now());
    const [a, b] = await Promise.all([first, second]);
    // A leader that lost its quorum steps down (check quorum) and fails waiting proposals
    // itself; either way none of them is left waiting, and none fails before it was due.
    for (const r of [a, b]) {
      assert.notEqual(r.code, 'committed');
      if (r.code === 'timeout') assert.ok(r.ms >= 295, `timed out after ${r.ms} ms`);
    }
    assert.ok([a.code, b.code].includes('timeout'), `outcomes: ${a.code}, ${b.code}`);
  } finally {
    await stop();
  }
});

test('voters take turns to capture large snapshots: each in its own window of applied indexes', async () => {
  // Snapshots of 9 MiB (past the size from which voters stagger), 10-entry windows, writes of
  // 64 KiB so that the byte threshold (the last snapshot's size) is reached every ~200 writes.
  const every = 10;
  const padded = (items: string[]) => {
    const json = Buffer.from(JSON.stringify(items));
    const out = Buffer.alloc(9 * 1024 * 1024 + json.length, 0x20);
    json.copy(out);
    return out;
  };
  const ids = ['a', 'b', 'c'];
  const saved = new Map<string, number[]>(ids.map((id) => [id, []]));
  const cluster = await startLinkedHosts(
    () => true,
    10_000,
    (id, sm) => {
      sm.snapshot = () => padded(sm.items);
      return {
        snapshotEveryEntries: every,
        keepEntriesAfterSnapshot: 5,
        onSnapshotSaved: ({ index }) => saved.get(id)!.push(index),
      };
    },
  );
  try {
    const leader = await cluster.leaderAmong();
    const value = 'x'.repeat(64 * 1024);
    for (let i = 0; i < 2000 && [...saved.values()].some((s) => s.length < 3); i++) {
      await leader.propose(encoder.encode(`${i}:${value}`));
    }
    for (const [id, indexes] of saved) {
      assert.ok(indexes.length >= 3, `${id} saved ${indexes.length} snapshots`);
      // The first snapshot is small-state (no turn); every later one starts in the server's window.
      const slot = ids.indexOf(id);
      for (const index of indexes.slice(1))
        assert.equal(Math.floor(index / every) % ids.length, slot, `${id}'s snapshot at ${index}`);
    }
  } finally {
    await cluster.stop();
  }
});

test('a leader keeps no copy of a saved snapshot: a follower that fell behind gets it read back from storage', async () => {
  const reads = new Map<string, number>();
  const installed: number[] = [];
  let cut = true; // 'c' hears nothing and says nothing until healed
  const cluster = await startLinkedHosts(
    (m) => !cut || (m.to !== 'c' && m.from !== 'c'),
    10_000,
    (id) => {
      const storage = new MemoryStorage();
      const readSnapshot = storage.readSnapshot.bind(storage);
      storage.readSnapshot = (meta) => {
        reads.set(id, (reads.get(id) ?? 0) + 1);
        return readSnapshot(meta);
      };
      return {
        storage,
        snapshotEveryEntries: 20,
        keepEntriesAfterSnapshot: 5,
        onSnapshotInstalled: (index) => id === 'c' && installed.push(index),
      };
    },
  );
  try {
    const end = Date.now() + 10_000;
    const leader = await cluster.leaderAmong(cluster.all.slice(0, 2));
    for (let i = 0; i < 120; i++) await leader.propose(encoder.encode(`w${i}`));
    while (leader.status().snapshotIndex < 30) {
      assert.ok(Date.now() < end, 'the leader took no snapshot');
      await new Promise((r) => setTimeout(r, 10));
    }
    cut = false;
    const c = cluster.machines.get('c')!;
    while (c.items.length < 120) {
      assert.ok(Date.now() < end, `c caught up to ${c.items.length} of 120`);
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.deepEqual(c.items, cluster.machineOf(leader).items);
    assert.ok(installed.length > 0, 'c installed a snapshot');
    assert.ok((reads.get(leader.status().id) ?? 0) > 0, 'the leader read the snapshot back from storage');
  } finally {
    await cluster.stop();
  }
});

test('reads that cannot complete each fail with a timeout, a shorter one first though it came later; later reads still work', async () => {
  // A follower whose own messages are lost: it keeps hearing the leader (so nothing changes
  // leader), but its read index requests never arrive.
  let mute = '';
  const cluster = await startLinkedHosts((m) => m.from !== mute, 10_000);
  try {
    const leader = await cluster.leaderAmong();
    const follower = cluster.all.find((h) => h !== leader)!;
    await follower.readBarrier();
    mute = follower.status().id;
    const order: string[] = [];
    const failure = (name: string) => (err: unknown) => {
      assert.ok(err instanceof RetryableError && err.code === 'timeout', String(err));
      order.push(name);
    };
    const long = follower.readBarrier(600).then(() => order.push('long resolved'), failure('long'));
    const short = follower.readBarrier(30).then(() => order.push('short resolved'), failure('short'));
    await Promise.all([long, short]);
    assert.deepEqual(order, ['short', 'long']);
    mute = '';
    await follower.readBarrier();
  } finally {
    await cluster.stop();
  }
});
