#!/usr/bin/env node
// Runs every test/**/*.test.ts file with node's own test runner (tsx as the loader), each file in
// its own process group, two at a time.
//
// Why not one `node --test a b c ...`: when a test times out, node marks it failed but a process it
// left running (an agent, etcd, postgres) keeps the file's process alive, and the runner waits for
// it forever. Here every file has a hard deadline; past it, or once the file has finished, its whole
// process group is killed, so nothing a test started outlives it and one hang is one failed file.
//
// Usage: node scripts/run-tests.mjs [substring ...]   (only files whose path contains one)
// Env: TEST_FILE_DEADLINE_S (default 600), TEST_CONCURRENCY (default 2).
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

// Loaded into each test process (and the runner's child for the file): see the file.
const BLOCKING_STDIO = new URL('./blocking-stdio.mjs', import.meta.url).href;
const deadlineMs = Number(process.env.TEST_FILE_DEADLINE_S ?? 600) * 1000;
const concurrency = Math.max(1, Number(process.env.TEST_CONCURRENCY ?? 2));
// Tests that name no timeout of their own get this one (node's default is none).
const perTestTimeoutMs = 300_000;

function findTests(dir) {
  const found = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) found.push(...findTests(path));
    else if (name.endsWith('.test.ts')) found.push(path);
  }
  return found;
}

const filter = process.argv.slice(2);
const files = findTests('test')
  .filter((f) => filter.length === 0 || filter.some((p) => f.includes(p)))
  .sort();
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}

/** Kills a process group; quiet when it is already gone. */
function killGroup(pgid) {
  try {
    process.kill(-pgid, 'SIGKILL');
    return true;
  } catch {
    return false;
  }
}

const running = new Set();
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    for (const pgid of running) killGroup(pgid);
    process.exit(130);
  });
}

/** Runs one file; resolves with its outcome once it and everything it started are gone. */
function runFile(file) {
  return new Promise((resolve) => {
    const began = Date.now();
    const child = spawn(
      process.execPath,
      [
        '--import',
        BLOCKING_STDIO,
        '--import',
        'tsx',
        '--test',
        '--test-force-exit',
        `--test-timeout=${perTestTimeoutMs}`,
        file,
      ],
      { detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    running.add(child.pid);
    const chunks = [];
    child.stdout.on('data', (d) => chunks.push(d));
    child.stderr.on('data', (d) => chunks.push(d));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid);
    }, deadlineMs);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      // Whatever the file left behind goes with it.
      killGroup(child.pid);
      running.delete(child.pid);
      const output = Buffer.concat(chunks);
      const counted = /^# tests (\d+)$/m.exec(output.toString('utf8'));
      const tests = counted ? Number(counted[1]) : undefined;
      resolve({ file, code, signal, timedOut, ms: Date.now() - began, output, tests });
    });
  });
}

/**
 * How many tests the TAP output shows as started ("# Subtest:") but never reported ("ok" or
 * "not ok" at the same depth). With --test-force-exit, Node's runner lost the last results of a
 * file about once per full run (exit code 0, a plan that counts fewer tests): the test process
 * exits with its events still queued on the pipe to the runner. blocking-stdio.mjs prevents that;
 * this check stays as the guard that a file's tests were all reported.
 */
function unfinishedTests(output) {
  const open = new Map();
  for (const line of output.toString('utf8').split('\n')) {
    const started = /^( *)# Subtest: /.exec(line);
    if (started) open.set(started[1].length, (open.get(started[1].length) ?? 0) + 1);
    const ended = /^( *)(?:not )?ok \d+ - /.exec(line);
    if (ended) open.set(ended[1].length, (open.get(ended[1].length) ?? 0) - 1);
  }
  let unfinished = 0;
  for (const count of open.values()) unfinished += Math.max(0, count);
  return unfinished;
}

const results = [];
const queue = [...files];
async function worker() {
  for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
    let r = await runFile(file);
    let cutShort = !r.timedOut && r.code === 0 && unfinishedTests(r.output) > 0;
    if (cutShort) {
      // The runner's fault, not the tests': run the file once more, and fail only if it happens again.
      process.stdout.write(`\n# ${file} stopped before all its tests ran; running it again\n`);
      r = await runFile(file);
      cutShort = !r.timedOut && r.code === 0 && unfinishedTests(r.output) > 0;
      if (cutShort) r.code = 1;
    }
    results.push(r);
    const verdict = r.timedOut
      ? 'TIMED OUT'
      : cutShort
        ? 'FAILED (stopped before all its tests ran, twice)'
        : r.code === 0
          ? 'ok'
          : `FAILED (${r.signal ?? `exit ${r.code}`})`;
    // The test count is printed so that runs can be compared: a file whose last results were lost
    // without a failure (see unfinishedTests) shows up as fewer tests than before.
    process.stdout.write(
      `\n# ===== ${file}: ${verdict} in ${(r.ms / 1000).toFixed(1)} s, ${r.tests ?? '?'} tests\n`,
    );
    process.stdout.write(r.output);
    if (r.timedOut) {
      process.stdout.write(
        `\n# ${file} was still running after ${deadlineMs / 1000} s; its process group was killed\n`,
      );
    }
  }
}
await Promise.all(Array.from({ length: concurrency }, worker));

const failed = results.filter((r) => r.timedOut || r.code !== 0);
const tests = results.reduce((sum, r) => sum + (r.tests ?? 0), 0);
process.stdout.write(`\n# ===== ${results.length} files, ${tests} tests, ${failed.length} failed\n`);
for (const r of results.sort((a, b) => b.ms - a.ms).slice(0, 8)) {
  process.stdout.write(`#   ${(r.ms / 1000).toFixed(1).padStart(6)} s  ${r.file}\n`);
}
for (const r of failed) process.stdout.write(`# FAILED: ${r.file}${r.timedOut ? ' (timed out)' : ''}\n`);
process.exit(failed.length === 0 ? 0 : 1);
