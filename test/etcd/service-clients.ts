import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createInterface } from 'node:readline';
import * as grpc from '@grpc/grpc-js';
import { startEtcdApi } from '../../src/api/etcd/etcd-api.js';
import { silentLogger } from '../../src/server/logger.js';
import { ConclaveServer, type ServerOptions } from '../../src/server/server.js';
import { etcdProtos } from './protos.js';

/**
 * Test helpers for the Lock, Election, Cluster and Maintenance services: raw grpc-js clients
 * built from the server's own .proto files, in-process servers (one, or a cluster) with the
 * etcd API on ephemeral loopback ports, and long-running etcdctl children.
 */

// biome-ignore lint/suspicious/noExplicitAny: decoded protobuf messages.
export type Msg = any;

type Unary = (
  request: Msg,
  options: grpc.CallOptions,
  callback: (e: grpc.ServiceError | null, v: Msg) => void,
) => grpc.ClientUnaryCall;

export interface ServiceClients {
  kv: grpc.Client;
  lock: grpc.Client;
  election: grpc.Client;
  cluster: grpc.Client;
  maintenance: grpc.Client;
  close(): void;
}

export function serviceClients(endpoint: string): ServiceClients {
  const { etcdserverpb, v3lockpb, v3electionpb } = etcdProtos();
  const credentials = grpc.credentials.createInsecure();
  const clients = {
    kv: new etcdserverpb.KV(endpoint, credentials) as grpc.Client,
    lock: new v3lockpb.Lock(endpoint, credentials) as grpc.Client,
    election: new v3electionpb.Election(endpoint, credentials) as grpc.Client,
    cluster: new etcdserverpb.Cluster(endpoint, credentials) as grpc.Client,
    maintenance: new etcdserverpb.Maintenance(endpoint, credentials) as grpc.Client,
  };
  return {
    ...clients,
    close: () => {
      for (const c of Object.values(clients)) c.close();
    },
  };
}

/** A unary call as a promise; `started` gets the call (to cancel it). Deadline 20 s by default. */
export function unary(
  client: grpc.Client,
  method: string,
  request: Msg,
  options: { deadlineMs?: number; started?: (call: grpc.ClientUnaryCall) => void } = {},
): Promise<Msg> {
  return new Promise((resolve, reject) => {
    const fn = (client as unknown as Record<string, Unary>)[method];
    if (!fn) throw new Error(`no method ${method}`);
    const call = fn.call(
      client,
      request,
      { deadline: Date.now() + (options.deadlineMs ?? 20_000) },
      (err, value) => (err ? reject(err) : resolve(value)),
    );
    options.started?.(call);
  });
}

/** A promise's state without waiting for it. */
export async function settled(p: Promise<unknown>, waitMs = 0): Promise<boolean> {
  let done = false;
  p.then(
    () => {
      done = true;
    },
    () => {
      done = true;
    },
  );
  await new Promise((r) => setTimeout(r, waitMs));
  return done;
}

export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  ms: number,
  what: string,
): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > end) throw new Error(`timed out after ${ms}ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export interface EtcdMember {
  server: ConclaveServer;
  /** host:port of its etcd API. */
  endpoint: string;
  /** Stop the etcd API and the server (idempotent). */
  stop(): Promise<void>;
}

const TICK_MS = 20;

function newServer(name: string, bootstrap: ServerOptions['bootstrap'], extra: Partial<ServerOptions>) {
  return new ConclaveServer({
    nodeId: randomUUID(),
    nodeName: name,
    dataDir: null,
    bindHost: '127.0.0.1',
    serverPort: 0,
    bootstrap,
    retryJoin: [],
    log: silentLogger,
    tickMs: TICK_MS,
    holdTimeoutMs: 3000,
    joinIntervalMs: 100,
    ...extra,
  });
}

async function withApi(server: ConclaveServer): Promise<EtcdMember> {
  const api = await startEtcdApi(server, '127.0.0.1', 0);
  let stopped: Promise<void> | null = null;
  return {
    server,
    endpoint: `127.0.0.1:${api.port}`,
    stop: () => {
      stopped ??= (async () => {
        await api.close();
        await server.stop();
      })();
      return stopped;
    },
  };
}

/** `n` in-process servers bootstrapped together, each serving the etcd API. */
export async function startEtcdCluster(n: number, extra: Partial<ServerOptions> = {}): Promise<EtcdMember[]> {
  const servers = Array.from({ length: n }, (_, i) => newServer(`s${i + 1}`, n === 1 ? 'self' : n, extra));
  for (const s of servers) await s.start();
  for (const s of servers.slice(1)) await s.joinAddress(servers[0]!.serverAddress);
  await waitFor(
    () => servers.every((s) => s.leaderId() !== '' && s.raftStatus().config.voters.length === n),
    15_000,
    'a leader and every server voting',
  );
  return Promise.all(servers.map(withApi));
}

/** A new server that joins the cluster of `via` (as a learner first), serving the etcd API. */
export async function joinMember(name: string, via: EtcdMember): Promise<EtcdMember> {
  const server = newServer(name, null, { retryJoin: [via.server.serverAddress] });
  await server.start();
  return withApi(server);
}

export const leaderOf = (members: EtcdMember[]): EtcdMember => {
  const leader = members.find((m) => m.server.isLeader());
  if (!leader) throw new Error('no leader among the members');
  return leader;
};

/** A long-running child (etcdctl lock/elect) whose stdout lines are collected. */
export class Child {
  readonly lines: string[] = [];
  stderr = '';
  readonly exited: Promise<number | null>;
  private readonly child: ChildProcess;

  constructor(command: string, args: string[], env: Record<string, string> = {}) {
    this.child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code) => resolve(code));
      this.child.once('error', () => resolve(null));
    });
    createInterface({ input: this.child.stdout! }).on('line', (line) => this.lines.push(line));
    this.child.stderr!.on('data', (d: Buffer) => {
      this.stderr += d.toString();
    });
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  async waitForLines(n: number, ms: number, what: string): Promise<string[]> {
    await waitFor(() => this.lines.length >= n || !this.running, ms, what);
    if (this.lines.length < n) throw new Error(`${what}: exited early; stderr: ${this.stderr}`);
    return this.lines.slice(0, n);
  }

  /** Signal it and wait (bounded) for it to end; SIGKILL if it does not. */
  async kill(signal: NodeJS.Signals = 'SIGKILL', ms = 5000): Promise<void> {
    if (!this.running) return;
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), ms);
    await this.exited;
    clearTimeout(timer);
  }
}
