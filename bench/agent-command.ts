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
