import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { decodeCheck, decodeServiceDefinition } from '../../src/agent/local/definitions.js';
import { HttpError } from '../../src/api/consul/errors.js';

// Decoding Consul check and service definitions (agent API bodies and config-file stanzas):
// https://developer.hashicorp.com/consul/docs/services/usage/checks and Consul's CheckType.Validate.

const api = { source: 'api' } as const;

/** Asserts `fn` throws a 400 HttpError whose message matches `message`. */
function rejects400(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof HttpError, `expected an HttpError, got ${String(err)}`);
    assert.equal(err.status, 400);
    assert.match(err.message, message);
    return true;
  });
}

describe('decodeCheck: every check type', () => {
  test('TTL', () => {
    const def = decodeCheck({ Name: 'ttl', TTL: '15s' }, api);
    assert.equal(def.type, 'ttl');
    assert.equal(def.ttlMs, 15_000);
    assert.equal(def.id, 'ttl', 'the ID defaults to the name');
    assert.equal(def.initialStatus, 'critical', 'Consul starts checks critical');
  });

  test('HTTP with method, headers, body and TLSSkipVerify', () => {
    const def = decodeCheck(
      {
        ID: 'web',
        Name: 'web check',
        HTTP: 'https://127.0.0.1:8443/health',
        Method: 'post',
        Header: { 'X-One': ['a', 'b'], 'X-Two': 'c' },
        Body: '{"ping":1}',
        TLSSkipVerify: true,
        Interval: '5s',
      },
      api,
    );
    assert.equal(def.type, 'http');
    assert.equal(def.intervalMs, 5000);
    assert.deepEqual(def.http, {
      url: 'https://127.0.0.1:8443/health',
      method: 'POST',
      headers: { 'X-One': ['a', 'b'], 'X-Two': ['c'] },
      body: '{"ping":1}',
      tlsSkipVerify: true,
    });
  });

  test('HTTP method defaults to GET, TLS verified', () => {
    const def = decodeCheck({ Name: 'h', HTTP: 'http://127.0.0.1/', Interval: '1s' }, api);
    assert.equal(def.http?.method, 'GET');
    assert.equal(def.http?.tlsSkipVerify, false);
    assert.deepEqual(def.http?.headers, {});
  });

  test('TCP', () => {
    const def = decodeCheck({ Name: 't', TCP: '127.0.0.1:22', Interval: '10s' }, api);
    assert.equal(def.type, 'tcp');
    assert.equal(def.tcp, '127.0.0.1:22');
  });

  test('gRPC, with and without TLS', () => {
    const plain = decodeCheck({ Name: 'g', GRPC: '127.0.0.1:9090/my.Service', Interval: '10s' }, api);
    assert.equal(plain.type, 'grpc');
    assert.deepEqual(plain.grpc, { target: '127.0.0.1:9090/my.Service', useTls: false });
    const tls = decodeCheck({ Name: 'g', GRPC: '127.0.0.1:9090', GRPCUseTLS: true, Interval: '10s' }, api);
    assert.deepEqual(tls.grpc, { target: '127.0.0.1:9090', useTls: true });
  });

  test('script, as Args or the older ScriptArgs', () => {
    const def = decodeCheck({ Name: 's', Args: ['/bin/true', '-x'], Interval: '10s' }, api);
    assert.equal(def.type, 'script');
    assert.deepEqual(def.args, ['/bin/true', '-x']);
    const old = decodeCheck({ Name: 's', ScriptArgs: ['/bin/true'], Interval: '10s' }, api);
    assert.deepEqual(old.args, ['/bin/true']);
  });

  test('alias, of a service and of a node', () => {
    const service = decodeCheck({ Name: 'a', AliasService: 'web-1' }, api);
    assert.equal(service.type, 'alias');
    assert.deepEqual(service.alias, { node: '', serviceId: 'web-1' });
    assert.equal(service.intervalMs, 0, 'alias checks take no interval');
    const node = decodeCheck({ Name: 'a', AliasNode: 'n2' }, api);
    assert.deepEqual(node.alias, { node: 'n2', serviceId: '' });
  });

  test('Status, Notes, ServiceID and an explicit CheckID', () => {
    const def = decodeCheck(
      { CheckID: 'c1', Name: 'n', Notes: 'hello', Status: 'passing', ServiceID: 'web', TTL: '1m' },
      api,
    );
    assert.equal(def.id, 'c1');
    assert.equal(def.notes, 'hello');
    assert.equal(def.initialStatus, 'passing');
    assert.equal(def.serviceId, 'web');
    assert.equal(def.ttlMs, 60_000);
  });
});

describe("decodeCheck: Consul's rules", () => {
  test('exactly one check type', () => {
    rejects400(() => decodeCheck({ Name: 'x' }, api), /exactly one of TTL, HTTP, TCP/);
    rejects400(
      () => decodeCheck({ Name: 'x', TTL: '10s', HTTP: 'http://127.0.0.1/', Interval: '10s' }, api),
      /exactly one/,
    );
    rejects400(
      () => decodeCheck({ Name: 'x', TCP: '127.0.0.1:1', GRPC: '127.0.0.1:2', Interval: '10s' }, api),
      /exactly one/,
    );
    rejects400(() => decodeCheck({ Name: 'x', TTL: '10s', AliasService: 'web' }, api), /exactly one/);
  });

  test('HTTP, TCP, gRPC and script checks require an interval', () => {
    for (const kind of [
      { HTTP: 'http://127.0.0.1/' },
      { TCP: '127.0.0.1:1' },
      { GRPC: '127.0.0.1:1' },
      { Args: ['/bin/true'] },
    ]) {
      rejects400(() => decodeCheck({ Name: 'x', ...kind }, api), /Interval must be > 0/);
      rejects400(() => decodeCheck({ Name: 'x', ...kind, Interval: '0s' }, api), /Interval must be > 0/);
    }
  });

  test('an interval under 1s is raised to 1s (checks.MinInterval), as Consul does', () => {
    const def = decodeCheck({ Name: 'x', TCP: '127.0.0.1:1', Interval: '100ms' }, api);
    assert.equal(def.intervalMs, 1000);
    assert.equal(decodeCheck({ Name: 'x', TCP: '127.0.0.1:1', Interval: '1s' }, api).intervalMs, 1000);
    assert.equal(decodeCheck({ Name: 'x', TCP: '127.0.0.1:1', Interval: '90s' }, api).intervalMs, 90_000);
  });

  test('TTL and Interval cannot both be given', () => {
    rejects400(
      () => decodeCheck({ Name: 'x', TTL: '10s', Interval: '10s' }, api),
      /Interval and TTL cannot both be specified/,
    );
  });

  test('the timeout defaults to 10s', () => {
    assert.equal(decodeCheck({ Name: 'x', TCP: '127.0.0.1:1', Interval: '5s' }, api).timeoutMs, 10_000);
    assert.equal(
      decodeCheck({ Name: 'x', TCP: '127.0.0.1:1', Interval: '5s', Timeout: '2s' }, api).timeoutMs,
      2000,
    );
  });

  test('durations as Go strings or as numbers of nanoseconds', () => {
    const def = decodeCheck(
      { Name: 'x', HTTP: 'http://127.0.0.1/', Interval: 2_000_000_000, Timeout: '1m30s' },
      api,
    );
    assert.equal(def.intervalMs, 2000);
    assert.equal(def.timeoutMs, 90_000);
    assert.equal(decodeCheck({ Name: 'x', TTL: 1_500_000_000 }, api).ttlMs, 1500);
    assert.equal(decodeCheck({ Name: 'x', TTL: '250ms' }, api).ttlMs, 250);
  });

  test('thresholds; FailuresBeforeWarning defaults to FailuresBeforeCritical', () => {
    const unset = decodeCheck({ Name: 'x', TTL: '1s' }, api);
    assert.equal(unset.successBeforePassing, 0);
    assert.equal(unset.failuresBeforeWarning, 0);
    assert.equal(unset.failuresBeforeCritical, 0);
    const onlyCritical = decodeCheck(
      { Name: 'x', TCP: '127.0.0.1:1', Interval: '1s', FailuresBeforeCritical: 3 },
      api,
    );
    assert.equal(onlyCritical.failuresBeforeWarning, 3);
    const both = decodeCheck(
      {
        Name: 'x',
        TCP: '127.0.0.1:1',
        Interval: '1s',
        SuccessBeforePassing: 2,
        FailuresBeforeWarning: 1,
        FailuresBeforeCritical: 3,
      },
      api,
    );
    assert.deepEqual(
      [both.successBeforePassing, both.failuresBeforeWarning, both.failuresBeforeCritical],
      [2, 1, 3],
    );
  });

  test('snake_case config-file keys', () => {
    const def = decodeCheck(
      {
        id: 'cfg',
        name: 'from a file',
        http: 'https://127.0.0.1:8443/',
        method: 'PUT',
        header: { 'x-a': ['1'] },
        tls_skip_verify: true,
        interval: '3s',
        timeout: '1s',
        deregister_critical_service_after: '90m',
        success_before_passing: 2,
        failures_before_warning: 1,
        failures_before_critical: 4,
        service_id: 'svc',
      },
      { source: 'config' },
    );
    assert.equal(def.id, 'cfg');
    assert.equal(def.name, 'from a file');
    assert.equal(def.http?.method, 'PUT');
    assert.equal(def.http?.tlsSkipVerify, true);
    assert.deepEqual(def.http?.headers, { 'x-a': ['1'] });
    assert.equal(def.intervalMs, 3000);
    assert.equal(def.timeoutMs, 1000);
    assert.equal(def.deregisterCriticalAfterMs, 90 * 60_000);
    assert.equal(def.successBeforePassing, 2);
    assert.equal(def.failuresBeforeWarning, 1);
    assert.equal(def.failuresBeforeCritical, 4);
    assert.equal(def.serviceId, 'svc');
    assert.equal(def.source, 'config');

    const script = decodeCheck(
      { name: 's', script_args: ['/bin/true'], interval: '1s' },
      { source: 'config' },
    );
    assert.deepEqual(script.args, ['/bin/true']);
    const grpc = decodeCheck({ name: 'g', grpc: '127.0.0.1:1', grpc_use_tls: true, interval: '1s' }, api);
    assert.equal(grpc.grpc?.useTls, true);
    const alias = decodeCheck({ name: 'a', alias_service: 'web', alias_node: 'n1' }, api);
    assert.deepEqual(alias.alias, { node: 'n1', serviceId: 'web' });
  });

  test('bad input is a 400 that names the problem', () => {
    rejects400(() => decodeCheck('not an object', api), /a check must be an object/);
    rejects400(() => decodeCheck({ TTL: '10s' }, api), /Missing check name/);
    rejects400(() => decodeCheck({ Name: 'x', TTL: 'ten seconds' }, api), /Invalid TTL: "ten seconds"/);
    rejects400(() => decodeCheck({ Name: 'x', TTL: true }, api), /TTL must be a duration/);
    rejects400(() => decodeCheck({ Name: 'x', TTL: -5 }, api), /TTL must be a duration/);
    rejects400(
      () => decodeCheck({ Name: 'x', TTL: '1s', Status: 'great' }, api),
      /Invalid check status: "great"/,
    );
    rejects400(() => decodeCheck({ Name: 'x', HTTP: 'not a url', Interval: '1s' }, api), /is not a URL/);
    rejects400(
      () => decodeCheck({ Name: 'x', HTTP: 'ftp://127.0.0.1/', Interval: '1s' }, api),
      /http or https URL/,
    );
    rejects400(
      () => decodeCheck({ Name: 'x', TCP: '127.0.0.1', Interval: '1s' }, api),
      /TCP must be host:port/,
    );
    rejects400(
      () => decodeCheck({ Name: 'x', Args: [1, 2], Interval: '1s' }, api),
      /Args must be a list of strings/,
    );
    rejects400(
      () => decodeCheck({ Name: 'x', HTTP: 'http://127.0.0.1/', Interval: '1s', Header: { A: 3 } }, api),
      /Header\.A must be a list of strings/,
    );
    rejects400(
      () => decodeCheck({ Name: 'x', TTL: '1s', FailuresBeforeCritical: -1 }, api),
      /FailuresBeforeCritical must be an integer/,
    );
    rejects400(() => decodeCheck({ Name: 7, TTL: '1s' }, api), /Check\.Name must be a string/);
  });
});

describe('decodeServiceDefinition', () => {
  test('one check: ID service:ID and the default name', () => {
    const def = decodeServiceDefinition({ Name: 'web', ID: 'web-1', Port: 80, Check: { TTL: '10s' } }, 'api');
    assert.equal(def.service.id, 'web-1');
    assert.equal(def.service.service, 'web');
    assert.equal(def.checks.length, 1);
    assert.equal(def.checks[0]!.id, 'service:web-1');
    assert.equal(def.checks[0]!.name, "Service 'web' check");
    assert.equal(def.checks[0]!.serviceId, 'web-1');
  });

  test('several checks: IDs service:ID:N from 1, explicit IDs and names kept', () => {
    const def = decodeServiceDefinition(
      {
        Name: 'web',
        Checks: [
          { TTL: '10s' },
          { CheckID: 'mine', Name: 'named', TTL: '10s' },
          { TCP: '127.0.0.1:80', Interval: '5s' },
        ],
      },
      'api',
    );
    assert.deepEqual(
      def.checks.map((c) => [c.id, c.name, c.serviceId]),
      [
        ['service:web:1', "Service 'web' check", 'web'],
        ['mine', 'named', 'web'],
        ['service:web:3', "Service 'web' check", 'web'],
      ],
    );
  });

  test('Check and Checks together count as several', () => {
    const def = decodeServiceDefinition({ Name: 'db', Check: { TTL: '1s' }, Checks: [{ TTL: '2s' }] }, 'api');
    assert.deepEqual(
      def.checks.map((c) => [c.id, c.ttlMs]),
      [
        ['service:db:1', 1000],
        ['service:db:2', 2000],
      ],
    );
  });

  test('a check inside a service cannot point at another service', () => {
    const def = decodeServiceDefinition({ Name: 'web', Check: { TTL: '1s', ServiceID: 'other' } }, 'api');
    assert.equal(def.checks[0]!.serviceId, 'web');
  });

  test('snake_case config file with its source', () => {
    const def = decodeServiceDefinition(
      {
        name: 'cache',
        id: 'cache-1',
        port: 6379,
        enable_tag_override: true,
        checks: [{ tcp: '127.0.0.1:6379', interval: '10s', deregister_critical_service_after: '1m' }],
      },
      'config',
    );
    assert.equal(def.source, 'config');
    assert.equal(def.service.enableTagOverride, true);
    assert.equal(def.checks[0]!.id, 'service:cache-1');
    assert.equal(def.checks[0]!.source, 'config');
    assert.equal(def.checks[0]!.deregisterCriticalAfterMs, 60_000);
  });

  test('bad input is a 400', () => {
    rejects400(() => decodeServiceDefinition([], 'api'), /a service must be an object/);
    rejects400(() => decodeServiceDefinition({ Port: 80 }, 'api'), /Missing service name/);
    rejects400(
      () => decodeServiceDefinition({ Name: 'web', Checks: { TTL: '1s' } }, 'api'),
      /Checks must be a list/,
    );
    rejects400(
      () => decodeServiceDefinition({ Name: 'web', Check: { HTTP: 'http://x/' } }, 'api'),
      /Interval/,
    );
  });
});
