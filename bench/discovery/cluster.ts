import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { freePorts } from '../../test/ports.js';
import { loopbackAgentArgs } from '../agent-command.js';
import type { Processes } from '../etcd/clusters.js';

/**
 * A 3-server Conclave cluster as real processes on loopback, for the discovery benchmark. The
 * servers find each other with -bootstrap-expect 3 and -retry-join, so only their server ports
 * are chosen up front; HTTP, DNS and etcd ports are 0 and read back from each agent's
 * 'agent ready' log line. Every process goes through `Processes`, which stops them by PID.
 */

const READY_TIMEOUT_MS = 30_000;
const LEADER_TIMEOUT_MS = 60_000;
const SERVER_COUNT = 3;

/** Any agent the benchmark talks to: a server, or a client agent (serverPort 0). */
export interface Server {
  name: string;
  pid: number;
  httpPort: number;
  dnsPort: number;
  etcdPort: number;
  serverPort: number;
}

interface ReadyLine {
  msg?: string;
  http_port?: number;
  dns_port?: number;
  server_port?: number;
  etcd_port?: number;
}

/** Set before the benchmark stops its processes; until then, an exit is reported with its output. */
export const lifecycle = { stopping: false };

function reportUnexpectedExit(t: ReturnType<Processes['spawn']>): void {
  t.child.once('exit', (code, signal) => {
    if (lifecycle.stopping) return;
    process.stderr.write(
      `${t.name} exited unexpectedly (${code ?? signal}); its last output:\n${t.tail.join('\n')}\n`,
    );
  });
}

/** The agent's ports, read from its 'agent ready' log line (a client agent has no server port). */
function readyAgent(tracked: ReturnType<Processes['spawn']>): Promise<Server> {
  const { name } = tracked;
  return new Promise<Server>((res, rej) => {
    createInterface({ input: tracked.child.stdout! }).on('line', (text) => {
      let line: ReadyLine;
      try {
        line = JSON.parse(text) as ReadyLine;
      } catch {
        return;
      }
      if (line.msg !== 'agent ready') return;
      res({
        name,
        pid: tracked.child.pid!,
        httpPort: Number(line.http_port),
        dnsPort: Number(line.dns_port),
        etcdPort: Number(line.etcd_port ?? 0),
        serverPort: Number(line.server_port ?? 0),
      });
    });
    tracked.child.once('exit', (code) =>
      rej(new Error(`${name} exited (${code}) before ready:\n${tracked.tail.join('\n')}`)),
    );
    tracked.child.once('error', rej);
  });
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, rej) => {
    timer = setTimeout(() => rej(new Error(message())), ms);
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export async function startServers(procs: Processes, root: string): Promise<Server[]> {
  const names = Array.from({ length: SERVER_COUNT }, (_, i) => `s${i + 1}`);
  const serverPorts = await freePorts(names.length);
  const started = names.map((name, i) => {
    const dataDir = join(root, name);
    mkdirSync(dataDir, { recursive: true });
    const retryJoin = serverPorts.flatMap((port, j) => (j === i ? [] : ['-retry-join', `127.0.0.1:${port}`]));
    const tracked = procs.spawn(
      name,
      process.execPath,
      loopbackAgentArgs(name, dataDir, [
        '-server',
        '-server-port',
        String(serverPorts[i]),
        '-bootstrap-expect',
        String(SERVER_COUNT),
        ...retryJoin,
      ]),
    );
    reportUnexpectedExit(tracked);
    return { tracked, ready: readyAgent(tracked) };
  });
  const tails = () => started.map((s) => `--- ${s.tracked.name}:\n${s.tracked.tail.join('\n')}`).join('\n');
  const servers = await withTimeout(
    Promise.all(started.map((s) => s.ready)),
    READY_TIMEOUT_MS,
    () => `agents not ready in ${READY_TIMEOUT_MS} ms\n${tails()}`,
  );
  for (const s of servers) {
    if (!(s.httpPort > 0 && s.dnsPort > 0 && s.etcdPort > 0))
      throw new Error(`${s.name}: 'agent ready' line lacks a port: ${JSON.stringify(s)}`);
  }
  await waitForVoters(servers, tails);
  return servers;
}

/** Every server names the same leader, and the Raft configuration has all of them voting. */
async function waitForVoters(servers: Server[], tails: () => string): Promise<void> {
  const get = async (s: Server, path: string): Promise<unknown> => {
    const r = await fetch(`http://127.0.0.1:${s.httpPort}${path}`, { signal: AbortSignal.timeout(2000) });
    if (r.status !== 200) throw new Error(`${path}: ${r.status}`);
    return r.json();
  };
  const end = Date.now() + LEADER_TIMEOUT_MS;
  for (;;) {
    try {
      const leaders = await Promise.all(servers.map((s) => get(s, '/v1/status/leader')));
      const cfg = (await get(servers[0]!, '/v1/operator/raft/configuration')) as {
        Servers: { Voter: boolean }[];
      };
      if (
        leaders[0] &&
        leaders.every((l) => l === leaders[0]) &&
        cfg.Servers.filter((s) => s.Voter).length === 3
      )
        return;
    } catch {
      // not yet
    }
    if (Date.now() > end)
      throw new Error(`no leader with ${SERVER_COUNT} voters after ${LEADER_TIMEOUT_MS} ms\n${tails()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * `count` client agents (no -server) joined to `servers` with -retry-join, started a few at a
 * time; each answers on its own HTTP port and keeps its services in the catalog by anti-entropy.
 */
export async function startClients(
  procs: Processes,
  root: string,
  servers: readonly Server[],
  count: number,
): Promise<Server[]> {
  const joins = servers.flatMap((s) => ['-retry-join', `127.0.0.1:${s.serverPort}`]);
  const clients: Server[] = [];
  const STARTING_MAX = 4;
  for (let first = 0; first < count; first += STARTING_MAX) {
    const batch = Array.from({ length: Math.min(STARTING_MAX, count - first) }, (_, k) => {
      const name = `c${String(first + k + 1).padStart(3, '0')}`;
      const dataDir = join(root, name);
      mkdirSync(dataDir, { recursive: true });
      const tracked = procs.spawn(name, process.execPath, loopbackAgentArgs(name, dataDir, joins));
      reportUnexpectedExit(tracked);
      return withTimeout(
        readyAgent(tracked),
        READY_TIMEOUT_MS,
        () => `${name} not ready in ${READY_TIMEOUT_MS} ms\n${tracked.tail.join('\n')}`,
      );
    });
    clients.push(...(await Promise.all(batch)));
  }
  return clients;
}
