import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type DevAgent, startDevAgent } from '../interop/dev-agent.js';
import { hasCommand, run, skipUnless } from '../interop/tools.js';

// dig (BIND's dnsutils), unmodified, against a -dev agent whose catalog was written through
// PUT /v1/catalog/register, as a Consul user would.

const skip = skipUnless(hasCommand('dig', ['-v']), 'dig');
let agent: DevAgent | null = null;
let configDir = '';
let httpBase = '';
let dnsPort = 0;

async function register(body: unknown): Promise<void> {
  const response = await fetch(`${httpBase}/v1/catalog/register`, {
    method: 'PUT',
    body: JSON.stringify(body),
  });
  assert.equal(response.status, 200, await response.text());
}

function instance(
  node: string,
  address: string,
  id: string,
  port: number,
  status: string,
  tags: string[] = [],
) {
  return {
    Node: node,
    Address: address,
    Service: { ID: id, Service: 'web', Tags: tags, Address: '', Port: port },
    Checks: [{ CheckID: `${id}-alive`, Name: `${id} alive`, Status: status, ServiceID: id }],
  };
}

async function dig(...args: string[]): Promise<string> {
  const r = await run('dig', ['@127.0.0.1', '-p', String(dnsPort), '+time=2', '+tries=2', ...args], {
    timeoutMs: 20_000,
  });
  assert.equal(r.code, 0, `dig ${args.join(' ')}: ${r.stdout}${r.stderr}`);
  return r.stdout;
}

const lines = (text: string): string[] =>
  text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .sort();

before(async () => {
  if (skip) return;
  configDir = mkdtempSync(join(tmpdir(), 'conclave-dns-'));
  const config = join(configDir, 'dns.json');
  writeFileSync(
    config,
    JSON.stringify({ dns_config: { enable_truncate: true, service_ttl: { '*': '5s' }, node_ttl: '7s' } }),
  );
  agent = await startDevAgent(['-config-file', config]);
  const ready = { http_port: agent.httpPort, dns_port: agent.dnsPort };
  httpBase = `http://127.0.0.1:${ready.http_port}`;
  dnsPort = ready.dns_port;
  assert.ok(dnsPort > 0, 'the ready line names the DNS port');
  for (let i = 1; i <= 6; i++)
    await register(
      instance(`web-${i}`, `10.7.0.${i}`, `web${i}`, 8080 + i, 'passing', i <= 2 ? ['primary'] : []),
    );
  await register(instance('web-sick', '10.7.0.99', 'web-sick', 8099, 'critical'));
  await register({
    Node: 'web-sick',
    Address: '10.7.0.99',
    Service: { ID: 'lonely', Service: 'lonely', Port: 1 },
    Checks: [{ CheckID: 'lonely-alive', Name: 'lonely alive', Status: 'critical', ServiceID: 'lonely' }],
  });
  await register(instance('web-tired', '10.7.0.98', 'web-tired', 8098, 'warning'));
});

after(() => {
  agent?.stop();
  if (configDir) rmSync(configDir, { recursive: true, force: true });
});

describe('dig against the DNS interface', { skip }, () => {
  test('SRV over TCP: every healthy instance, targets are nodes, critical left out', async () => {
    const out = await dig('web.service.consul', 'SRV', '+tcp', '+short');
    const expected = [1, 2, 3, 4, 5, 6].map((i) => `1 1 ${8080 + i} web-${i}.node.dc1.consul.`);
    assert.deepEqual(lines(out), [...expected, '1 1 8098 web-tired.node.dc1.consul.'].sort());
  });

  test('A over plain UDP: three answers with TC (enable_truncate); dig +ignore shows the flag', async () => {
    // udp_answer_limit binds clients without EDNS0 (Consul's rule), so dig is told not to send it.
    const out = await dig('web.service.consul', 'A', '+notcp', '+noedns', '+ignore');
    assert.match(out, /status: NOERROR/);
    assert.match(out, /flags: qr aa tc rd;/);
    const answers = out
      .split('\n')
      .filter((l) => /^web\.service\.consul\.\s+5\s+IN\s+A\s+10\.7\.0\.\d+$/.test(l));
    assert.equal(answers.length, 3);
    assert.ok(!out.includes('10.7.0.99'));
  });

  test('A over plain UDP without +ignore: dig retries over TCP by itself and gets them all', async () => {
    const out = await dig('web.service.consul', 'A', '+noedns', '+short');
    assert.equal(lines(out).length, 7);
  });

  test('A over UDP with EDNS0: every answer that fits, no TC', async () => {
    const out = await dig('web.service.consul', 'A', '+notcp', '+ignore');
    assert.match(out, /flags: qr aa rd;/);
    const answers = out
      .split('\n')
      .filter((l) => /^web\.service\.consul\.\s+5\s+IN\s+A\s+10\.7\.0\.\d+$/.test(l));
    assert.equal(answers.length, 7);
    assert.ok(!out.includes('10.7.0.99'));
  });

  test('tags, RFC 2782 form, datacenter and case', async () => {
    assert.deepEqual(lines(await dig('primary.web.service.consul', 'A', '+short')), ['10.7.0.1', '10.7.0.2']);
    const srv = lines(await dig('_web._tcp.service.dc1.consul', 'SRV', '+tcp', '+short'));
    assert.equal(srv.length, 7);
    assert.deepEqual(lines(await dig('_WEB._primary.Service.CONSUL', 'SRV', '+short')).length, 2);
  });

  test('SRV answers carry the target addresses in the additional section', async () => {
    const out = await dig('primary.web.service.consul', 'SRV', '+noall', '+additional');
    assert.deepEqual(
      lines(out).map((l) => l.split(/\s+/).join(' ')),
      ['web-1.node.dc1.consul. 5 IN A 10.7.0.1', 'web-2.node.dc1.consul. 5 IN A 10.7.0.2'],
    );
  });

  test('node lookup with node_ttl', async () => {
    const out = await dig('web-3.node.consul', 'A', '+noall', '+answer');
    assert.deepEqual(
      lines(out).map((l) => l.split(/\s+/).join(' ')),
      ['web-3.node.consul. 7 IN A 10.7.0.3'],
    );
  });

  test('NXDOMAIN with the SOA: unknown service, only critical instances, another datacenter', async () => {
    for (const name of ['nothing.service.consul', 'lonely.service.consul', 'web.service.dc2.consul']) {
      const out = await dig(name, 'A');
      assert.match(out, /status: NXDOMAIN/);
      assert.match(out, /AUTHORITY: 1/);
      assert.match(out, /consul\.\s+0\s+IN\s+SOA\s+ns\.consul\. hostmaster\.consul\. \d+ 3600 600 86400 0/);
    }
  });

  test('the zone apex answers SOA and NS; outside names are REFUSED', async () => {
    assert.match(
      await dig('consul', 'SOA', '+short'),
      /^ns\.consul\. hostmaster\.consul\. \d+ 3600 600 86400 0$/m,
    );
    assert.equal(lines(await dig('consul', 'NS', '+short')).length, 1);
    assert.match(await dig('example.com', 'A'), /status: REFUSED/);
  });
});
