import { spawn, spawnSync } from 'node:child_process';

/**
 * Real client programs for interop tests. Outside CI a missing client skips its test; under
 * CI=true (where .ci/run installs them) a missing client fails the test loudly.
 */

export function hasCommand(command: string, args: string[] = ['--version']): boolean {
  const r = spawnSync(command, args, { stdio: 'ignore', timeout: 10_000 });
  return r.error === undefined && r.status === 0;
}

/** For `test(name, { skip: skipUnless(...) }, ...)`: false to run; a reason to skip; throws under CI. */
export function skipUnless(available: boolean, what: string): false | string {
  if (available) return false;
  if (process.env.CI === 'true') throw new Error(`${what} is required in CI but is not installed`);
  return `${what} is not installed`;
}

export const ETCDCTL = 'etcdctl';
export const hasEtcdctl = (): boolean => hasCommand(ETCDCTL, ['version']);

/** Debian's python3 (its dist-packages hold python3-etcd3 and python3-consul). */
export const SYSTEM_PYTHON = '/usr/bin/python3';
export const hasPythonModule = (module: string): boolean =>
  hasCommand(SYSTEM_PYTHON, ['-c', `import ${module}`]);

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run a command to completion with a bounded time; stdin optional. */
export function run(
  command: string,
  args: string[],
  options: { env?: Record<string, string>; input?: string; timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      env: { ...process.env, ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command} ${args.join(' ')} timed out; stderr: ${stderr}`));
    }, options.timeoutMs ?? 30_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(options.input ?? '');
  });
}

/** etcdctl (API v3) against the given endpoints. */
export function etcdctl(endpoints: string[], args: string[], input?: string): Promise<RunResult> {
  const options: { env: Record<string, string>; input?: string } = {
    env: { ETCDCTL_API: '3' },
  };
  if (input !== undefined) options.input = input;
  return run(
    ETCDCTL,
    ['--endpoints', endpoints.join(','), '--dial-timeout', '5s', '--command-timeout', '15s', ...args],
    options,
  );
}
