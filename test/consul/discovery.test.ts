import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Agent } from '../../src/agent/agent.js';
import { type AgentFlags, buildConfig } from '../../src/agent/config.js';
import { silentLogger } from '../../src/server/logger.js';
import { EPHEMERAL_PORTS, type HttpCall, httpCaller } from './in-process-agent.js';

// Service discovery through a dev agent over plain HTTP: the catalog and health endpoints,
// the agent's own services and checks, anti-entropy into the catalog, maintenance mode, and
// persistence of API registrations across a restart.

const PORTS = EPHEMERAL_PORTS;

async function startAgent(flags: AgentFlags): Promise<{ agent: Agent; call: HttpCall }> {
  const agent = new Agent(buildConfig({ ...PORTS, ...flags }), silentLogger);
  await agent.start();
  const call = httpCaller(`http://127.0.0.1:${agent.httpPort}`);
  return { agent, call };
}

async function eventually<T>(what: string, read: () => Promise<T>, ok: (v: T) => boolean): Promise<T> {
  const end = Date.now() + 15_000;
  for (;;) {
    const v = await read();
    if (ok(v)) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}: last ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface HealthEntry {
  Node: { Node: string; Address: string };
  Service: { ID: string; Service: string; Port: number; Tags: string[] };
  Checks: { CheckID: string; Status: string; Output: string }[];
}

describe('catalog and health endpoints', () => {
  let agent: Agent;
  let call: HttpCall;
  before(async () => {
    ({ agent, call } = await startAgent({ dev: true, node: 'disco' }));
  });
  after(async () => {
    await agent.shutdown();
  });

  test('register, list, query, filter and deregister external nodes', async () => {
    const register = (
      node: string,
      address: string,
      id: string,
      port: number,
      tags: string[],
      status: string,
    ) =>
      call('PUT', '/v1/catalog/register', {
        Node: node,
        Address: address,
        NodeMeta: { rack: node === 'ext1' ? 'r1' : 'r2' },
        Service: { ID: id, Service: 'api', Tags: tags, Port: port },
        Checks: [{ CheckID: `check-${id}`, Name: 'api health', Status: status, ServiceID: id }],
      });
    assert.equal((await register('ext1', '10.0.0.1', 'api1', 9001, ['v1', 'blue'], 'passing')).json, true);
    assert.equal((await register('ext2', '10.0.0.2', 'api2', 9002, ['v2'], 'critical')).json, true);

    const nodes = (await call('GET', '/v1/catalog/nodes')).json as { Node: string; Address: string }[];
    assert.ok(nodes.some((n) => n.Node === 'ext1' && n.Address === '10.0.0.1'));
    const services = (await call('GET', '/v1/catalog/services')).json as Record<string, string[]>;
    assert.deepEqual(services.api, ['blue', 'v1', 'v2']);
    assert.deepEqual((await call('GET', '/v1/catalog/datacenters')).json, ['dc1']);

    const all = (await call('GET', '/v1/catalog/service/api')).json as {
      ServiceID: string;
      ServicePort: number;
    }[];
    assert.deepEqual(all.map((s) => s.ServiceID).sort(), ['api1', 'api2']);
    const tagged = (await call('GET', '/v1/catalog/service/api?tag=v1&tag=blue')).json as {
      ServiceID: string;
    }[];
    assert.deepEqual(
      tagged.map((s) => s.ServiceID),
      ['api1'],
    );
    const byMeta = (await call('GET', '/v1/catalog/service/api?node-meta=rack:r2')).json as {
      ServiceID: string;
    }[];
    assert.deepEqual(
      byMeta.map((s) => s.ServiceID),
      ['api2'],
    );
    const filtered = (
      await call('GET', `/v1/catalog/service/api?filter=${encodeURIComponent('ServicePort == 9002')}`)
    ).json as { ServiceID: string }[];
    assert.deepEqual(
      filtered.map((s) => s.ServiceID),
      ['api2'],
    );
    const bad = await call('GET', `/v1/catalog/service/api?filter=${encodeURIComponent('ServicePort ==')}`);
    assert.equal(bad.status, 400);

    const healthy = (await call('GET', '/v1/health/service/api?passing')).json as HealthEntry[];
    assert.deepEqual(
      healthy.map((e) => e.Service.ID),
      ['api1'],
    );
    assert.equal(healthy[0]!.Node.Address, '10.0.0.1');
    const every = (await call('GET', '/v1/health/service/api')).json as HealthEntry[];
    assert.equal(every.length, 2);
    const critical = (await call('GET', '/v1/health/state/critical')).json as { CheckID: string }[];
    assert.ok(critical.some((c) => c.CheckID === 'check-api2'));
    assert.equal((await call('GET', '/v1/health/state/bogus')).status, 400);
    const checks = (await call('GET', '/v1/health/checks/api')).json as { CheckID: string }[];
    assert.deepEqual(checks.map((c) => c.CheckID).sort(), ['check-api1', 'check-api2']);
    const nodeChecks = (await call('GET', '/v1/health/node/ext1')).json as { CheckID: string }[];
    assert.deepEqual(
      nodeChecks.map((c) => c.CheckID),
      ['check-api1'],
    );
    const node = (await call('GET', '/v1/catalog/node/ext1')).json as { Services: Record<string, unknown> };
    assert.deepEqual(Object.keys(node.Services), ['api1']);
    assert.equal((await call('GET', '/v1/catalog/node/nobody')).json, null);

    // Bad registrations are 400s in Consul's words, and change nothing.
    assert.equal((await call('PUT', '/v1/catalog/register', { Node: 'x' })).status, 400);
    const badStatus = await call('PUT', '/v1/catalog/register', {
      Node: 'x',
      Address: '10.0.0.9',
      Check: { CheckID: 'c', Status: 'sideways' },
    });
    assert.equal(badStatus.status, 400);
    assert.match(badStatus.text, /Invalid check status/);
    assert.equal((await call('PUT', '/v1/catalog/register', '{not json')).status, 400);
    assert.equal((await call('GET', '/v1/catalog/node/x')).json, null);

    assert.equal(
      (await call('PUT', '/v1/catalog/deregister', { Node: 'ext2', ServiceID: 'api2' })).json,
      true,
    );
    const left = (await call('GET', '/v1/catalog/service/api')).json as { ServiceID: string }[];
    assert.deepEqual(
      left.map((s) => s.ServiceID),
      ['api1'],
    );
    assert.equal((await call('PUT', '/v1/catalog/deregister', { Node: 'ext1' })).json, true);
    assert.deepEqual((await call('GET', '/v1/catalog/service/api')).json, []);
  });

  test("a blocking health query wakes for its service's change, not for another service's", async () => {
    const reg = (id: string, svc: string, status: string) =>
      call('PUT', '/v1/catalog/register', {
        Node: 'blk',
        Address: '10.0.1.1',
        Service: { ID: id, Service: svc, Port: 1 },
        Check: { CheckID: `c-${id}`, Status: status, ServiceID: id },
      });
    await reg('a1', 'alpha', 'passing');
    await reg('b1', 'beta', 'passing');
    const first = await call('GET', '/v1/health/service/alpha');
    const waiting = call('GET', `/v1/health/service/alpha?index=${first.index}&wait=5s`);
    let woke = false;
    void waiting.then(() => {
      woke = true;
    });
    await reg('b1', 'beta', 'critical');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(woke, false, 'a change to beta does not wake a query on alpha');
    await reg('a1', 'alpha', 'critical');
    const answer = await waiting;
    assert.ok(answer.index > first.index);
    assert.equal(
      (answer.json as HealthEntry[])[0]!.Checks.find((c) => c.CheckID === 'c-a1')!.Status,
      'critical',
    );
  });
});

describe("the agent's own services and checks", () => {
  let agent: Agent;
  let call: HttpCall;
  let backend: Server;
  let backendStatus = 200;
  before(async () => {
    ({ agent, call } = await startAgent({ dev: true, node: 'local' }));
    backend = createServer((_req, res) => {
      res.writeHead(backendStatus);
      res.end(`status ${backendStatus}`);
    });
    await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  });
  after(async () => {
    backend.close();
    await agent.shutdown();
  });

  const instances = async (name: string, passing = false) =>
    (await call('GET', `/v1/health/service/${name}${passing ? '?passing' : ''}`)).json as HealthEntry[];

  test('a TTL check: critical until it reports, passing on pass, critical on fail and on expiry', async () => {
    const r = await call('PUT', '/v1/agent/service/register', {
      Name: 'ttl-svc',
      ID: 'ttl1',
      Port: 7000,
      Tags: ['t'],
      Check: { TTL: '2s' },
    });
    assert.equal(r.status, 200, r.text);
    const services = (await call('GET', '/v1/agent/services')).json as Record<
      string,
      { Service: string; Port: number }
    >;
    assert.equal(services.ttl1?.Port, 7000);
    const checks = (await call('GET', '/v1/agent/checks')).json as Record<
      string,
      { Status: string; Name: string }
    >;
    assert.equal(checks['service:ttl1']?.Status, 'critical');
    assert.equal(checks['service:ttl1']?.Name, "Service 'ttl-svc' check");
    // Anti-entropy carries it into the catalog: present, but not passing yet.
    await eventually(
      'the service in the catalog',
      () => instances('ttl-svc'),
      (v) => v.length === 1,
    );
    assert.deepEqual(await instances('ttl-svc', true), []);

    assert.equal((await call('PUT', '/v1/agent/check/pass/service:ttl1?note=all%20good')).status, 200);
    const passing = await eventually(
      'passing',
      () => instances('ttl-svc', true),
      (v) => v.length === 1,
    );
    assert.equal(passing[0]!.Checks.find((c) => c.CheckID === 'service:ttl1')!.Output, 'all good');

    // No report within the TTL: critical, with Consul's output.
    const expired = await eventually(
      'TTL expiry',
      () => instances('ttl-svc'),
      (v) => v[0]?.Checks.find((c) => c.CheckID === 'service:ttl1')?.Status === 'critical',
    );
    assert.match(expired[0]!.Checks.find((c) => c.CheckID === 'service:ttl1')!.Output, /^TTL expired/);

    const update = await call('PUT', '/v1/agent/check/update/service:ttl1', {
      Status: 'warning',
      Output: 'slow',
    });
    assert.equal(update.status, 200);
    await eventually(
      'warning',
      () => instances('ttl-svc'),
      (v) => v[0]?.Checks.find((c) => c.CheckID === 'service:ttl1')?.Status === 'warning',
    );
    assert.equal((await call('PUT', '/v1/agent/check/update/service:ttl1', { Status: 'nope' })).status, 400);
    assert.equal((await call('PUT', '/v1/agent/check/pass/no-such-check')).status, 404);

    assert.equal((await call('PUT', '/v1/agent/service/deregister/ttl1')).status, 200);
    await eventually(
      'the service gone from the catalog',
      () => instances('ttl-svc'),
      (v) => v.length === 0,
    );
    assert.equal((await call('PUT', '/v1/agent/service/deregister/ttl1')).status, 404);
  });

  test('an HTTP check follows its endpoint: 200 passing, 429 warning, 500 critical', async () => {
    const port = (backend.address() as { port: number }).port;
    backendStatus = 200;
    const r = await call('PUT', '/v1/agent/service/register', {
      Name: 'http-svc',
      Port: port,
      Check: { HTTP: `http://127.0.0.1:${port}/health`, Interval: '1s', Timeout: '1s' },
    });
    assert.equal(r.status, 200, r.text);
    const statusIs = (s: string) =>
      eventually(
        `HTTP check ${s}`,
        () => instances('http-svc'),
        (v) => v[0]?.Checks.find((c) => c.CheckID === 'service:http-svc')?.Status === s,
      );
    const ok = await statusIs('passing');
    assert.match(
      ok[0]!.Checks.find((c) => c.CheckID === 'service:http-svc')!.Output,
      /HTTP GET .*: 200 OK Output: status 200/,
    );
    backendStatus = 429;
    await statusIs('warning');
    backendStatus = 500;
    await statusIs('critical');
    backendStatus = 200;
    await statusIs('passing');
    assert.equal((await call('PUT', '/v1/agent/service/deregister/http-svc')).status, 200);
  });

  test('bad definitions are 400s; script checks are refused unless enabled', async () => {
    const cases: [unknown, RegExp][] = [
      [{ Port: 1 }, /Missing service name/],
      [{ Name: 'x', Check: { HTTP: 'http://127.0.0.1:1/' } }, /Interval/],
      [{ Name: 'x', Check: { TTL: '10s', TCP: '127.0.0.1:1' } }, /exactly one/],
      [{ Name: 'x', Port: 70000 }, /Port/],
      [{ Name: 'x', Check: { Args: ['/bin/true'], Interval: '10s' } }, /Scripts are disabled/],
      [{ Name: 'x', Meta: { 'consul-reserved': 'v' } }, /reserved prefix/],
    ];
    for (const [body, pattern] of cases) {
      const r = await call('PUT', '/v1/agent/service/register', body);
      assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.text}`);
      assert.match(r.text, pattern);
    }
    assert.equal(((await call('GET', '/v1/agent/services')).json as Record<string, unknown>).x, undefined);
  });

  test('maintenance mode takes the node and a service out of ?passing, and back', async () => {
    await call('PUT', '/v1/agent/service/register', {
      Name: 'maint-svc',
      Check: { TTL: '60s', Status: 'passing' },
    });
    await eventually(
      'passing',
      () => instances('maint-svc', true),
      (v) => v.length === 1,
    );
    assert.equal(
      (await call('PUT', '/v1/agent/service/maintenance/maint-svc?enable=true&reason=deploy')).status,
      200,
    );
    await eventually(
      'out of ?passing',
      () => instances('maint-svc', true),
      (v) => v.length === 0,
    );
    const checks = (await call('GET', '/v1/agent/checks')).json as Record<
      string,
      { Notes: string; Status: string }
    >;
    assert.equal(checks['_service_maintenance:maint-svc']?.Notes, 'deploy');
    assert.equal((await call('PUT', '/v1/agent/service/maintenance/maint-svc?enable=false')).status, 200);
    await eventually(
      'back in ?passing',
      () => instances('maint-svc', true),
      (v) => v.length === 1,
    );

    assert.equal((await call('PUT', '/v1/agent/maintenance?enable=true')).status, 200);
    await eventually(
      'node maintenance',
      () => instances('maint-svc', true),
      (v) => v.length === 0,
    );
    assert.equal((await call('PUT', '/v1/agent/maintenance?enable=false')).status, 200);
    await eventually(
      'node back',
      () => instances('maint-svc', true),
      (v) => v.length === 1,
    );
    assert.equal((await call('PUT', '/v1/agent/maintenance')).status, 400);
    assert.equal((await call('PUT', '/v1/agent/service/maintenance/nobody?enable=true')).status, 404);
  });

  test('anti-entropy puts back what the catalog API removed behind the agent', async () => {
    await call('PUT', '/v1/agent/service/register', {
      Name: 'sticky',
      Check: { TTL: '60s', Status: 'passing' },
    });
    await eventually(
      'registered',
      () => instances('sticky'),
      (v) => v.length === 1,
    );
    await call('PUT', '/v1/catalog/deregister', { Node: 'local', ServiceID: 'sticky' });
    await eventually(
      're-registered',
      () => instances('sticky', true),
      (v) => v.length === 1,
    );
  });
});

describe('agent registrations survive a restart', () => {
  test('services registered through the API, and config-file services, come back', {
    timeout: 60_000,
  }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'conclave-disco-'));
    const configFile = join(dir, 'services.json');
    writeFileSync(
      configFile,
      JSON.stringify({ service: { name: 'from-file', port: 81, check: { ttl: '30s', status: 'passing' } } }),
    );
    const flags: AgentFlags = {
      server: true,
      bootstrap: true,
      node: 'persist',
      dataDir: join(dir, 'data'),
      bind: '127.0.0.1',
      configFile: [configFile],
    };
    try {
      let { agent, call } = await startAgent(flags);
      try {
        const r = await call('PUT', '/v1/agent/service/register', { Name: 'kept', Port: 80 });
        assert.equal(r.status, 200, r.text);
      } finally {
        await agent.shutdown();
      }
      ({ agent, call } = await startAgent(flags));
      try {
        const services = (await call('GET', '/v1/agent/services')).json as Record<string, { Port: number }>;
        assert.equal(services.kept?.Port, 80);
        assert.equal(services['from-file']?.Port, 81);
        await eventually(
          'both in the catalog',
          async () => (await call('GET', '/v1/catalog/services')).json as Record<string, string[]>,
          (v) => 'kept' in v && 'from-file' in v,
        );
      } finally {
        await agent.shutdown();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a bad service in a config file stops the agent with a one-line error', () => {
    const dir = mkdtempSync(join(tmpdir(), 'conclave-disco-'));
    try {
      const configFile = join(dir, 'bad.json');
      writeFileSync(configFile, JSON.stringify({ service: { port: 1 } }));
      assert.throws(
        () => new Agent(buildConfig({ ...PORTS, dev: true, configFile: [configFile] }), silentLogger),
        /config file: service .*Missing service name/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
