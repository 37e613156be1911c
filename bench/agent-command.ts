import { spawnSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * How the benchmarks start an agent: the compiled build (`npm run build`, made once per
 * benchmark run), which is what a deployment runs; CONCLAVE_BENCH_TSX=1 runs the TypeScript
 * sources through tsx instead (about 40 MiB more per process, slower start).
 */

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
let built = false;

/** Arguments for process.execPath that run `conclave`. */
export function conclaveCommand(): string[] {
  if (process.env.CONCLAVE_BENCH_TSX === '1') return [join(ROOT, 'bin/conclave.mjs')];
  if (!built) {
    const r = spawnSync(process.execPath, [join(ROOT, 'scripts/build.mjs')], { cwd: ROOT, stdio: 'inherit' });
    if (r.status !== 0) throw new Error('npm run build failed');
    built = true;
  }
  return [join(ROOT, 'dist/src/cli/main.js')];
}

/**
 * Arguments for process.execPath that start one loopback agent named `name`, every client port
 * picked free, JSON logs (its 'agent ready' line gives the ports); `extra` adds -server,
 * -server-port, joins and the like.
 */
export function loopbackAgentArgs(name: string, dataDir: string, extra: string[]): string[] {
  return [
    ...conclaveCommand(),
    'agent',
    '-node',
    name,
    '-data-dir',
    dataDir,
    '-bind',
    '127.0.0.1',
    '-client',
    '127.0.0.1',
    '-http-port',
    '0',
    '-dns-port',
    '0',
    '-serf-lan-port',
    '0',
    '-etcd-port',
    '0',
    ...extra,
    '-log-json',
  ];
}
