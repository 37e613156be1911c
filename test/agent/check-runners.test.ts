import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createTcpServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import {
  type AliasSource,
  type CheckRunner,
  OUTPUT_MAX_BYTES,
  StatusHandler,
  startRunner,
  truncateOutput,
} from '../../src/agent/local/check-runners.js';
import { decodeCheck } from '../../src/agent/local/definitions.js';
import type { HealthStatus } from '../../src/store/index.js';
import { close, eventually, listen, portOf, tempDir } from './helpers.js';

// Each runner probes a real peer on 127.0.0.1 (ephemeral ports). Runners fire within half a
// second of starting and then every interval (at least 1 s), so every wait is "eventually".

interface Result {
  status: HealthStatus;
  output: string;
}

/** Starts a runner for a check definition and records what it reports. */
function run(raw: Record<string, unknown>, aliasSource: AliasSource = () => null) {
  const results: Result[] = [];
  const def = decodeCheck({ Name: 'under test', ...raw }, { source: 'api' });
  const runner = startRunner(def, (status, output) => results.push({ status, output }), {
    aliasSource,
    nodeName: 'self',
  });
  assert.ok(runner, `a ${def.type} check has a runner`);
  runners.push(runner);
  return {
    results,
    stop: () => runner.stop(),
    /** The first result after `from` results that satisfies `ok`. */
    next: (what: string, ok: (r: Result) => boolean, from = 0, timeoutMs = 8000) =>
      eventually(what, () => results.slice(from).find(ok), timeoutMs),
  };
}

const runners: CheckRunner[] = [];
after(() => {
  for (const r of runners) r.stop();
});

test('truncateOutput: Consul output limit with its suffix', () => {
  assert.equal(OUTPUT_MAX_BYTES, 4096);
  assert.equal(truncateOutput('short'), 'short');
  assert.equal(truncateOutput('x'.repeat(4096)), 'x'.repeat(4096));
  assert.equal(truncateOutput('y'.repeat(5000)), `${'y'.repeat(4096)} ... (captured 4096 of 5000 bytes)`);
  // Bytes, not characters.
  assert.equal(truncateOutput('é'.repeat(3), 4), 'éé ... (captured 4 of 6 bytes)');
});

describe('TCP', () => {
  test('a listening port is passing with "TCP connect ...: Success"', async () => {
    const server = await listen(createTcpServer((socket) => socket.destroy()));
    try {
      const target = `127.0.0.1:${portOf(server)}`;
      const check = run({ TCP: target, Interval: '1s', Timeout: '2s' });
      const r = await check.next('a TCP result', () => true);
      assert.deepEqual(r, { status: 'passing', output: `TCP connect ${target}: Success` });
      check.stop();
    } finally {
      await close(server);
    }
  });

  test('a closed port is critical', async () => {
    const server = await listen(createTcpServer());
    const port = portOf(server);
    await close(server);
    const check = run({ TCP: `127.0.0.1:${port}`, Interval: '1s', Timeout: '2s' });
    const r = await check.next('a TCP result', () => true);
    assert.equal(r.status, 'critical');
    assert.match(r.output, new RegExp(`^dial tcp 127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`));
    check.stop();
  });
});

describe('gRPC health', () => {
  // grpc.health.v1.Health/Check by hand: HealthCheckRequest { string service = 1; },
  // HealthCheckResponse { ServingStatus status = 1; } (UNKNOWN 0, SERVING 1, NOT_SERVING 2).
  interface HealthRequest {
    service: string;
  }
  /** An object, as a protobuf decoder gives (grpc-js takes a falsy request for a missing one). */
  function decodeRequest(bytes: Buffer): HealthRequest {
    if (bytes.length === 0 || bytes[0] !== 0x0a) return { service: '' };
    let length = 0;
    let at = 1;
    for (let shift = 0; ; shift += 7) {
      const byte = bytes[at++]!;
      length |= (byte & 0x7f) << shift;
      if (byte < 0x80) break;
    }
    return { service: bytes.subarray(at, at + length).toString() };
  }
  const LONG_NAME = `svc.${'n'.repeat(300)}`;
  const SERVING = 1;
  const NOT_SERVING = 2;
  const statusByService = new Map<string, number>([
    ['', SERVING],
    ['good', SERVING],
    ['bad', NOT_SERVING],
    [LONG_NAME, SERVING],
  ]);
  const asked: string[] = [];
  const server = new grpc.Server();
  let port = 0;

  before(async () => {
    const definition: grpc.ServiceDefinition = {
      Check: {
        path: '/grpc.health.v1.Health/Check',
        requestStream: false,
        responseStream: false,
        requestSerialize: ({ service }: HealthRequest) =>
          Buffer.concat([Buffer.from([0x0a, service.length]), Buffer.from(service)]),
        requestDeserialize: decodeRequest,
        responseSerialize: (status: number) => (status === 0 ? Buffer.alloc(0) : Buffer.from([0x08, status])),
        responseDeserialize: (bytes: Buffer) => bytes[1] ?? 0,
      },
    };
    server.addService(definition, {
      Check: (call: grpc.ServerUnaryCall<HealthRequest, number>, callback: grpc.sendUnaryData<number>) => {
        asked.push(call.request.service);
        const status = statusByService.get(call.request.service);
        if (status === undefined) callback({ code: grpc.status.NOT_FOUND, details: 'unknown service' });
        else callback(null, status);
      },
    });
    port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, bound) =>
        err ? reject(err) : resolve(bound),
      ),
    );
  });
  after(() => server.forceShutdown());

  test('SERVING with no service name is passing', async () => {
    const target = `127.0.0.1:${port}`;
    const check = run({ GRPC: target, Interval: '1s', Timeout: '3s' });
    const r = await check.next('a gRPC result', () => true);
    assert.deepEqual(r, { status: 'passing', output: `gRPC check ${target}: success` });
    assert.ok(asked.includes(''), 'the overall server health was asked for');
    check.stop();
  });

  test('SERVING for a named service ("host:port/service") is passing', async () => {
    const target = `127.0.0.1:${port}/good`;
    const check = run({ GRPC: target, Interval: '1s', Timeout: '3s' });
    const r = await check.next('a gRPC result', () => true);
    assert.deepEqual(r, { status: 'passing', output: `gRPC check ${target}: success` });
    assert.ok(asked.includes('good'));
    check.stop();
  });

  test('a service name longer than 127 bytes (a two-byte length) is asked for intact', async () => {
    const target = `127.0.0.1:${port}/${LONG_NAME}`;
    const check = run({ GRPC: target, Interval: '1s', Timeout: '3s' });
    const r = await check.next('a gRPC result', () => true);
    assert.deepEqual(r, { status: 'passing', output: `gRPC check ${target}: success` });
    assert.ok(asked.includes(LONG_NAME));
    check.stop();
  });

  test('NOT_SERVING is critical', async () => {
    const target = `127.0.0.1:${port}/bad`;
    const check = run({ GRPC: target, Interval: '1s', Timeout: '3s' });
    const r = await check.next('a gRPC result', () => true);
    assert.deepEqual(r, { status: 'critical', output: `gRPC check ${target}: status NOT_SERVING` });
    check.stop();
  });

  test('NOT_SERVING for the whole server is critical', async () => {
    statusByService.set('', NOT_SERVING);
    try {
      const target = `127.0.0.1:${port}`;
      const check = run({ GRPC: target, Interval: '1s', Timeout: '3s' });
      const r = await check.next('a gRPC result', () => true);
      assert.deepEqual(r, { status: 'critical', output: `gRPC check ${target}: status NOT_SERVING` });
      check.stop();
    } finally {
      statusByService.set('', SERVING);
    }
  });

  test('an unknown service (NOT_FOUND) and a dead server are critical', async () => {
    const unknown = run({ GRPC: `127.0.0.1:${port}/nope`, Interval: '1s', Timeout: '3s' });
    const r = await unknown.next('a gRPC result', () => true);
    assert.equal(r.status, 'critical');
    assert.match(r.output, /unknown service/);
    unknown.stop();

    const dead = await listen(createTcpServer());
    const deadPort = portOf(dead);
    await close(dead);
    const check = run({ GRPC: `127.0.0.1:${deadPort}`, Interval: '1s', Timeout: '1s' });
    const d = await check.next('a gRPC result', () => true);
    assert.equal(d.status, 'critical');
    assert.match(d.output, new RegExp(`^gRPC 127\\.0\\.0\\.1:${deadPort}: `));
    check.stop();
  });
});

describe('HTTP', () => {
  interface Seen {
    method: string;
    headers: IncomingMessage['headers'];
    body: string;
  }
  const seen: Seen[] = [];
  let answer: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => res.end('ok');
  const server = createHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', headers: req.headers, body: Buffer.concat(chunks).toString() });
      answer(req, res);
    });
  });
  let base = '';
  before(async () => {
    await listen(server);
    base = `http://127.0.0.1:${portOf(server)}`;
  });
  after(async () => {
    server.closeAllConnections();
    await close(server);
  });

  test('method, headers and body are sent as configured; 2xx is passing', async () => {
    answer = (_req, res) => {
      res.writeHead(201, 'Created');
      res.end('all good');
    };
    const from = seen.length;
    const check = run({
      HTTP: `${base}/health`,
      Method: 'PUT',
      Header: { 'X-Token': ['t1', 't2'], 'Content-Type': ['application/json'] },
      Body: '{"probe":true}',
      Interval: '1s',
      Timeout: '2s',
    });
    const r = await check.next('an HTTP result', () => true);
    check.stop();
    assert.deepEqual(r, {
      status: 'passing',
      output: `HTTP PUT ${base}/health: 201 Created Output: all good`,
    });
    const req = seen[from]!;
    assert.equal(req.method, 'PUT');
    assert.equal(req.body, '{"probe":true}');
    assert.equal(req.headers['x-token'], 't1, t2');
    assert.equal(req.headers['content-type'], 'application/json');
    assert.equal(req.headers['user-agent'], 'Consul Health Check');
    assert.equal(req.headers.accept, 'text/plain, text/*, */*');
  });

  test('a configured User-Agent replaces the default', async () => {
    answer = (_req, res) => res.end();
    const from = seen.length;
    const check = run({ HTTP: `${base}/`, Header: { 'User-Agent': ['probe/1'] }, Interval: '1s' });
    await check.next('an HTTP result', () => true);
    check.stop();
    assert.equal(seen[from]!.headers['user-agent'], 'probe/1');
    assert.equal(seen[from]!.method, 'GET');
  });

  test('429 is warning, 503 is critical', async () => {
    answer = (req, res) => {
      res.writeHead(req.url === '/busy' ? 429 : 503);
      res.end('later');
    };
    const busy = run({ HTTP: `${base}/busy`, Interval: '1s' });
    const w = await busy.next('an HTTP result', () => true);
    busy.stop();
    assert.deepEqual(w, {
      status: 'warning',
      output: `HTTP GET ${base}/busy: 429 Too Many Requests Output: later`,
    });
    const down = run({ HTTP: `${base}/down`, Interval: '1s' });
    const c = await down.next('an HTTP result', () => true);
    down.stop();
    assert.deepEqual(c, {
      status: 'critical',
      output: `HTTP GET ${base}/down: 503 Service Unavailable Output: later`,
    });
  });

  test('a long body is cut to the output limit', async () => {
    answer = (_req, res) => res.end('b'.repeat(100_000));
    const check = run({ HTTP: `${base}/big`, Interval: '1s' });
    const r = await check.next('an HTTP result', () => true);
    check.stop();
    assert.equal(r.status, 'passing');
    assert.equal(r.output, `HTTP GET ${base}/big: 200 OK Output: ${'b'.repeat(OUTPUT_MAX_BYTES)}`);
  });

  test('no answer within the timeout is critical, and says so', async () => {
    answer = () => {}; // never answers
    const check = run({ HTTP: `${base}/slow`, Interval: '1s', Timeout: '300ms' });
    const r = await check.next('an HTTP result', () => true);
    check.stop();
    assert.deepEqual(r, { status: 'critical', output: `HTTP GET ${base}/slow: timed out after 300 ms` });
  });

  test('a body that stalls past the timeout is critical, and says so', async () => {
    answer = (_req, res) => {
      res.writeHead(200);
      res.write('partial');
    };
    const check = run({ HTTP: `${base}/stall`, Interval: '1s', Timeout: '300ms' });
    const r = await check.next('an HTTP result', () => true);
    check.stop();
    assert.deepEqual(r, { status: 'critical', output: `HTTP GET ${base}/stall: timed out after 300 ms` });
  });

  test('connection refused is critical', async () => {
    const dead = await listen(createTcpServer());
    const port = portOf(dead);
    await close(dead);
    const check = run({ HTTP: `http://127.0.0.1:${port}/`, Interval: '1s' });
    const r = await check.next('an HTTP result', () => true);
    check.stop();
    assert.equal(r.status, 'critical');
    assert.match(r.output, /^HTTP GET http:\/\/127\.0\.0\.1:\d+\/: .*ECONNREFUSED/);
  });
});

describe('HTTPS with a self-signed certificate', () => {
  let opensslMissing: string | false = false;
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
  } catch {
    opensslMissing = 'the openssl CLI is not installed (needed to make a self-signed certificate)';
  }
  const dir = tempDir('tls');
  let server: ReturnType<typeof createHttpsServer> | undefined;
  let url = '';

  before(async () => {
    if (opensslMissing) return;
    const key = join(dir.path, 'key.pem');
    const cert = join(dir.path, 'cert.pem');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        key,
        '-out',
        cert,
        '-days',
        '1',
        '-subj',
        '/CN=localhost',
      ],
      { stdio: 'ignore', timeout: 30_000 },
    );
    server = createHttpsServer({ key: readFileSync(key), cert: readFileSync(cert) }, (_req, res) =>
      res.end('secure'),
    );
    await listen(server);
    url = `https://127.0.0.1:${portOf(server)}/health`;
  });
  after(async () => {
    if (server) {
      server.closeAllConnections();
      await close(server);
    }
    dir.remove();
  });

  test('verified by default: critical', { skip: opensslMissing }, async () => {
    const check = run({ HTTP: url, Interval: '1s' });
    const r = await check.next('an HTTPS result', () => true);
    check.stop();
    assert.equal(r.status, 'critical');
    assert.match(r.output, /self[- ]signed certificate/);
  });

  test('TLSSkipVerify: passing', { skip: opensslMissing }, async () => {
    const check = run({ HTTP: url, TLSSkipVerify: true, Interval: '1s' });
    const r = await check.next('an HTTPS result', () => true);
    check.stop();
    assert.deepEqual(r, { status: 'passing', output: `HTTP GET ${url}: 200 OK Output: secure` });
  });
});

describe('alias', () => {
  test("follows the aliased service's checks through aliasSource", async () => {
    let checks: Result[] | null = [{ status: 'passing', output: '' }];
    const asked: [string, string][] = [];
    const check = run({ AliasService: 'web-1' }, (node, serviceId) => {
      asked.push([node, serviceId]);
      return checks;
    });
    let r = await check.next('passing', (x) => x.status === 'passing');
    assert.equal(r.output, 'All checks passing.');
    assert.deepEqual(asked[0], ['self', 'web-1'], 'no AliasNode means this node');

    checks = [
      { status: 'passing', output: '' },
      { status: 'warning', output: '' },
    ];
    let from = check.results.length;
    r = await check.next('warning', (x) => x.status === 'warning', from);
    assert.equal(r.output, 'Aliased checks are warning.');

    checks = [
      { status: 'warning', output: '' },
      { status: 'critical', output: '' },
    ];
    from = check.results.length;
    r = await check.next('critical', (x) => x.status === 'critical', from);
    assert.equal(r.output, 'Aliased checks are critical.');

    checks = [{ status: 'maintenance', output: '' }];
    from = check.results.length;
    r = await check.next('critical under maintenance', () => true, from);
    assert.equal(r.status, 'critical');

    checks = [];
    from = check.results.length;
    r = await check.next('passing with no checks', () => true, from);
    assert.deepEqual(r, { status: 'passing', output: 'No checks found.' });

    checks = null;
    from = check.results.length;
    r = await check.next('critical when gone', () => true, from);
    assert.deepEqual(r, { status: 'critical', output: 'Aliased service not found.' });
    check.stop();
  });

  test('an aliased node is looked up by its name', async () => {
    const asked: [string, string][] = [];
    const check = run({ AliasNode: 'other' }, (node, serviceId) => {
      asked.push([node, serviceId]);
      return null;
    });
    const r = await check.next('a result', () => true);
    check.stop();
    assert.deepEqual(r, { status: 'critical', output: 'Aliased node not found.' });
    assert.deepEqual(asked[0], ['other', '']);
  });
});

describe('StatusHandler thresholds', () => {
  /** Feeds results through a handler and returns the status after each one (null = unchanged). */
  function feed(thresholds: Record<string, number>, results: HealthStatus[]): (HealthStatus | null)[] {
    const def = decodeCheck(
      { Name: 't', TCP: '127.0.0.1:1', Interval: '1s', ...thresholds },
      { source: 'api' },
    );
    const updates: (HealthStatus | null)[] = [];
    const handler = new StatusHandler(def, (status) => updates.push(status));
    for (const r of results) handler.result(r, `result ${r}`);
    return updates;
  }
  const P = 'passing' as const;
  const W = 'warning' as const;
  const C = 'critical' as const;

  test('no thresholds: every result applies', () => {
    assert.deepEqual(feed({}, [P, C, W, P, C]), [P, C, W, P, C]);
  });

  test('the first result applies at once whatever the thresholds (Consul NewStatusHandler)', () => {
    assert.deepEqual(feed({ SuccessBeforePassing: 3 }, [P]), [P]);
    assert.deepEqual(feed({ FailuresBeforeCritical: 3 }, [C]), [C]);
  });

  test('SuccessBeforePassing: passing only after that many successes in a row', () => {
    assert.deepEqual(feed({ SuccessBeforePassing: 2 }, [C, P, P, P, C, P, C, P, P]), [
      C,
      null,
      P,
      P,
      C,
      null,
      C,
      null,
      P,
    ]);
  });

  test('a warning counts as a success, as in Consul', () => {
    assert.deepEqual(feed({ SuccessBeforePassing: 2 }, [C, W, W, P]), [C, null, W, P]);
    // ...and resets the failure count.
    assert.deepEqual(feed({ FailuresBeforeCritical: 2 }, [P, C, W, C, C]), [P, null, W, null, C]);
  });

  test('FailuresBeforeCritical alone: unchanged until that many failures (no early warning)', () => {
    assert.deepEqual(feed({ FailuresBeforeCritical: 3 }, [P, C, C, C, C, P, C]), [
      P,
      null,
      null,
      C,
      C,
      P,
      null,
    ]);
  });

  test('FailuresBeforeWarning below FailuresBeforeCritical: warning first, then critical', () => {
    assert.deepEqual(
      feed({ FailuresBeforeWarning: 1, FailuresBeforeCritical: 3 }, [P, C, C, C, P, C, C, C]),
      [P, W, W, C, P, W, W, C],
    );
    assert.deepEqual(
      feed({ FailuresBeforeWarning: 2, FailuresBeforeCritical: 4, SuccessBeforePassing: 2 }, [
        P,
        C,
        C,
        C,
        C,
        P,
        P,
      ]),
      [P, null, W, W, C, null, P],
    );
  });
});
