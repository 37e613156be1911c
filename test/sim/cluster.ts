import { type InjectedBugs, RaftNode } from '../../src/raft/node.js';
import type { Entry, HardState, Message, NodeId, Ready } from '../../src/raft/types.js';
import { EntryType } from '../../src/raft/types.js';
import { entryKey, SafetyChecker, SafetyViolation } from './checker.js';
import { SimDisk } from './disk.js';
import { EventQueue } from './event-queue.js';
import { Prng } from './prng.js';

export interface SimOptions {
  seed: number;
  /** Initial voters; two spare servers are added for membership changes. */
  voters?: 3 | 5 | 7;
  /** Simulated milliseconds of faults, then healing and a liveness check. */
  faultMs?: number;
  bugs?: InjectedBugs;
  /** Lease reads assume no process pauses, so pause faults are off in that mode. */
  readMode?: 'safe' | 'lease';
  trace?: (line: string) => void;
}

export interface SimResult {
  seed: number;
  voters: number;
  violation: string | null;
  events: number;
  simMs: number;
  writesAcked: number;
  readsServed: number;
  leaderChanges: number;
  crashes: number;
  confChanges: number;
  snapshotsSent: number;
  checks: number;
}

const TICK_MS = 10;
const ELECTION_TICKS = 10;
const SNAPSHOT_EVERY = 64;
const KEEP_AFTER_SNAPSHOT = 16;
/** Liveness bound after healing: this many election timeouts. */
const LIVENESS_MS = 60 * ELECTION_TICKS * TICK_MS;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface PendingWrite {
  id: string;
  term: number;
}

interface PendingRead {
  floor: number;
  index: number;
}

/** The toy state machine: the applied index and a rolling hash of every applied command. */
class CounterMachine {
  applied = 0;
  hash = 0;

  apply(e: Entry): void {
    if (e.index !== this.applied + 1)
      throw new SafetyViolation(`apply out of order: ${e.index} after ${this.applied}`);
    this.applied = e.index;
    const key = entryKey(e);
    let h = this.hash ^ e.index;
    for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 16777619) >>> 0;
    this.hash = h;
  }

  serialize(): Uint8Array {
    return encoder.encode(JSON.stringify({ applied: this.applied, hash: this.hash }));
  }

  restore(data: Uint8Array): void {
    const s = JSON.parse(decoder.decode(data)) as { applied: number; hash: number };
    this.applied = s.applied;
    this.hash = s.hash;
  }
}

class SimServer {
  raft: RaftNode | null = null;
  sm = new CounterMachine();
  epoch = 0;
  persisting: Ready | null = null;
  pausedUntil = 0;
  slowDisk = false;
  lastSnapshotIndex = 0;
  writes = new Map<number, PendingWrite>();
  reads = new Map<string, PendingRead>();
  waitingReads: { context: string; read: PendingRead }[] = [];
  wasLeaderTerm = 0;
  /** As RaftHost: the hard state last written, and a newer one held back (only commit moved). */
  savedHardState: HardState = { term: 0, vote: '', commit: 0 };
  heldHardState: HardState | null = null;

  constructor(
    readonly id: NodeId,
    readonly disk: SimDisk,
  ) {}
}

/** Runs one seeded simulation: a cluster under faults, checked after every event. */
export class SimCluster {
  readonly rng: Prng;
  private readonly faultRng: Prng;
  private readonly netRng: Prng;
  private readonly queue = new EventQueue();
  private readonly servers = new Map<NodeId, SimServer>();
  private readonly ids: NodeId[];
  readonly checker = new SafetyChecker();
  private now = 0;
  private events = 0;
  private opSeq = 0;
  /** Directed links that drop everything: "a>b". */
  private blocked = new Set<string>();
  private lossRate = 0;
  private dupRate = 0;
  private maxDelayMs = 5;
  private healed = false;
  /** Small, seed-chosen flow-control limits so appends split and windows fill. */
  private readonly maxAppendBytes: number;
  private readonly maxInflightMessages: number;
  private readonly stats = {
    writesAcked: 0,
    readsServed: 0,
    leaderChanges: 0,
    crashes: 0,
    confChanges: 0,
    snapshotsSent: 0,
  };

  constructor(private readonly opts: SimOptions) {
    this.rng = new Prng(opts.seed);
    this.faultRng = this.rng.fork();
    this.netRng = this.rng.fork();
    const voters = opts.voters ?? 3;
    this.maxAppendBytes = this.rng.pick([16, 64, 256, 4096]);
    this.maxInflightMessages = this.rng.pick([2, 8, 64]);
    this.ids = Array.from({ length: voters + 2 }, (_, i) => `n${i + 1}`);
    const initial = this.ids.slice(0, voters);
    const boot = RaftNode.bootstrapEntry(initial);
    for (const id of this.ids) {
      const isInitial = initial.includes(id);
      const disk = new SimDisk({
        hardState: { term: isInitial ? 1 : 0, vote: '', commit: isInitial ? 1 : 0 },
        snapshot: null,
        entries: isInitial ? [boot] : [],
      });
      this.servers.set(id, new SimServer(id, disk));
    }
    for (const id of this.ids) this.start(id);
  }

  private trace(line: string): void {
    this.opts.trace?.(`${String(this.now).padStart(7)}ms ${line}`);
  }

  run(): SimResult {
    const faultMs = this.opts.faultMs ?? 3000;
    let violation: string | null = null;
    this.scheduleWorkload(faultMs);
    this.scheduleFaults(faultMs);
    this.queue.push(faultMs, () => this.heal());
    const deadline = faultMs + LIVENESS_MS;
    try {
      let livenessDone = false;
      let finalWrite: { index: number; term: number } | null = null;
      let finalWriteAt = 0;
      while (this.queue.size > 0) {
        const ev = this.queue.pop()!;
        this.now = ev.time;
        if (this.now > deadline) break;
        ev.run();
        this.events++;
        if (this.healed && !livenessDone && this.events % 16 === 0) {
          // Liveness: after healing, a leader appears and a new write commits everywhere.
          if (!finalWrite) {
            const leader = this.currentLeader();
            if (leader) {
              const r = leader.raft!.propose([encoder.encode('final')]);
              if (r.ok) {
                finalWrite = { index: r.index, term: r.term };
                finalWriteAt = this.now;
              }
            }
          } else if (this.finalWriteEverywhere(finalWrite)) {
            livenessDone = true;
            this.trace(
              `liveness: final write at ${finalWrite.index} applied everywhere after ${this.now - finalWriteAt}ms`,
            );
            break;
          } else if (this.now - finalWriteAt > LIVENESS_MS / 2) {
            // The leader that took it may have lost leadership before commit; try again.
            finalWrite = null;
          }
        }
      }
      if (!livenessDone) {
        violation = `Liveness: no write committed on every member within ${LIVENESS_MS}ms of healing (${this.describe()})`;
      }
    } catch (err) {
      violation = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    }
    return {
      seed: this.opts.seed,
      voters: this.opts.voters ?? 3,
      violation,
      events: this.events,
      simMs: this.now,
      checks: this.checker.checks,
      ...this.stats,
    };
  }

  private describe(): string {
    return this.ids
      .map((id) => {
        const s = this.servers.get(id)!;
        if (!s.raft) return `${id}:down`;
        const st = s.raft.status();
        const prog = Object.entries(st.progress)
          .map(([p, v]) => `${p}=${v.state[0]}${v.match}/${v.next}`)
          .join(',');
        return `${id}:${st.role[0]}${st.term}/c${st.commit}/l${st.lastIndex}/s${st.stableIndex}/v[${st.config.voters.join(',')}]${prog ? `{${prog}}` : ''}`;
      })
      .join(' ');
  }

  private currentLeader(): SimServer | null {
    let best: SimServer | null = null;
    let bestTerm = -1;
    for (const s of this.servers.values()) {
      const st = s.raft?.status();
      if (st && st.role === 'leader' && st.term > bestTerm && st.config.voters.includes(s.id)) {
        best = s;
        bestTerm = st.term;
      }
    }
    return best;
  }

  private finalWriteEverywhere(w: { index: number; term: number }): boolean {
    const leader = this.currentLeader();
    if (!leader) return false;
    const config = leader.raft!.status().config;
    for (const id of [...config.voters, ...config.learners]) {
      const s = this.servers.get(id)!;
      if (!s.raft || s.sm.applied < w.index) return false;
    }
    return this.checker.maxApplied >= w.index;
  }

  // ------------------------------------------------------------ server lifecycle

  private start(id: NodeId): void {
    const s = this.servers.get(id)!;
    const state = s.disk.load();
    s.sm = new CounterMachine();
    s.savedHardState = { ...state.hardState };
    s.heldHardState = null;
    if (state.snapshot) s.sm.restore(state.snapshot.data);
    s.lastSnapshotIndex = state.snapshot?.meta.index ?? 0;
    const electionRng = this.rng.fork();
    s.raft = new RaftNode(
      {
        id,
        electionTicks: ELECTION_TICKS,
        heartbeatTicks: 1,
        random: () => electionRng.float(),
        maxAppendBytes: this.maxAppendBytes,
        maxInflightMessages: this.maxInflightMessages,
        bugs: this.opts.bugs,
        readMode: this.opts.readMode ?? 'safe',
      },
      state,
    );
    s.persisting = null;
    s.writes.clear();
    s.reads.clear();
    s.waitingReads = [];
    s.wasLeaderTerm = 0;
    const epoch = s.epoch;
    const phase = this.rng.int(0, TICK_MS - 1);
    const tick = () => {
      if (s.epoch !== epoch) return;
      if (this.now >= s.pausedUntil) {
        s.raft!.tick();
        this.drive(s);
      }
      this.queue.push(this.now + TICK_MS, tick);
    };
    this.queue.push(this.now + phase, tick);
  }

  private crash(s: SimServer): void {
    if (!s.raft) return;
    this.trace(`crash ${s.id} (${s.disk.pendingWrites()} unsynced writes)`);
    this.stats.crashes++;
    s.disk.crash(this.faultRng.int(0, s.disk.pendingWrites()));
    s.raft = null;
    s.epoch++;
    this.checker.onNotLeader(s.id);
  }

  // ------------------------------------------------------------ the shell loop

  /** Hand the core's output to the simulated disk and network (the Ready/advance cycle). */
  private drive(s: SimServer): void {
    const raft = s.raft;
    if (!raft || s.persisting || !raft.hasReady()) return;
    const rd = raft.ready();
    s.persisting = rd;
    this.observe(s, rd);
    for (const m of rd.messagesNow) this.send(m);
    // RaftHost's rule: a hard state whose only change is the commit index is not written on its
    // own (the commit index is volatile); it goes with the next write. Crashes check it here.
    const hardState = rd.hardState ?? s.heldHardState ?? undefined;
    const commitOnly =
      hardState !== undefined &&
      rd.entries.length === 0 &&
      rd.snapshot === undefined &&
      hardState.term === s.savedHardState.term &&
      hardState.vote === s.savedHardState.vote;
    if (commitOnly) s.heldHardState = hardState;
    const needsDisk =
      !commitOnly && (rd.entries.length > 0 || hardState !== undefined || rd.snapshot !== undefined);
    if (needsDisk) {
      const write: { hardState?: typeof rd.hardState; snapshot?: typeof rd.snapshot; entries: Entry[] } = {
        entries: rd.entries,
      };
      if (hardState) {
        write.hardState = hardState;
        s.savedHardState = hardState;
        s.heldHardState = null;
      }
      if (rd.snapshot) write.snapshot = rd.snapshot;
      s.disk.write(write);
      const epoch = s.epoch;
      const latency = s.slowDisk ? this.faultRng.int(50, 400) : this.faultRng.int(0, 3);
      this.queue.push(this.now + latency, () => {
        if (s.epoch !== epoch) return;
        s.disk.sync();
        this.complete(s, rd);
      });
    } else {
      this.complete(s, rd);
    }
  }

  private observe(s: SimServer, rd: Ready): void {
    const raft = s.raft!;
    const view = raft.logView();
    const first = rd.entries[0];
    if (first) {
      let prevTerm = view.term(first.index - 1);
      for (const e of rd.entries) {
        this.checker.onPersist(e, prevTerm);
        prevTerm = e.term;
      }
    }
    const st = raft.status();
    if (rd.softState) {
      this.trace(`${s.id} is ${rd.softState.role} in term ${st.term} (leader '${rd.softState.leader}')`);
    }
    if (st.role === 'leader') {
      if (s.wasLeaderTerm !== st.term) {
        s.wasLeaderTerm = st.term;
        this.stats.leaderChanges++;
        this.checker.onLeader(s.id, st.term);
        this.checker.onNewLeaderLog(s.id, st.term, view.offsetIndex, view.term);
      }
      this.checker.onLeaderLog(s.id, st.term, view.lastIndex, view.term);
    } else {
      this.checker.onNotLeader(s.id);
    }
  }

  private complete(s: SimServer, rd: Ready): void {
    const raft = s.raft!;
    for (const m of rd.messages) this.send(m);
    if (rd.snapshot) {
      s.sm.restore(rd.snapshot.data);
      if (s.sm.applied !== rd.snapshot.meta.index) {
        throw new SafetyViolation(`snapshot at ${rd.snapshot.meta.index} restored state at ${s.sm.applied}`);
      }
      s.lastSnapshotIndex = rd.snapshot.meta.index;
    }
    const nodeTerm = raft.status().term;
    for (const e of rd.committedEntries) {
      this.checker.onApply(s.id, nodeTerm, e);
      s.sm.apply(e);
      const w = s.writes.get(e.index);
      if (w) {
        s.writes.delete(e.index);
        if (w.term === e.term && e.type === EntryType.Normal && decoder.decode(e.data) === w.id) {
          this.stats.writesAcked++;
          this.checker.onComplete(e.index);
        }
      }
    }
    for (const rs of rd.readStates) {
      const read = s.reads.get(rs.context);
      if (!read) continue;
      s.reads.delete(rs.context);
      read.index = rs.index;
      s.waitingReads.push({ context: rs.context, read });
    }
    for (const f of rd.readFailures) s.reads.delete(f.context);
    this.serveReads(s);
    raft.advance(rd);
    s.persisting = null;
    this.maybeSnapshot(s);
    this.drive(s);
  }

  private serveReads(s: SimServer): void {
    if (s.waitingReads.length === 0) return;
    const still: typeof s.waitingReads = [];
    for (const w of s.waitingReads) {
      if (s.sm.applied >= w.read.index) {
        // The read answers from the state machine as it is now: applied index >= read index.
        this.checker.onReadResult(s.id, w.context, s.sm.applied, w.read.floor);
        this.stats.readsServed++;
      } else {
        still.push(w);
      }
    }
    s.waitingReads = still;
  }

  private maybeSnapshot(s: SimServer): void {
    const raft = s.raft!;
    if (s.sm.applied - s.lastSnapshotIndex < SNAPSHOT_EVERY) return;
    const snap = raft.installAppSnapshot(s.sm.applied, s.sm.serialize());
    if (!snap) return;
    s.disk.saveAppSnapshot(snap);
    s.lastSnapshotIndex = snap.meta.index;
    raft.compact(Math.max(0, snap.meta.index - KEEP_AFTER_SNAPSHOT));
  }

  // ------------------------------------------------------------ network

  private send(m: Message): void {
    if (m.type === 9) this.stats.snapshotsSent++;
    const copies = this.netRng.chance(this.dupRate) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      if (this.blocked.has(`${m.from}>${m.to}`) || this.netRng.chance(this.lossRate)) continue;
      const delay = this.netRng.int(1, this.maxDelayMs);
      this.queue.push(this.now + delay, () => this.deliver(m));
    }
  }

  private deliver(m: Message): void {
    const s = this.servers.get(m.to);
    if (!s?.raft) return;
    if (this.now < s.pausedUntil) {
      // A frozen process: the message waits in its socket buffer until it resumes.
      this.queue.push(s.pausedUntil, () => this.deliver(m));
      return;
    }
    s.raft.step(m);
    this.drive(s);
  }

  // ------------------------------------------------------------ workload

  private scheduleWorkload(faultMs: number): void {
    const wl = this.rng.fork();
    const writeEveryMs = wl.int(2, 20);
    const readEveryMs = wl.int(3, 30);
    const write = () => {
      if (this.now < faultMs) this.queue.push(this.now + wl.int(1, writeEveryMs * 2), write);
      // Most clients have been redirected to the leader; some still talk to a stale one.
      const s = (wl.chance(0.8) ? this.currentLeader() : null) ?? this.servers.get(wl.pick(this.ids))!;
      const raft = s.raft;
      if (!raft || this.now < s.pausedUntil) return;
      const n = wl.chance(0.2) ? wl.int(2, 8) : 1;
      const datas: Uint8Array[] = [];
      const ids: string[] = [];
      for (let i = 0; i < n; i++) {
        const id = `w${++this.opSeq}`;
        ids.push(id);
        datas.push(encoder.encode(id));
      }
      const r = raft.propose(datas);
      if (!r.ok) return;
      for (let i = 0; i < n; i++) s.writes.set(r.index - n + 1 + i, { id: ids[i]!, term: r.term });
      this.drive(s);
    };
    const read = () => {
      if (this.now < faultMs) this.queue.push(this.now + wl.int(1, readEveryMs * 2), read);
      const s = this.servers.get(wl.pick(this.ids))!;
      const raft = s.raft;
      if (!raft || this.now < s.pausedUntil) return;
      const context = `r${++this.opSeq}`;
      s.reads.set(context, { floor: this.checker.maxCompleted, index: 0 });
      raft.readIndex(context);
      this.drive(s);
    };
    this.queue.push(1, write);
    this.queue.push(2, read);
  }

  // ------------------------------------------------------------ faults

  private scheduleFaults(faultMs: number): void {
    const f = this.faultRng;
    this.lossRate = f.pick([0, 0, 0.01, 0.05, 0.15]);
    this.dupRate = f.pick([0, 0, 0.02, 0.1]);
    this.maxDelayMs = f.pick([2, 5, 10, 30]);
    const meanGapMs = f.int(40, 250);
    const step = () => {
      if (this.now >= faultMs) return;
      this.injectFault();
      this.queue.push(this.now + f.int(1, meanGapMs * 2), step);
    };
    this.queue.push(f.int(50, 300), step);
  }

  private injectFault(): void {
    const f = this.faultRng;
    const up = [...this.servers.values()].filter((s) => s.raft);
    const kind = f.int(0, 99);
    if (kind < 15) {
      this.partitionRandom();
    } else if (kind < 25) {
      this.blocked.clear();
      this.trace('network healed');
    } else if (kind < 40) {
      if (up.length === 0) return;
      const victim = f.chance(0.5) ? (this.currentLeader() ?? f.pick(up)) : f.pick(up);
      this.crash(victim);
      const epochAfterCrash = victim.epoch;
      this.queue.push(this.now + f.int(20, 600), () => {
        if (victim.raft || victim.epoch !== epochAfterCrash) return;
        this.trace(`restart ${victim.id}`);
        this.start(victim.id);
      });
    } else if (kind < 47) {
      if (up.length === 0 || this.opts.readMode === 'lease') return;
      const s = f.pick(up);
      s.pausedUntil = this.now + f.int(50, 500);
      this.trace(`pause ${s.id} until ${s.pausedUntil}`);
    } else if (kind < 55) {
      const s = f.pick([...this.servers.values()]);
      s.slowDisk = !s.slowDisk;
    } else if (kind < 75) {
      this.membershipChange();
    } else if (kind < 85) {
      const leader = this.currentLeader();
      if (leader) {
        const target = f.pick(leader.raft!.status().config.voters);
        const r = leader.raft!.transferLeadership(target);
        this.trace(`transfer leadership ${leader.id} -> ${target}: ${r.message}`);
        this.drive(leader);
      }
    }
  }

  private partitionRandom(): void {
    const f = this.faultRng;
    this.blocked.clear();
    const kind = f.int(0, 2);
    if (kind === 0) {
      // Symmetric split into two sides.
      const side = new Set(this.ids.filter(() => f.chance(0.5)));
      for (const a of this.ids)
        for (const b of this.ids) if (side.has(a) !== side.has(b)) this.blocked.add(`${a}>${b}`);
      this.trace(`partition {${[...side].join(',')}} | rest`);
    } else if (kind === 1) {
      // Isolate the leader (or a random node).
      const victim = this.currentLeader()?.id ?? f.pick(this.ids);
      for (const b of this.ids) {
        if (b === victim) continue;
        this.blocked.add(`${victim}>${b}`);
        this.blocked.add(`${b}>${victim}`);
      }
      this.trace(`isolate ${victim}`);
    } else {
      // Asymmetric: some directed links drop.
      for (const a of this.ids)
        for (const b of this.ids) if (a !== b && f.chance(0.2)) this.blocked.add(`${a}>${b}`);
      this.trace(`asymmetric partition of ${this.blocked.size} links`);
    }
  }

  private membershipChange(): void {
    const f = this.faultRng;
    const leader = this.currentLeader();
    if (!leader) return;
    const raft = leader.raft!;
    const config = raft.status().config;
    const nonMembers = this.ids.filter((id) => !config.voters.includes(id) && !config.learners.includes(id));
    const options: (() => ReturnType<RaftNode['proposeConfChange']>)[] = [];
    if (nonMembers.length > 0)
      options.push(() => raft.proposeConfChange({ type: 'addLearner', node: f.pick(nonMembers) }));
    if (config.learners.length > 0) {
      options.push(() => raft.proposeConfChange({ type: 'promoteLearner', node: f.pick(config.learners) }));
    }
    // Keep at least 3 voters so the cluster can still make progress under single faults.
    if (config.voters.length > 3) {
      options.push(() => raft.proposeConfChange({ type: 'removeNode', node: f.pick(config.voters) }));
    }
    if (config.learners.length > 0) {
      options.push(() => raft.proposeConfChange({ type: 'removeNode', node: f.pick(config.learners) }));
    }
    if (options.length === 0) return;
    const r = f.pick(options)();
    if (r.ok) {
      this.stats.confChanges++;
      this.trace(`conf change proposed by ${leader.id} at ${r.index}`);
    }
    this.drive(leader);
  }

  /** End of the fault phase: restart, resume and reconnect everything. */
  private heal(): void {
    this.healed = true;
    this.blocked.clear();
    this.lossRate = 0;
    this.dupRate = 0;
    this.trace('heal');
    for (const s of this.servers.values()) {
      s.pausedUntil = 0;
      s.slowDisk = false;
      if (!s.raft) this.start(s.id);
    }
  }
}

export function runSeed(opts: SimOptions): SimResult {
  return new SimCluster(opts).run();
}
