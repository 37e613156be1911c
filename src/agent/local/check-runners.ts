import { spawn } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import type { HealthStatus } from '../../store/index.js';
import { splitHostPort } from '../../transport/address.js';
import type { CheckDefinition } from './definitions.js';

/**
 * The check types that run on the agent: HTTP, TCP, gRPC health, script and alias. Each runner
 * probes on its interval and hands every result to `report`; thresholds and output limits are
 * the caller's (see StatusHandler). TTL checks have no runner: their results come from the API.
 */

export type Report = (status: HealthStatus, output: string) => void;

export interface CheckRunner {
  stop(): void;
}

/** What an alias check reads: the checks of a service instance (or a node) in the catalog. */
export type AliasSource = (
  node: string,
  serviceId: string,
) => { status: HealthStatus; output: string }[] | null;

export interface RunnerDeps {
  aliasSource: AliasSource;
  /** The agent's own node, for alias checks that name no node. */
  nodeName: string;
}

/** Consul's check_output_max_size default. */
export const OUTPUT_MAX_BYTES = 4096;

export function truncateOutput(output: string, max = OUTPUT_MAX_BYTES): string {
  const bytes = Buffer.from(output);
  if (bytes.byteLength <= max) return output;
  return `${bytes.subarray(0, max).toString()} ... (captured ${max} of ${bytes.byteLength} bytes)`;
}

type Probe = (signal: AbortSignal) => Promise<{ status: HealthStatus; output: string }>;

/**
 * Runs `probe` every interval, the first time after a random fraction of it (Consul staggers
 * checks so an agent's checks do not all fire together), never two at once.
 */
function periodic(
  def: CheckDefinition,
  probe: Probe,
  report: Report,
  intervalMs = def.intervalMs,
): CheckRunner {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let inFlight: AbortController | undefined;
  const run = async () => {
    if (stopped) return;
    inFlight = new AbortController();
    const timeout = setTimeout(() => inFlight?.abort(), def.timeoutMs);
    try {
      const result = await probe(inFlight.signal);
      if (!stopped) report(result.status, result.output);
    } catch (err) {
      if (!stopped) report('critical', (err as Error).message);
    } finally {
      clearTimeout(timeout);
      inFlight = undefined;
    }
    if (!stopped) timer = setTimeout(run, intervalMs);
  };
  timer = setTimeout(run, Math.random() * Math.min(intervalMs, 500));
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
      inFlight?.abort();
    },
  };
}

/** Consul's HTTP check: 2xx passing, 429 warning, anything else (or no answer) critical. */
function httpProbe(def: CheckDefinition): Probe {
  const spec = def.http!;
  return (signal) =>
    new Promise((resolve) => {
      const url = new URL(spec.url);
      const headers: Record<string, string[] | string> = {
        'User-Agent': 'Consul Health Check',
        Accept: 'text/plain, text/*, */*',
      };
      for (const [k, v] of Object.entries(spec.headers)) headers[k] = v;
      const options = { method: spec.method, headers, signal, rejectUnauthorized: !spec.tlsSkipVerify };
      // A timeout can strike before the headers or while the body is read: say so either way.
      const failed = (err: Error) =>
        resolve({
          status: 'critical',
          output: signal.aborted
            ? `HTTP ${spec.method} ${spec.url}: timed out after ${def.timeoutMs} ms`
            : `HTTP ${spec.method} ${spec.url}: ${err.message}`,
        });
      const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, options, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (d: Buffer) => {
          // Keep only what the output can hold (Consul reads the body into an OUTPUT_MAX_BYTES buffer).
          if (size < OUTPUT_MAX_BYTES) chunks.push(d);
          size += d.byteLength;
        });
        res.on('end', () => {
          const code = res.statusCode ?? 0;
          const body = Buffer.concat(chunks).subarray(0, OUTPUT_MAX_BYTES).toString();
          const output = `HTTP ${spec.method} ${spec.url}: ${code} ${res.statusMessage ?? ''} Output: ${body}`;
          resolve({
            status: code >= 200 && code < 300 ? 'passing' : code === 429 ? 'warning' : 'critical',
            output,
          });
        });
        res.on('error', failed);
      });
      req.on('error', failed);
      req.end(spec.body);
    });
}

function tcpProbe(def: CheckDefinition): Probe {
  const target = def.tcp!;
  return (signal) =>
    new Promise((resolve) => {
      const { host, port } = splitHostPort(target);
      const socket = connect({ host, port, signal });
      socket.once('connect', () => {
        socket.destroy();
        resolve({ status: 'passing', output: `TCP connect ${target}: Success` });
      });
      socket.once('error', (err) => {
        socket.destroy();
        resolve({
          status: 'critical',
          output: `dial tcp ${target}: ${signal.aborted ? `i/o timeout after ${def.timeoutMs} ms` : err.message}`,
        });
      });
    });
}

// grpc.health.v1.Health/Check carries one-field messages: encoded by hand rather than loading a .proto.
function encodeHealthRequest(service: string): Buffer {
  const name = Buffer.from(service);
  if (name.byteLength === 0) return Buffer.alloc(0);
  // Field 1, wire type 2: tag 0x0a, then the length as a varint.
  const header = [0x0a];
  for (let n = name.byteLength; ; n >>>= 7) {
    if (n < 0x80) {
      header.push(n);
      break;
    }
    header.push((n & 0x7f) | 0x80);
  }
  return Buffer.concat([Buffer.from(header), name]);
}

function decodeHealthStatus(bytes: Buffer): number {
  // Field 1 (varint): the serving status; absent means UNKNOWN (0).
  return bytes.byteLength >= 2 && bytes[0] === 0x08 ? (bytes[1] ?? 0) : 0;
}

const SERVING_STATUS = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'];

function grpcProbe(def: CheckDefinition): Probe {
  const spec = def.grpc!;
  // Consul's form: host:port[/service].
  const slash = spec.target.indexOf('/');
  const address = slash < 0 ? spec.target : spec.target.slice(0, slash);
  const service = slash < 0 ? '' : spec.target.slice(slash + 1);
  return async (signal) => {
    // Loaded on a gRPC check's first run: agents without one never carry grpc-js (about 12 MiB).
    const grpc = await import('@grpc/grpc-js');
    return new Promise((resolve) => {
      const credentials = spec.useTls ? grpc.credentials.createSsl() : grpc.credentials.createInsecure();
      const client = new grpc.Client(address, credentials);
      const call = client.makeUnaryRequest(
        '/grpc.health.v1.Health/Check',
        (v: string) => encodeHealthRequest(v),
        (b: Buffer) => decodeHealthStatus(b),
        service,
        new grpc.Metadata(),
        { deadline: Date.now() + def.timeoutMs },
        (err, status) => {
          client.close();
          if (err) {
            resolve({ status: 'critical', output: `gRPC ${spec.target}: ${err.details || err.message}` });
            return;
          }
          const name = SERVING_STATUS[status ?? 0] ?? String(status);
          resolve({
            status: status === 1 ? 'passing' : 'critical',
            output:
              status === 1
                ? `gRPC check ${spec.target}: success`
                : `gRPC check ${spec.target}: status ${name}`,
          });
        },
      );
      signal.addEventListener('abort', () => call.cancel(), { once: true });
    });
  };
}

/**
 * Consul's script check: exit 0 passing, 1 warning, anything else critical. The script runs in
 * its own process group and a timeout kills the whole group, as Consul's KillCommandSubtree does,
 * so a `sh -c` wrapper cannot leave its children running.
 */
function scriptProbe(def: CheckDefinition): Probe {
  const [command, ...args] = def.args!;
  return (signal) =>
    new Promise((resolve) => {
      const child = spawn(command!, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
      const kept: Buffer[] = [];
      let keptBytes = 0;
      let totalBytes = 0;
      const take = (d: Buffer) => {
        // Keep only what the output can hold, but count everything for the "captured N of M" note.
        if (keptBytes <= OUTPUT_MAX_BYTES) {
          kept.push(d);
          keptBytes += d.byteLength;
        }
        totalBytes += d.byteLength;
      };
      const output = () => {
        const bytes = Buffer.concat(kept);
        if (totalBytes <= OUTPUT_MAX_BYTES) return bytes.toString();
        return `${bytes.subarray(0, OUTPUT_MAX_BYTES).toString()} ... (captured ${OUTPUT_MAX_BYTES} of ${totalBytes} bytes)`;
      };
      const kill = () => {
        try {
          if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
      };
      let settled = false;
      const settle = (status: HealthStatus, text: string) => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', onAbort);
        resolve({ status, output: text });
      };
      const onAbort = () => {
        kill();
        // Consul's CheckMonitor: the timeout message, then what the script wrote before it.
        const text = output();
        settle('critical', `Timed out (${def.timeoutMs} ms) running check${text ? `\n\n${text}` : ''}`);
      };
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
      child.stdout.on('data', take);
      child.stderr.on('data', take);
      child.once('error', (err) => settle('critical', `exec: ${err.message}`));
      child.once('close', (code, killedBy) => {
        if (code === null) {
          // Killed by someone else (the OOM killer, the script itself): still a result, never a hang.
          const text = output();
          const gap = text === '' || text.endsWith('\n') ? '' : '\n';
          settle('critical', `${text}${gap}killed by ${killedBy ?? 'a signal'}`);
          return;
        }
        settle(code === 0 ? 'passing' : code === 1 ? 'warning' : 'critical', output());
      });
    });
}

/** Consul's alias check: the worst status among the aliased instance's checks (and its node's). */
function aliasProbe(def: CheckDefinition, deps: RunnerDeps): Probe {
  const { node, serviceId } = def.alias!;
  return async () => {
    const checks = deps.aliasSource(node || deps.nodeName, serviceId);
    if (checks === null)
      return { status: 'critical', output: `Aliased ${serviceId ? 'service' : 'node'} not found.` };
    if (checks.length === 0) return { status: 'passing', output: 'No checks found.' };
    const worst = checks.some((c) => c.status === 'critical' || c.status === 'maintenance')
      ? 'critical'
      : checks.some((c) => c.status === 'warning')
        ? 'warning'
        : 'passing';
    return {
      status: worst,
      output: worst === 'passing' ? 'All checks passing.' : `Aliased checks are ${worst}.`,
    };
  };
}

/** How often an alias check re-reads the catalog (Consul blocks on it; a local read is cheap). */
const ALIAS_INTERVAL_MS = 1000;

export function startRunner(def: CheckDefinition, report: Report, deps: RunnerDeps): CheckRunner | null {
  switch (def.type) {
    case 'http':
      return periodic(def, httpProbe(def), report);
    case 'tcp':
      return periodic(def, tcpProbe(def), report);
    case 'grpc':
      return periodic(def, grpcProbe(def), report);
    case 'script':
      return periodic(def, scriptProbe(def), report);
    case 'alias':
      return periodic(def, aliasProbe(def, deps), report, ALIAS_INTERVAL_MS);
    default:
      return null;
  }
}

/**
 * Consul's success/failure thresholds (success_before_passing, failures_before_warning,
 * failures_before_critical): a status flips only after that many results in a row, so one
 * slow probe does not flap a service out of DNS (Consul #1337).
 */
export class StatusHandler {
  // Consul's NewStatusHandler starts both counters at their thresholds, so the first result
  // after registration applies at once; the thresholds govern every change after that.
  private successes: number;
  private failures: number;

  constructor(
    private readonly def: CheckDefinition,
    private readonly update: (status: HealthStatus | null, output: string) => void,
  ) {
    this.successes = def.successBeforePassing;
    this.failures = def.failuresBeforeCritical;
  }

  result(status: HealthStatus, output: string): void {
    // Consul counts a warning as a success: only critical results count as failures.
    if (status === 'passing' || status === 'warning') {
      this.successes++;
      this.failures = 0;
      this.update(this.successes >= this.def.successBeforePassing ? status : null, output);
      return;
    }
    this.failures++;
    this.successes = 0;
    if (this.failures >= this.def.failuresBeforeCritical) this.update(status, output);
    else if (this.failures >= this.def.failuresBeforeWarning) this.update('warning', output);
    else this.update(null, output);
  }
}
