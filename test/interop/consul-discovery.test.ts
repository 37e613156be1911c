import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import Consul from 'consul';
import { Cluster, waitFor } from '../cluster/harness.js';
import { hasPythonModule, run, SYSTEM_PYTHON, skipUnless } from './tools.js';

// Service discovery with real, unmodified clients against a 3-server cluster: the `consul` npm
// client and python-consul (Debian python3-consul) register a service with a TTL check on one
// server's agent, pass and fail it, and watch it appear and disappear in /v1/health/service
// ?passing as read through another server; then deregister it.

let cluster: Cluster;

before(async () => {
  cluster = await Cluster.bootstrap(3);
});

after(async () => {
  await cluster?.close();
});

interface HealthEntry {
  Node: { Node: string };
  Service: { ID: string; Port: number; Tags: string[] };
  Checks: { CheckID: string; Status: string; Output: string }[];
}

test('consul npm: agent service with a TTL check, pass/fail, health ?passing, catalog, deregister', {
  timeout: 90_000,
}, async () => {
  const owner = new Consul({ host: '127.0.0.1', port: cluster.agents[0]!.httpPort });
  const reader = new Consul({ host: '127.0.0.1', port: cluster.agents[1]!.httpPort });
  await owner.agent.service.register({
    name: 'npm-web',
    id: 'npm-web-1',
    port: 8080,
    tags: ['blue'],
    check: { name: 'npm-web ttl', ttl: '30s', timeout: '', notes: 'reported by the test' },
  });
  const services = (await owner.agent.service.list()) as Record<string, { Service: string; Port: number }>;
  assert.equal(services['npm-web-1']?.Port, 8080);
  const passing = async () =>
    (await reader.health.service({ service: 'npm-web', passing: true })) as HealthEntry[];
  const everything = async () => (await reader.health.service('npm-web')) as HealthEntry[];

  await waitFor(async () => (await everything()).length === 1, 20_000, 'the service in the catalog');
  assert.deepEqual(await passing(), [], 'a new TTL check starts critical');

  await owner.agent.check.pass({ id: 'service:npm-web-1', note: 'fine' });
  await waitFor(async () => (await passing()).length === 1, 20_000, 'the instance to pass');
  const [entry] = await passing();
  assert.equal(entry!.Service.Port, 8080);
  assert.deepEqual(entry!.Service.Tags, ['blue']);
  assert.equal(entry!.Checks.find((c) => c.CheckID === 'service:npm-web-1')?.Output, 'fine');
  const nodes = (await reader.catalog.service.nodes('npm-web')) as { ServiceID: string; Node: string }[];
  assert.deepEqual(
    nodes.map((n) => [n.ServiceID, n.Node]),
    [['npm-web-1', cluster.agents[0]!.name]],
  );

  await owner.agent.check.fail({ id: 'service:npm-web-1', note: 'broken' });
  await waitFor(async () => (await passing()).length === 0, 20_000, 'the instance to drop out');

  await owner.agent.service.deregister('npm-web-1');
  await waitFor(async () => (await everything()).length === 0, 20_000, 'the service to be gone');
  assert.deepEqual(Object.keys((await reader.catalog.service.list()) as object).includes('npm-web'), false);
});

test('python-consul: agent service with a TTL check, pass/fail, health ?passing, deregister', {
  skip: skipUnless(hasPythonModule('consul'), 'python3-consul (Debian)'),
  timeout: 90_000,
}, async () => {
  const [owner, reader] = cluster.agents;
  const script = `
import consul, json, time
owner = consul.Consul(host='127.0.0.1', port=${owner!.httpPort})
reader = consul.Consul(host='127.0.0.1', port=${reader!.httpPort})
out = {}
def until(what, cond):
    end = time.time() + 20
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.1)
    raise SystemExit('timed out waiting for ' + what)
out['registered'] = owner.agent.service.register('py-web', service_id='py-web-1', port=9090, tags=['green'], check=consul.Check.ttl('30s'))
out['local'] = sorted(owner.agent.services().keys())
until('catalog', lambda: len(reader.health.service('py-web')[1]) == 1)
out['passing_before'] = len(reader.health.service('py-web', passing=True)[1])
owner.agent.check.ttl_pass('service:py-web-1', notes='ok')
until('passing', lambda: len(reader.health.service('py-web', passing=True)[1]) == 1)
index, nodes = reader.health.service('py-web', passing=True)
out['port'] = nodes[0]['Service']['Port']
out['tags'] = nodes[0]['Service']['Tags']
owner.agent.check.ttl_fail('service:py-web-1', notes='down')
until('critical', lambda: len(reader.health.service('py-web', passing=True)[1]) == 0)
out['catalog'] = [s['ServiceID'] for s in reader.catalog.service('py-web')[1]]
out['deregistered'] = owner.agent.service.deregister('py-web-1')
until('gone', lambda: len(reader.health.service('py-web')[1]) == 0)
print(json.dumps(out))
`;
  const r = await run(SYSTEM_PYTHON, ['-c', script], { timeoutMs: 80_000 });
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as Record<string, unknown>;
  assert.equal(out.registered, true);
  assert.ok((out.local as string[]).includes('py-web-1'));
  assert.equal(out.passing_before, 0);
  assert.equal(out.port, 9090);
  assert.deepEqual(out.tags, ['green']);
  assert.deepEqual(out.catalog, ['py-web-1']);
  assert.equal(out.deregistered, true);
});
