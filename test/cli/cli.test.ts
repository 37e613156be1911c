import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Agent } from '../../src/agent/agent.js';
import { buildConfig } from '../../src/agent/config.js';
import { agentAddress } from '../../src/cli/http-client.js';
import { silentLogger } from '../../src/server/logger.js';

/**
 * The `conclave` command as a user runs it: real processes from bin/conclave.mjs, ephemeral
 * ports only (the real ones come from the "agent ready" log line), every child killed at the end.
 */

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const BIN = 'bin/conclave.mjs';

const baseEnv: NodeJS.ProcessEnv = { ...process.env };
for (const name of ['CONSUL_HTTP_ADDR', 'CONCLAVE_HTTP_ADDR', 'CONCLAVE_DEBUG', 'NODE_TEST_CONTEXT'])
  delete baseEnv[name];

const children = new Set<ChildProcess>();
const tmp = mkdtempSync(join(tmpdir(), 'conclave-cli-test-'));
after(() => {
  for (const child of children) child.kill('SIGKILL');
  rmSync(tmp, { recursive: true, force: true });
});

interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function spawnConclave(args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: repoRoot,
    env: { ...baseEnv, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

/** Run one command to completion (SIGKILL after timeoutMs). */
function run(args: string[], options: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<Result> {
  const child = spawnConclave(args, options.env);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 20_000);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

const nonEmptyLines = (text: string): string[] => text.split('\n').filter((l) => l.trim() !== '');

/** Exit code 1, exactly one non-empty line on stderr, nothing on stdout, no stack trace. */
function assertOneLineFailure(r: Result, message?: RegExp): void {
  const context = `stdout: ${JSON.stringify(r.stdout)}\nstderr: ${JSON.stringify(r.stderr)}`;
  assert.equal(r.signal, null, `killed by ${r.signal}\n${context}`);
  assert.equal(r.code, 1, context);
  assert.doesNotMatch(r.stderr, /^\s+at /m, `a stack trace\n${context}`);
  assert.equal(nonEmptyLines(r.stderr).length, 1, `one line on stderr\n${context}`);
  assert.equal(r.stdout, '', context);
  if (message) assert.match(r.stderr, message);
}

interface RunningAgent {
  child: ChildProcess;
  /** The "agent ready" log fields. */
  ready: Record<string, unknown>;
  httpAddr: string;
  readyMs: number;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Start an agent and wait for its "agent ready" line: with -log-json a JSON object, otherwise
 * Consul-style text (`... agent: agent ready: ... http_port=1234 ...`).
 */
async function startAgent(args: string[], readyWithinMs = 20_000): Promise<RunningAgent> {
  const started = Date.now();
  const child = spawnConclave(args);
  let stdout = '';
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal }));
  });
  const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(`no "agent ready" line within ${readyWithinMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`),
      );
    }, readyWithinMs);
    child.on('error', reject);
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(
        new Error(`agent exited (${code ?? signal}) before ready\nstdout: ${stdout}\nstderr: ${stderr}`),
      );
    });
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      for (const line of stdout.split('\n').slice(0, -1)) {
        const fields = parseReady(line);
        if (fields) {
          clearTimeout(timer);
          resolve(fields);
        }
      }
    });
  });
  const readyMs = Date.now() - started;
  return {
    child,
    ready,
    httpAddr: `127.0.0.1:${ready.http_port}`,
    readyMs,
    stdout: () => stdout,
    stderr: () => stderr,
    exited,
  };
}

function parseReady(line: string): Record<string, unknown> | null {
  if (line.startsWith('{')) {
    const o = JSON.parse(line) as Record<string, unknown>;
    return o.msg === 'agent ready' ? o : null;
  }
  const text = /\bagent ready: (.*)$/.exec(line);
  if (!text) return null;
  const fields: Record<string, unknown> = {};
  for (const m of text[1]!.matchAll(/(\w+)=(\S+)/g))
    fields[m[1]!] = /^\d+$/.test(m[2]!) ? Number(m[2]) : m[2];
  return fields;
}

/** Wait for the agent to exit, SIGKILLing it (and failing) after ms. */
async function exitWithin(
  agent: RunningAgent,
  ms: number,
): Promise<{ code: number | null; signal: string | null }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      agent.child.kill('SIGKILL');
      reject(
        new Error(`agent still running after ${ms} ms\nstdout: ${agent.stdout()}\nstderr: ${agent.stderr()}`),
      );
    }, ms);
  });
  try {
    return await Promise.race([agent.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function stop(agent: RunningAgent | undefined): void {
  if (agent && agent.child.exitCode === null && agent.child.signalCode === null) agent.child.kill('SIGKILL');
}

/** A local port nothing listens on (bound once, then released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const DEV = [
  'agent',
  '-dev',
  '-http-port',
  '0',
  '-server-port',
  '0',
  '-etcd-port',
  '0',
  '-dns-port',
  '0',
  '-serf-lan-port',
  '0',
];

describe('bad command lines fail with one line on stderr', { concurrency: 4, timeout: 120_000 }, () => {
  const regularFile = join(tmp, 'regular-file');
  writeFileSync(regularFile, 'not a directory');
  const badJson = join(tmp, 'bad.json');
  writeFileSync(badJson, '{"server": true,');
  const unknownKey = join(tmp, 'unknown-key.json');
  writeFileSync(unknownKey, JSON.stringify({ server: true, data_dirr: '/x' }));
  // Server cases bind loopback and ephemeral ports, so a wrongly accepted one cannot take 8500.
  const SERVER = ['agent', '-server', '-bind', '127.0.0.1', '-http-port', '0', '-server-port', '0'];

  const cases: [string, string[], RegExp][] = [
    ['an unknown flag', ['agent', '-no-such-flag'], /unknown option/],
    [
      'a misspelled flag (with a suggestion)',
      ['agent', '-dev', '-htp-port', '1'],
      /unknown option.*http-port/,
    ],
    ['an unknown command', ['no-such-command'], /unknown command/],
    ['a flag without its value', ['agent', '-dev', '-http-port'], /argument missing/],
    ['-http-port abc', [...DEV, '-http-port', 'abc'], /^Error: -http-port must be a port number/],
    ['-http-port 70000', [...DEV, '-http-port', '70000'], /^Error: -http-port must be a port number/],
    ['a data dir that is a regular file', [...SERVER, '-data-dir', regularFile], /is not a directory/],
    [
      'a data dir under a regular file',
      [...SERVER, '-data-dir', join(regularFile, 'x')],
      /not usable: ENOTDIR/,
    ],
    ['a server without -data-dir', SERVER, /-data-dir is required/],
    [
      'a client agent without -data-dir',
      ['agent', '-bind', '127.0.0.1'],
      /^Error: -data-dir is required for a client agent/,
    ],
    ['a bad log level', [...DEV, '-log-level', 'loud'], /invalid log level "loud"/],
    ['a -bind that is not an IP', [...DEV, '-bind', 'localhost'], /-bind localhost is not an IP address/],
    ['-bootstrap with -bootstrap-expect', [...SERVER, '-bootstrap', '-bootstrap-expect', '3'], /exclusive/],
    ['a config file with bad JSON', [...DEV, '-config-file', badJson], /is not valid JSON/],
    ['a config file with an unknown key', [...DEV, '-config-file', unknownKey], /unknown key "data_dirr"/],
    ['a missing config file', [...DEV, '-config-file', join(tmp, 'missing.json')], /ENOENT/],
    ['kv get without a key', ['kv', 'get'], /missing required argument/],
  ];
  for (const [name, args, message] of cases) {
    test(name, async () => assertOneLineFailure(await run(args), message));
  }

  test('a command with no agent to talk to', async () => {
    const port = await closedPort();
    assertOneLineFailure(
      await run(['kv', 'get', 'x', '-http-addr', `127.0.0.1:${port}`]),
      /^Error: cannot reach the agent at http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/,
    );
    assertOneLineFailure(await run(['leave', '-http-addr', `127.0.0.1:${port}`]), /cannot reach the agent/);
    // fetch refuses some ports outright (6000 is X11's); say so rather than "fetch failed".
    assertOneLineFailure(await run(['kv', 'get', 'x', '-http-addr', '127.0.0.1:6000']), /: bad port$/m);
  });
});

describe('version and help', { concurrency: true, timeout: 60_000 }, () => {
  test('--version prints the package version and exits 0', async () => {
    const { version } = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as {
      version: string;
    };
    for (const flag of ['--version', '-version']) {
      const r = await run([flag]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim(), version);
      assert.equal(r.stderr, '');
    }
  });

  test('--help lists the commands and exits 0', async () => {
    for (const flag of ['--help', '-h']) {
      const r = await run([flag]);
      assert.equal(r.code, 0, r.stderr);
      for (const command of ['agent', 'leave', 'operator', 'kv'])
        assert.match(r.stdout, new RegExp(`\\b${command}\\b`));
      assert.equal(r.stderr, '');
    }
  });

  test('agent -help lists the agent flags and exits 0', async () => {
    const r = await run(['agent', '-help']);
    assert.equal(r.code, 0, r.stderr);
    for (const flag of ['--dev', '--data-dir', '--retry-join', '--http-port', '--config-file'])
      assert.ok(r.stdout.includes(flag), `${flag} in\n${r.stdout}`);
  });
});

describe('a dev agent driven through the CLI', () => {
  test('ready, kv put/get/delete, raft list-peers, leave', { timeout: 60_000 }, async (t) => {
    let agent: RunningAgent | undefined;
    try {
      agent = await startAgent([...DEV, '-log-json', '-node', 'cli-test']);
      // How fast is a benchmark's business (the machine may be busy); reported, not asserted.
      t.diagnostic(`ready after ${agent.readyMs} ms`);
      const { ready } = agent;
      assert.equal(typeof ready.http_port, 'number');
      assert.ok((ready.http_port as number) > 0);
      assert.equal(ready.http, `127.0.0.1:${ready.http_port}`);
      assert.equal(ready.node, 'cli-test');
      assert.equal(ready.datacenter, 'dc1');
      assert.equal(typeof ready.server_port, 'number');
      for (const line of nonEmptyLines(agent.stdout())) assert.doesNotThrow(() => JSON.parse(line), line);

      const addr = ['-http-addr', agent.httpAddr];
      let r = await run(['kv', 'put', 'app/greeting', 'hello world', ...addr]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'Success! Data written to: app/greeting\n');

      r = await run(['kv', 'get', 'app/greeting', ...addr]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'hello world\n');

      // -http-addr=..., flags before the key, and the address from CONSUL_HTTP_ADDR.
      r = await run(['kv', 'get', `-http-addr=${agent.httpAddr}`, 'app/greeting']);
      assert.equal(r.stdout, 'hello world\n', r.stderr);
      r = await run(['kv', 'get', 'app/greeting'], { env: { CONSUL_HTTP_ADDR: agent.httpAddr } });
      assert.equal(r.stdout, 'hello world\n', r.stderr);

      // Keys and values that need escaping survive the trip; a negative number is a value.
      r = await run(['kv', 'put', 'odd key/with?query#and%', '-5', ...addr]);
      assert.equal(r.code, 0, r.stderr);
      r = await run(['kv', 'get', 'odd key/with?query#and%', ...addr]);
      assert.equal(r.stdout, '-5\n', r.stderr);

      // -cas -modify-index 0 writes only a new key.
      r = await run(['kv', 'put', '-cas', '-modify-index', '0', 'app/greeting', 'again', ...addr]);
      assertOneLineFailure(r, /CAS did not match/);
      r = await run(['kv', 'put', '-cas', '-modify-index', '0', 'app/new', 'first', ...addr]);
      assert.equal(r.code, 0, r.stderr);

      r = await run(['kv', 'delete', 'app/greeting', ...addr]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'Success! Deleted key: app/greeting\n');
      assertOneLineFailure(
        await run(['kv', 'get', 'app/greeting', ...addr]),
        /^Error: No key exists at: app\/greeting$/m,
      );

      r = await run(['kv', 'delete', '-recurse', 'app', ...addr]);
      assert.equal(r.code, 0, r.stderr);
      assertOneLineFailure(await run(['kv', 'get', 'app/new', ...addr]), /No key exists/);

      r = await run(['operator', 'raft', 'list-peers', ...addr]);
      assert.equal(r.code, 0, r.stderr);
      const rows = nonEmptyLines(r.stdout).map((l) => l.split(/\s{2,}/));
      assert.deepEqual(rows[0], ['Node', 'ID', 'Address', 'State', 'Voter', 'RaftProtocol', 'Last Index']);
      assert.equal(rows.length, 2, r.stdout);
      const [node, id, address, state, voter] = rows[1]!;
      assert.equal(node, 'cli-test');
      assert.equal(id, ready.id);
      assert.equal(address, `127.0.0.1:${ready.server_port}`);
      assert.equal(state, 'leader');
      assert.equal(voter, 'true');
      assert.equal(rows.filter((row) => row[3] === 'leader').length, 1);

      r = await run(['leave', ...addr]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'Graceful leave complete\n');
      const exit = await exitWithin(agent, 10_000);
      assert.deepEqual(exit, { code: 0, signal: null }, agent.stderr());
      assert.equal(agent.stderr(), '');
    } finally {
      stop(agent);
    }
  });

  test('SIGTERM: a graceful leave and exit code 0; -dev writes nothing to a -data-dir', {
    timeout: 60_000,
  }, async () => {
    const dataDir = mkdtempSync(join(tmp, 'dev-data-'));
    let agent: RunningAgent | undefined;
    try {
      agent = await startAgent([...DEV, '-log-json', '-data-dir', dataDir]);
      agent.child.kill('SIGTERM');
      const exit = await exitWithin(agent, 5_000);
      assert.deepEqual(exit, { code: 0, signal: null }, agent.stderr());
      assert.match(agent.stdout(), /"msg":"caught signal, leaving gracefully"/);
      assert.match(agent.stdout(), /"msg":"agent stopped"/);
      assert.equal(agent.stderr(), '');
      assert.deepEqual(readdirSync(dataDir), [], '-dev keeps everything in memory');
    } finally {
      stop(agent);
    }
  });

  test('SIGINT with text logs: exit code 0', { timeout: 60_000 }, async () => {
    let agent: RunningAgent | undefined;
    try {
      agent = await startAgent(DEV);
      assert.ok((agent.ready.http_port as number) > 0, JSON.stringify(agent.ready));
      assert.match(agent.stdout(), /^\S+ \[INFO\] {2}agent: agent ready: /m);
      agent.child.kill('SIGINT');
      const exit = await exitWithin(agent, 5_000);
      assert.deepEqual(exit, { code: 0, signal: null }, agent.stderr());
      assert.match(agent.stdout(), /caught signal, leaving gracefully: signal=SIGINT/);
    } finally {
      stop(agent);
    }
  });
});

describe('agent shutdown', () => {
  test('a second signal (shutdown) stops an agent whose leave hangs', { timeout: 30_000 }, async () => {
    const config = buildConfig({
      dev: true,
      node: 'n1',
      httpPort: '0',
      serverPort: '0',
      etcdPort: '0',
      dnsPort: '0',
      serfLanPort: '0',
    });
    const agent = new Agent(config, silentLogger);
    await agent.start();
    try {
      // A leave that never finishes (a hand-off or removal waiting on an unreachable peer).
      agent.server.leave = () => new Promise<void>(() => {});
      void agent.leave();
      void agent.shutdown(1);
      let timer: NodeJS.Timeout | undefined;
      const stopped = await Promise.race([
        agent.stopped.then(() => true),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(false), 3_000);
        }),
      ]);
      clearTimeout(timer);
      assert.ok(stopped, 'stopped while the leave still hangs');
      assert.equal(agent.exitCode, 1);
    } finally {
      await agent.server.stop();
    }
  });
});

describe('agentAddress', () => {
  const saved = { consul: process.env.CONSUL_HTTP_ADDR, conclave: process.env.CONCLAVE_HTTP_ADDR };
  const restore = (name: string, value: string | undefined) => {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  };
  after(() => {
    restore('CONSUL_HTTP_ADDR', saved.consul);
    restore('CONCLAVE_HTTP_ADDR', saved.conclave);
  });

  test('flag, then CONCLAVE_HTTP_ADDR, then CONSUL_HTTP_ADDR, then 127.0.0.1:8500', () => {
    delete process.env.CONSUL_HTTP_ADDR;
    delete process.env.CONCLAVE_HTTP_ADDR;
    assert.equal(agentAddress(undefined), 'http://127.0.0.1:8500');
    process.env.CONSUL_HTTP_ADDR = '10.0.0.1:1';
    assert.equal(agentAddress(undefined), 'http://10.0.0.1:1');
    process.env.CONCLAVE_HTTP_ADDR = '10.0.0.2:2';
    assert.equal(agentAddress(undefined), 'http://10.0.0.2:2');
    assert.equal(agentAddress('10.0.0.3:3'), 'http://10.0.0.3:3');
  });

  test('a URL keeps its scheme and loses trailing slashes', () => {
    assert.equal(agentAddress('https://example.com:8501/'), 'https://example.com:8501');
    assert.equal(agentAddress('http://127.0.0.1:8500'), 'http://127.0.0.1:8500');
  });
});
