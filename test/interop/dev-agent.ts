import { type ChildProcess, spawn } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/**
 * A `conclave agent -dev` process on ephemeral ports, for tests that drive it with real
 * clients. Its ports come from the 'agent ready' log line; stop() kills it by PID.
 */

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export interface DevAgent {
  child: ChildProcess;
  httpPort: number;
  dnsPort: number;
  etcdPort: number;
  /** http://127.0.0.1:PORT */
  base: string;
  stop(): void;
}

export async function startDevAgent(extraArgs: string[] = []): Promise<DevAgent> {
  const child = spawn(
    process.execPath,
    [
      join(ROOT, 'bin/conclave.mjs'),
      'agent',
      '-dev',
      '-http-port',
      '0',
      '-dns-port',
      '0',
      '-serf-lan-port',
      '0',
      '-etcd-port',
      '0',
      '-server-port',
      '0',
      '-log-json',
      ...extraArgs,
    ],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const stop = () => {
    child.kill('SIGKILL');
  };
  try {
    const ready = await new Promise<{ http_port: number; dns_port: number; etcd_port: number }>(
      (res, rej) => {
        const timer = setTimeout(() => rej(new Error('dev agent not ready within 15 s')), 15_000);
        createInterface({ input: child.stdout! }).on('line', (line) => {
          let parsed: { msg?: string; http_port: number; dns_port: number; etcd_port: number };
          try {
            parsed = JSON.parse(line) as typeof parsed;
          } catch {
            return;
          }
          if (parsed.msg === 'agent ready') {
            clearTimeout(timer);
            res(parsed);
          }
        });
        child.once('exit', (code) => {
          clearTimeout(timer);
          rej(new Error(`dev agent exited (${code}) before it was ready`));
        });
      },
    );
    return {
      child,
      httpPort: ready.http_port,
      dnsPort: ready.dns_port,
      etcdPort: ready.etcd_port,
      base: `http://127.0.0.1:${ready.http_port}`,
      stop,
    };
  } catch (err) {
    stop();
    throw err;
  }
}
