import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { freePort } from '../ports.js';
import { type DevAgent, startDevAgent } from './dev-agent.js';
import { hasCommand, skipUnless } from './tools.js';

// HAProxy (Debian `haproxy`), unmodified, load-balancing a service it finds through Conclave's
// DNS: a `resolvers` section pointing at the agent's DNS port and `server-template` on the
// RFC 2782 SRV name. Instances that register appear as backends, an instance whose check
// fails is taken out, and traffic flows only to the healthy ones (real HTTP backends).

const skip = skipUnless(hasCommand('haproxy', ['-v']), 'haproxy (Debian)');

let agent: DevAgent | null = null;
let haproxy: ChildProcess | null = null;
let dir = '';
const backends: Server[] = [];

/** An HTTP backend answering its name, on its own loopback address. */
async function backend(name: string, host: string): Promise<number> {
  const server = createServer((_req, res) => res.end(name));
  await new Promise<void>((r) => server.listen(0, host, r));
  backends.push(server);
  return (server.address() as { port: number }).port;
}

async function call(method: string, path: string, body?: unknown): Promise<number> {
  const init: RequestInit = { method, signal: AbortSignal.timeout(10_000) };
  if (body !== undefined) init.body = JSON.stringify(body);
  const res = await fetch(`${agent!.base}${path}`, init);
  await res.text();
  return res.status;
}

before(async () => {
  if (skip) return;
  agent = await startDevAgent();
  dir = mkdtempSync(join(tmpdir(), 'conclave-haproxy-'));
});

after(() => {
  haproxy?.kill('SIGKILL');
  agent?.stop();
  for (const b of backends) b.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Who answers `n` requests through HAProxy, as a count per backend name. */
async function spread(port: number, n: number): Promise<Map<string, number>> {
  const seen = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(3000) });
      const text = await res.text();
      const who = res.status === 200 ? text : `status ${res.status}`;
      seen.set(who, (seen.get(who) ?? 0) + 1);
    } catch {
      seen.set('error', (seen.get('error') ?? 0) + 1);
    }
  }
  return seen;
}

async function until(what: string, port: number, ok: (seen: Map<string, number>) => boolean): Promise<void> {
  const end = Date.now() + 45_000;
  let last = new Map<string, number>();
  while (Date.now() < end) {
    last = await spread(port, 24);
    if (ok(last)) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}; last spread ${JSON.stringify([...last])}`);
}

test('haproxy: server-template over SRV follows registrations and health', {
  skip,
  timeout: 150_000,
}, async () => {
  // Each instance has an address of its own (127.0.0.N), so its SRV target is its own name, as
  // instances on different hosts would be.
  const register = async (name: string, status: 'passing' | 'critical') => {
    const host = `127.0.0.${10 + backends.length}`;
    const port = await backend(name, host);
    const code = await call('PUT', '/v1/agent/service/register', {
      Name: 'web',
      ID: name,
      Address: host,
      Port: port,
      Check: { CheckID: `check-${name}`, TTL: '300s', Status: status },
    });
    assert.equal(code, 200);
  };
  await register('b1', 'passing');
  await register('b2', 'passing');
  await register('b3', 'passing');

  const frontPort = await freePort();
  const config = join(dir, 'haproxy.cfg');
  writeFileSync(
    config,
    `global
  maxconn 200

defaults
  mode http
  timeout connect 2s
  timeout client 10s
  timeout server 10s

resolvers conclave
  nameserver conclave 127.0.0.1:${agent!.dnsPort}
  accepted_payload_size 8192
  resolve_retries 3
  timeout resolve 500ms
  timeout retry 500ms
  hold valid 1s
  hold obsolete 1s
  hold nx 1s
  hold other 1s

frontend web
  bind 127.0.0.1:${frontPort}
  default_backend web

backend web
  balance roundrobin
  server-template web 6 _web._tcp.service.consul resolvers conclave resolve-prefer ipv4 init-addr none check inter 500ms
`,
  );
  const check = spawn('haproxy', ['-c', '-f', config], { stdio: 'pipe' });
  const checked = await new Promise<number | null>((r) => check.once('close', r));
  assert.equal(checked, 0, 'haproxy accepts the configuration');
  haproxy = spawn('haproxy', ['-db', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  haproxy.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });

  try {
    await until('all three backends to serve', frontPort, (s) =>
      ['b1', 'b2', 'b3'].every((b) => (s.get(b) ?? 0) > 0),
    );

    // b2's check fails: DNS stops naming it and HAProxy takes it out.
    assert.equal(await call('PUT', '/v1/agent/check/fail/check-b2?note=down'), 200);
    await until(
      'b2 to be taken out',
      frontPort,
      (s) => !s.has('b2') && (s.get('b1') ?? 0) > 0 && (s.get('b3') ?? 0) > 0,
    );

    // A new instance registers and starts taking traffic; b2 passes again and comes back.
    await register('b4', 'passing');
    assert.equal(await call('PUT', '/v1/agent/check/pass/check-b2'), 200);
    await until('b4 in and b2 back', frontPort, (s) =>
      ['b1', 'b2', 'b3', 'b4'].every((b) => (s.get(b) ?? 0) > 0),
    );

    // Deregistration takes an instance out too.
    assert.equal(await call('PUT', '/v1/agent/service/deregister/b1'), 200);
    await until('b1 to be gone', frontPort, (s) => !s.has('b1') && (s.get('b4') ?? 0) > 0);
  } catch (err) {
    throw new Error(`${(err as Error).message}\nhaproxy said:\n${stderr.slice(-2000)}`);
  }
});
