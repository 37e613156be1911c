/**
 * Committed entries per second through an in-memory 3-node cluster: the pure core only (no
 * disk, no sockets), all three nodes on this one thread. Each round proposes one batch on the
 * leader and drives every node's Ready/advance cycle until the cluster is quiet.
 *   npm run bench:raft [-- --seconds 2]
 */
import { parseArgs } from 'node:util';
import { RaftNode } from '../src/raft/node.js';
import type { Message } from '../src/raft/types.js';
import { Prng } from '../test/sim/prng.js';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '2' } } });
const seconds = Number(values.seconds);
if (!(seconds > 0)) throw new Error(`--seconds must be positive: got '${values.seconds}'`);

const PAYLOAD_BYTES = 64;

function cluster(): Map<string, RaftNode> {
  const ids = ['a', 'b', 'c'];
  const boot = RaftNode.bootstrapEntry(ids);
  const nodes = new Map<string, RaftNode>();
  const rng = new Prng(1);
  for (const id of ids) {
    nodes.set(
      id,
      new RaftNode(
        { id, electionTicks: 10, heartbeatTicks: 1, random: () => rng.float(), maxAppendBytes: 4 << 20 },
        { hardState: { term: 1, vote: '', commit: 1 }, snapshot: null, entries: [boot] },
      ),
    );
  }
  return nodes;
}

/** Drive every node until no Ready is left; returns entries applied on `countOn`. */
function settle(nodes: Map<string, RaftNode>, countOn: string): number {
  let applied = 0;
  let inbox: Message[] = [];
  for (let progress = true; progress; ) {
    progress = false;
    for (const m of inbox) nodes.get(m.to)!.step(m);
    inbox = [];
    for (const [id, node] of nodes) {
      if (!node.hasReady()) continue;
      progress = true;
      const rd = node.ready();
      for (const m of [...rd.messagesNow, ...rd.messages]) inbox.push(m);
      if (id === countOn) applied += rd.committedEntries.length;
      node.advance(rd);
    }
    if (inbox.length > 0) progress = true;
  }
  return applied;
}

function run(batch: number): { entriesPerSecond: number; roundsPerSecond: number } {
  const nodes = cluster();
  const a = nodes.get('a')!;
  while (a.status().role !== 'leader') {
    a.tick();
    settle(nodes, 'a');
  }
  const payloads = Array.from({ length: batch }, () => new Uint8Array(PAYLOAD_BYTES).fill(7));
  let committed = 0;
  let rounds = 0;
  let compactAt = 100_000;
  const began = process.hrtime.bigint();
  const budget = BigInt(Math.round(seconds * 1e9));
  while (process.hrtime.bigint() - began < budget) {
    const r = a.propose(payloads);
    if (!r.ok) throw new Error(r.message);
    committed += settle(nodes, 'a');
    rounds++;
    if (committed > compactAt) {
      // Keep memory flat the way the server will: snapshot, then drop the log behind it.
      for (const node of nodes.values()) {
        const st = node.status();
        if (node.installAppSnapshot(st.applied, new Uint8Array(0))) node.compact(st.applied);
      }
      compactAt = committed + 100_000;
    }
  }
  const elapsed = Number(process.hrtime.bigint() - began) / 1e9;
  return { entriesPerSecond: committed / elapsed, roundsPerSecond: rounds / elapsed };
}

console.log(`raft core, 3 nodes in one thread, ${PAYLOAD_BYTES}-byte entries, ${seconds}s per row`);
console.log('batch   committed entries/s   rounds/s');
for (const batch of [1, 64, 1024]) {
  const r = run(batch);
  console.log(
    `${String(batch).padStart(5)}   ${Math.round(r.entriesPerSecond).toLocaleString('en-US').padStart(19)}   ${Math.round(r.roundsPerSecond).toLocaleString('en-US').padStart(8)}`,
  );
}
