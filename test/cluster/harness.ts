import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/**
 * Real agent processes on loopback for multi-process tests. Every agent binds ephemeral ports
 * (port 0) and reports them in its "agent ready" log line; a restart reuses the ports it had,
 * so its peers' directory stays right. `Cluster.close()` kills every child it started.
 */

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = join(ROOT, 'src/cli/main.ts');

export interface LogLine {
  level: string;
  msg: string;
  [key: string]: unknown;
}

export class AgentProcess {
  child: ChildProcess | null = null;
  httpPort = 0;
  serverPort = 0;
  etcdPort = 0;
  dnsPort = 0;
  /** Kept across restarts, like the other ports, so the pool finds it where it was. */
  serfPort = 0;
  id = '';
  readonly lines: LogLine[] = [];
  private exited: Promise<number | null> = Promise.resolve(null);

  constructor(
    readonly name: string,
    readonly dataDir: string,
    private readonly extraArgs: string[],
    /** A client agent (no -server): it forwards to the servers it finds with -retry-join. */
    readonly mode: 'server' | 'client' = 'server',
  ) {}

  /** host:port of its etcd v3 API (gRPC and the JSON gateway). */
  get etcdEndpoint(): string {
    return `127.0.0.1:${this.etcdPort}`;
  }

  get serverAddress(): string {
    return `127.0.0.1:${this.serverPort}`;
  }

  get running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  /**
   * Start (or restart on the ports it had). A port it had may briefly be the local end of some
   * outgoing connection (the kernel hands those out from the same ephemeral range), so a
   * restart refused with EADDRINUSE is tried again for a few seconds.
   */
  async start(args: string[] = []): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.startOnce(args);
        return;
      } catch (err) {
        if (attempt >= 10 || !/EADDRINUSE/.test(String(err))) throw err;
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  private async startOnce(args: string[]): Promise<void> {
    const argv = [
      // e.g. CONCLAVE_AGENT_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" to profile the agents.
      ...(process.env.CONCLAVE_AGENT_NODE_ARGS ?? '').split(' ').filter(Boolean),
      '--import',
      'tsx',
      CLI,
      'agent',
      ...(this.mode === 'server' ? ['-server', '-server-port', String(this.serverPort)] : []),
      '-node',
      this.name,
      '-data-dir',
      this.dataDir,
      '-bind',
      '127.0.0.1',
      '-client',
      '127.0.0.1',
      '-http-port',
      String(this.httpPort),
      '-etcd-port',
      String(this.etcdPort),
      '-dns-port',
      '0',
      '-serf-lan-port',
      String(this.serfPort),
      '-raft-tick-ms',
      '50',
      '-log-json',
      '-log-level',
      'debug',
      ...this.extraArgs,
      ...args,
    ];
    const child = spawn(process.execPath, argv, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    this.exited = new Promise((res) => child.once('exit', (code) => res(code)));
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const ready = new Promise<void>((res, rej) => {
      const rl = createInterface({ input: child.stdout! });
      rl.on('line', (text) => {
        let line: LogLine;
        try {
          line = JSON.parse(text) as LogLine;
        } catch {
          return;
        }
        this.lines.push(line);
        if (line.msg === 'agent ready') {
          this.httpPort = Number(line.http_port);
          if (this.mode === 'server') this.serverPort = Number(line.server_port);
          this.dnsPort = Number(line.dns_port);
          this.serfPort = Number(line.serf_port ?? 0);
          this.etcdPort = Number(line.etcd_port);
          this.id = String(line.id);
          res();
        }
      });
      child.once('exit', (code) =>
        rej(new Error(`${this.name} exited (${code}) before ready: ${stderr.trim()}`)),
      );
    });
    await withTimeout(ready, 15_000, `${this.name} did not become ready`);
  }

  /** Send a signal and wait for the process to end; returns its exit code (null if killed). */
  async stop(signal: NodeJS.Signals = 'SIGKILL', timeoutMs = 15_000): Promise<number | null> {
    const child = this.child;
    if (!child || !this.running) return child?.exitCode ?? null;
    child.kill(signal);
    const code = await withTimeout(this.exited, timeoutMs, `${this.name} did not exit after ${signal}`);
    this.child = null;
    return code;
  }

  signal(signal: NodeJS.Signals): void {
    this.child?.kill(signal);
  }

  /** Wait for the process to end by itself (after `conclave leave`); returns its exit code. */
  async waitForExit(timeoutMs = 15_000): Promise<number | null> {
    const code = await withTimeout(this.exited, timeoutMs, `${this.name} did not exit`);
    this.child = null;
    return code;
  }

  async http(
    method: string,
    path: string,
    body?: string,
    timeoutMs = 15_000,
  ): Promise<{ status: number; text: string; headers: Headers }> {
    const init: RequestInit = { method, signal: AbortSignal.timeout(timeoutMs) };
    if (body !== undefined) init.body = body;
    const res = await fetch(`http://127.0.0.1:${this.httpPort}${path}`, init);
    return { status: res.status, text: await res.text(), headers: res.headers };
  }

  async json<T>(method: string, path: string, body?: string): Promise<T> {
    const r = await this.http(method, path, body);
    if (r.status !== 200) throw new Error(`${this.name} ${method} ${path}: ${r.status} ${r.text}`);
    return JSON.parse(r.text) as T;
  }
}

export class Cluster {
  readonly agents: AgentProcess[] = [];
  private readonly loads: WriteLoad[] = [];
  private readonly root = mkdtempSync(join(tmpdir(), 'conclave-cluster-'));

  /** The temporary directory holding every agent's data dir (removed by close()). */
  get rootDir(): string {
    return this.root;
  }

  add(name: string, args: string[] = []): AgentProcess {
    const a = new AgentProcess(name, join(this.root, name), args);
    this.agents.push(a);
    return a;
  }

  /** A client agent joined to the servers (not in `agents`: it is no Raft member); close() stops it. */
  addClient(name: string, args: string[] = []): AgentProcess {
    const joins = this.agents.flatMap((a) => ['-retry-join', a.serverAddress]);
    const c = new AgentProcess(name, join(this.root, name), [...joins, ...args], 'client');
    this.clients.push(c);
    return c;
  }

  readonly clients: AgentProcess[] = [];

  /** Start `n` servers with -bootstrap-expect n and join them to each other over HTTP. */
  static async bootstrap(n: number, args: string[] = []): Promise<Cluster> {
    const c = new Cluster();
    try {
      for (let i = 1; i <= n; i++) c.add(`s${i}`, ['-bootstrap-expect', String(n), ...args]);
      await Promise.all(c.agents.map((a) => a.start()));
      // Consul's `join`: tell each server where the first one is; discovery does the rest.
      const first = c.agents[0]!;
      await Promise.all(c.agents.slice(1).map((a) => a.http('PUT', `/v1/agent/join/${first.serverAddress}`)));
      await c.waitForLeader();
      await waitFor(async () => (await c.voters(c.agents[0]!)).length === n, 20_000, 'all servers voting');
    } catch (err) {
      await c.close();
      throw err;
    }
    return c;
  }

  running(): AgentProcess[] {
    return this.agents.filter((a) => a.running);
  }

  /** The leader address every running agent agrees on. */
  async waitForLeader(
    timeoutMs = 20_000,
    among: AgentProcess[] = this.running(),
    not?: AgentProcess,
  ): Promise<AgentProcess> {
    let leader: AgentProcess | undefined;
    await waitFor(
      async () => {
        const answers = await Promise.all(
          among.map((a) => a.json<string>('GET', '/v1/status/leader').catch(() => '')),
        );
        const first = answers[0];
        if (!first || answers.some((x) => x !== first)) return false;
        leader = this.agents.find((a) => a.serverAddress === first && a.running && a !== not);
        return leader !== undefined;
      },
      timeoutMs,
      'a leader all servers agree on',
    );
    return leader!;
  }

  async voters(via: AgentProcess): Promise<string[]> {
    const cfg = await via.json<{ Servers: { ID: string; Voter: boolean }[] }>(
      'GET',
      '/v1/operator/raft/configuration',
    );
    return cfg.Servers.filter((s) => s.Voter).map((s) => s.ID);
  }

  /** A write load that close() stops (see WriteLoad). */
  load(prefix: string, targets: () => AgentProcess[] = () => this.running()): WriteLoad {
    const load = new WriteLoad(targets, prefix);
    this.loads.push(load);
    return load;
  }

  /** Stops every load and process this cluster started. */
  async close(): Promise<void> {
    await Promise.all(this.loads.map((l) => l.stop()));
    await Promise.all([...this.clients, ...this.agents].map((a) => a.stop('SIGKILL').catch(() => null)));
    rmSync(this.root, { recursive: true, force: true });
  }
}

export async function waitFor(
  cond: () => Promise<boolean> | boolean,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await cond()) return;
    } catch {
      // not yet
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, rej) => {
      timer = setTimeout(() => rej(new Error(`${what} within ${ms}ms`)), ms);
    }),
  ]);
}

/**
 * A write load: sequential PUTs spread over the given agents, recording what was acknowledged.
 * It ends by itself after `maxMs`, so a test that fails before stop() cannot keep its file alive.
 */
export class WriteLoad {
  readonly acked = new Map<string, string>();
  failures = 0;
  private running = true;
  private readonly done: Promise<void>;

  constructor(targets: () => AgentProcess[], prefix: string, maxMs = 300_000) {
    const end = Date.now() + maxMs;
    this.done = (async () => {
      let i = 0;
      while (this.running && Date.now() < end) {
        const live = targets().filter((a) => a.running);
        const a = live[i % Math.max(1, live.length)];
        i++;
        if (!a) {
          await new Promise((r) => setTimeout(r, 50));
          continue;
        }
        const key = `${prefix}/${String(i).padStart(6, '0')}`;
        try {
          const r = await a.http('PUT', `/v1/kv/${key}`, `v${i}`, 10_000);
          if (r.status === 200 && r.text === 'true') this.acked.set(key, `v${i}`);
          else this.failures++;
        } catch {
          this.failures++;
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
  }
}

/** Every acknowledged write, read back (linearizably) through `via`. */
export async function assertAllPresent(
  via: AgentProcess,
  acked: Map<string, string>,
  prefix: string,
): Promise<void> {
  const entries = await via.json<{ Key: string; Value: string }[]>(
    'GET',
    `/v1/kv/${prefix}?recurse&consistent`,
  );
  const found = new Map(entries.map((e) => [e.Key, Buffer.from(e.Value, 'base64').toString()]));
  for (const [key, value] of acked)
    assert.equal(found.get(key), value, `acknowledged ${key} lost or changed`);
}

export function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'conclave-'));
}

/** Run the `conclave` command line (as an operator would) and collect its output. */
export function runConclave(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = { ...process.env };
  delete env.CONSUL_HTTP_ADDR;
  delete env.CONCLAVE_HTTP_ADDR;
  delete env.NODE_TEST_CONTEXT;
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['bin/conclave.mjs', ...args],
      { cwd: ROOT, env, timeout: 30_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}
