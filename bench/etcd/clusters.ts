import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync } from 'node:fs';
import { endianness } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { freePorts } from '../../test/ports.js';
import { loopbackAgentArgs } from '../agent-command.js';
import { callDecoded, channel, RPC } from './protocol.js';

/**
 * The two systems under test, as real processes on loopback: a 3-member etcd cluster (static
 * --initial-cluster, fsync on, defaults otherwise) and a 3-server Conclave cluster (default raft
 * tick). Every process is recorded in `Processes` the moment it is spawned, so the caller can
 * always stop it by PID, whatever happens.
 */

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export interface Member {
  name: string;
  pid: number;
  /** host:port of its etcd v3 gRPC API */
  endpoint: string;
}

export interface ClusterHandle {
  system: 'etcd' | 'conclave';
  members: Member[];
}

interface Tracked {
  name: string;
  child: ChildProcess;
  exited: Promise<void>;
  /** the last lines of its output, for error messages */
  tail: string[];
}

/** Every child process this benchmark started; `stopAll` kills them by PID. */
export class Processes {
  private readonly tracked: Tracked[] = [];

  /** With `logDir`, every child's stdout and stderr also go to `logDir/NAME.log`. */
  constructor(private readonly logDir: string | null = null) {}

  spawn(name: string, command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Tracked {
    const child = spawn(command, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const t: Tracked = {
      name,
      child,
      tail: [],
      exited: new Promise((res) => {
        child.once('exit', () => res());
        child.once('error', () => res());
      }),
    };
    this.tracked.push(t);
    if (this.logDir !== null) {
      mkdirSync(this.logDir, { recursive: true });
      const file = createWriteStream(join(this.logDir, `${name}.log`));
      child.stdout!.pipe(file, { end: false });
      child.stderr!.pipe(file, { end: false });
      child.once('exit', () => file.end());
    }
    // Always drain both pipes: a full pipe would stall the server.
    for (const s of [child.stdout, child.stderr]) {
      createInterface({ input: s! }).on('line', (line) => {
        t.tail.push(line);
        if (t.tail.length > 30) t.tail.shift();
      });
    }
    return t;
  }

  running(t: Tracked): boolean {
    return t.child.pid !== undefined && t.child.exitCode === null && t.child.signalCode === null;
  }

  /**
   * SIGKILL every child still running, by PID, and wait (bounded) for each to go. With
   * `gracefulMs`, first SIGTERM twice (a Conclave agent stops at once on a second signal, and
   * writes its --cpu-prof profile) and give them that long to exit.
   */
  async stopAll(gracefulMs = 0): Promise<void> {
    if (gracefulMs > 0) {
      for (let i = 0; i < 2; i++) {
        this.signalAll('SIGTERM');
        await new Promise((r) => setTimeout(r, 200));
      }
      await Promise.race([
        Promise.all(this.tracked.map((t) => t.exited)),
        new Promise((r) => setTimeout(r, gracefulMs).unref()),
      ]);
    }
    this.killAllSync();
    await Promise.all(
      this.tracked.map((t) => Promise.race([t.exited, new Promise((r) => setTimeout(r, 5000).unref())])),
    );
  }

  /** For process 'exit' handlers, where nothing asynchronous runs any more. */
  killAllSync(): void {
    this.signalAll('SIGKILL');
  }

  private signalAll(signal: NodeJS.Signals): void {
    for (const t of this.tracked) {
      const pid = t.child.pid;
      if (pid === undefined || !this.running(t)) continue;
      try {
        process.kill(pid, signal);
      } catch {
        // already gone
      }
    }
  }

  pids(): number[] {
    return this.tracked.filter((t) => this.running(t)).map((t) => t.child.pid!);
  }
}

async function waitFor(what: string, timeoutMs: number, check: () => Promise<boolean>, fail: () => string) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // not yet
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${fail()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const tailOf = (ts: Tracked[]) => ts.map((t) => `--- ${t.name}:\n${t.tail.join('\n')}`).join('\n');

/** Go's GOARCH for this machine; etcd 3.4 refuses to start off amd64/ppc64le unless told. */
function goArch(): string {
  const table: Record<string, string> = { x64: 'amd64', ia32: '386', arm64: 'arm64', arm: 'arm' };
  if (process.arch === 'ppc64') return endianness() === 'LE' ? 'ppc64le' : 'ppc64';
  return table[process.arch] ?? process.arch;
}

export async function startEtcd(procs: Processes, root: string, etcdBin: string): Promise<ClusterHandle> {
  const names = ['e1', 'e2', 'e3'];
  const free = await freePorts(names.length * 2);
  const ports = names.map((_, i) => ({ client: free[2 * i]!, peer: free[2 * i + 1]! }));
  const initialCluster = names.map((n, i) => `${n}=http://127.0.0.1:${ports[i]!.peer}`).join(',');
  const env = { ...process.env };
  const arch = goArch();
  if (arch !== 'amd64' && arch !== 'ppc64le' && env.ETCD_UNSUPPORTED_ARCH === undefined)
    env.ETCD_UNSUPPORTED_ARCH = arch;
  const token = `bench-${process.pid}-${Date.now()}`;
  const tracked: Tracked[] = [];
  const members: Member[] = [];
  names.forEach((name, i) => {
    const { client, peer } = ports[i]!;
    const dataDir = join(root, 'etcd', name);
    mkdirSync(dataDir, { recursive: true });
    const t = procs.spawn(
      name,
      etcdBin,
      [
        '--name',
        name,
        '--data-dir',
        dataDir,
        '--listen-client-urls',
        `http://127.0.0.1:${client}`,
        '--advertise-client-urls',
        `http://127.0.0.1:${client}`,
        '--listen-peer-urls',
        `http://127.0.0.1:${peer}`,
        '--initial-advertise-peer-urls',
        `http://127.0.0.1:${peer}`,
        '--initial-cluster',
        initialCluster,
        '--initial-cluster-token',
        token,
        '--initial-cluster-state',
        'new',
        // logging only (3.4's default capnslog logger is deprecated and noisy)
        '--logger',
        'zap',
        '--log-outputs',
        'stderr',
      ],
      env,
    );
    tracked.push(t);
    members.push({ name, pid: t.child.pid ?? -1, endpoint: `127.0.0.1:${client}` });
  });
  const spawnFailed = await Promise.race([
    new Promise<boolean>((res) => {
      for (const t of tracked) t.child.once('error', () => res(true));
    }),
    new Promise<boolean>((r) => setTimeout(() => r(false), 200)),
  ]);
  if (spawnFailed || members.some((m) => m.pid < 0))
    throw new Error(
      `could not run '${etcdBin}' (install etcd 3.4: apt-get install etcd-server, or pass --etcd)`,
    );
  await waitFor(
    'etcd cluster health',
    30_000,
    async () => {
      for (const [i, t] of tracked.entries()) {
        if (!procs.running(t)) throw new Error(`${t.name} exited`);
        const r = await fetch(`http://127.0.0.1:${ports[i]!.client}/health`, {
          signal: AbortSignal.timeout(1000),
        });
        const body = (await r.json()) as { health?: string };
        if (body.health !== 'true') return false;
      }
      return true;
    },
    () => tailOf(tracked),
  );
  await waitForEtcdApi(members, () => tailOf(tracked));
  return { system: 'etcd', members };
}

interface ReadyLine {
  msg?: string;
  http_port?: number;
  server_port?: number;
  etcd_port?: number;
}

/** `nodeArgs` go to each agent's node (e.g. --cpu-prof). */
export async function startConclave(
  procs: Processes,
  root: string,
  nodeArgs: string[] = [],
): Promise<ClusterHandle> {
  const names = ['s1', 's2', 's3'];
  const started = names.map((name) => {
    const dataDir = join(root, 'conclave', name);
    mkdirSync(dataDir, { recursive: true });
    const t = procs.spawn(name, process.execPath, [
      ...nodeArgs,
      ...loopbackAgentArgs(name, dataDir, ['-server', '-server-port', '0', '-bootstrap-expect', '3']),
    ]);
    const ready = new Promise<Required<ReadyLine>>((res, rej) => {
      createInterface({ input: t.child.stdout! }).on('line', (text) => {
        let line: ReadyLine;
        try {
          line = JSON.parse(text) as ReadyLine;
        } catch {
          return;
        }
        if (line.msg === 'agent ready') res(line as Required<ReadyLine>);
      });
      t.child.once('exit', (code) =>
        rej(new Error(`${name} exited (${code}) before ready:\n${tailOf([t])}`)),
      );
      t.child.once('error', (err) => rej(err));
    });
    return { name, t, ready };
  });
  const tracked = started.map((s) => s.t);
  const ready = await Promise.race([
    Promise.all(started.map((s) => s.ready)),
    new Promise<never>((_, rej) =>
      setTimeout(
        () => rej(new Error(`Conclave agents not ready in 30 s\n${tailOf(tracked)}`)),
        30_000,
      ).unref(),
    ),
  ]);
  const http = (i: number, method: string, path: string) =>
    fetch(`http://127.0.0.1:${ready[i]!.http_port}${path}`, { method, signal: AbortSignal.timeout(5000) });
  const first = `127.0.0.1:${ready[0]!.server_port}`;
  for (let i = 1; i < ready.length; i++) {
    const r = await http(i, 'PUT', `/v1/agent/join/${first}`);
    if (r.status !== 200) throw new Error(`join s${i + 1}: ${r.status} ${await r.text()}`);
  }
  await waitFor(
    'a Conclave leader with 3 voters',
    60_000,
    async () => {
      const leaders = await Promise.all(
        ready.map((_, i) => http(i, 'GET', '/v1/status/leader').then((r) => r.json())),
      );
      if (!leaders[0] || leaders.some((l) => l !== leaders[0])) return false;
      const cfg = (await (await http(0, 'GET', '/v1/operator/raft/configuration')).json()) as {
        Servers: { Voter: boolean }[];
      };
      return cfg.Servers.filter((s) => s.Voter).length === 3;
    },
    () => tailOf(tracked),
  );
  const members = started.map((s, i) => ({
    name: s.name,
    pid: s.t.child.pid!,
    endpoint: `127.0.0.1:${ready[i]!.etcd_port}`,
  }));
  await waitForEtcdApi(members, () => tailOf(tracked));
  return { system: 'conclave', members };
}

/** Every member answers Status with a leader, and a write through each one commits. */
async function waitForEtcdApi(members: Member[], fail: () => string): Promise<void> {
  const clients = members.map((m) => channel(m.endpoint));
  try {
    await waitFor(
      'the etcd API on every member',
      30_000,
      async () => {
        for (const c of clients) {
          const s = await callDecoded(c, RPC.status(), {}, 2000);
          if (!s.leader || s.leader === '0') return false;
          await callDecoded(c, RPC.put(), { key: Buffer.from('bench/ready'), value: Buffer.from('1') }, 5000);
        }
        return true;
      },
      fail,
    );
  } finally {
    for (const c of clients) c.close();
  }
}

/** Leader first, then the others in order; and the current term. */
export async function leaderFirst(
  cluster: ClusterHandle,
): Promise<{ endpoints: string[]; term: number; pid: number | undefined }> {
  const clients = cluster.members.map((m) => channel(m.endpoint));
  try {
    const statuses = await Promise.all(clients.map((c) => callDecoded(c, RPC.status(), {}, 5000)));
    const leaderIdx = statuses.findIndex((s) => s.header?.member_id === s.leader);
    const eps = cluster.members.map((m) => m.endpoint);
    if (leaderIdx > 0) eps.unshift(...eps.splice(leaderIdx, 1));
    const term = Math.max(...statuses.map((s) => Number(s.raftTerm ?? s.header?.raft_term ?? 0)));
    return { endpoints: eps, term, pid: cluster.members[leaderIdx]?.pid };
  } finally {
    for (const c of clients) c.close();
  }
}

// ---- process accounting from /proc (Linux)

/** USER_HZ: 100 on every mainstream Linux build (/proc has no field for it). */
const CLOCK_TICKS = 100;

/** User+system CPU seconds of a process, or NaN where /proc is unavailable. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is state (field 3); utime and stime are fields 14 and 15
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return Number.NaN;
  }
}

/** Resident set size in bytes, or NaN. */
export function rssBytes(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return m ? Number(m[1]) * 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}
