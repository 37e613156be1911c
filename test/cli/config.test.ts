import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { type AgentFlags, buildConfig, ConfigError, DEFAULT_PORTS } from '../../src/agent/config.js';

const root = mkdtempSync(join(tmpdir(), 'conclave-config-test-'));
after(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;
/** A fresh directory under this file's temp root. */
const freshDir = (): string => join(root, `d${++dirs}`);

/** Write a config file (an object is written as JSON, a string verbatim) and return its path. */
function configFile(content: unknown): string {
  const path = join(root, `config-${++dirs}.json`);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

/** A non-dev server that needs no network guesswork: bound to loopback, with its own data dir. */
const server = (more: AgentFlags = {}): AgentFlags => ({
  server: true,
  bind: '127.0.0.1',
  node: 'n1',
  dataDir: freshDir(),
  ...more,
});

function configError(flags: AgentFlags, message: RegExp): void {
  assert.throws(
    () => buildConfig(flags),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
      assert.equal(err.name, 'ConfigError');
      assert.match(err.message, message);
      assert.ok(!err.message.includes('\n'), `one-line message: ${JSON.stringify(err.message)}`);
      return true;
    },
  );
}

describe('buildConfig defaults', () => {
  test('-dev: a server on 127.0.0.1 with Consul ports, dc1, no data dir, fast ticks', () => {
    const c = buildConfig({ dev: true, node: 'n1' });
    assert.equal(c.dev, true);
    assert.equal(c.server, true, '-dev implies -server');
    assert.equal(c.bindAddr, '127.0.0.1');
    assert.equal(c.clientAddr, '127.0.0.1');
    assert.equal(c.advertiseAddr, undefined);
    assert.deepEqual(c.ports, { http: 8500, dns: 8600, server: 8300, serfLan: 8301, etcd: 2379 });
    assert.deepEqual(c.ports, DEFAULT_PORTS);
    assert.equal(c.datacenter, 'dc1');
    assert.equal(c.dataDir, null);
    assert.equal(c.bootstrap, false);
    assert.equal(c.bootstrapExpect, 0);
    assert.deepEqual(c.retryJoin, []);
    assert.equal(c.logLevel, 'info');
    assert.equal(c.logJson, false);
    assert.equal(c.nodeName, 'n1');
    assert.equal(c.nodeId, undefined);
    assert.equal(c.raftTickMs, 10);
    assert.equal(c.raftSnapshotThreshold, 16384);
  });

  test('the node name defaults to the host name', (t) => {
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(hostname())) {
      t.skip(`host name ${hostname()} is not a valid node name here`);
      return;
    }
    assert.equal(buildConfig({ dev: true }).nodeName, hostname());
  });

  test('DEFAULT_PORTS cannot be changed by a caller', () => {
    const c = buildConfig({ dev: true, node: 'n1', httpPort: '1' });
    assert.equal(c.ports.http, 1);
    assert.equal(DEFAULT_PORTS.http, 8500);
    assert.ok(Object.isFrozen(DEFAULT_PORTS));
  });

  test('a non-dev server: slower ticks, the given data dir (created), not dev', () => {
    const dir = join(freshDir(), 'nested', 'data');
    const c = buildConfig(server({ dataDir: dir }));
    assert.equal(c.dev, false);
    assert.equal(c.server, true);
    assert.equal(c.dataDir, dir);
    assert.ok(statSync(dir).isDirectory(), 'the data dir is created');
    assert.equal(c.raftTickMs, 100);
    assert.equal(c.bindAddr, '127.0.0.1');
    assert.deepEqual(c.ports, DEFAULT_PORTS);
  });

  test('an existing empty data dir is fine', () => {
    const dir = mkdtempSync(join(root, 'existing-'));
    assert.equal(buildConfig(server({ dataDir: dir })).dataDir, dir);
  });

  test('-dev does not need, check or create a data dir', () => {
    const dir = join(freshDir(), 'never-made');
    const c = buildConfig({ dev: true, node: 'n1', dataDir: dir });
    assert.equal(c.dev, true);
    assert.equal(existsSync(dir), false);
  });
});

describe('buildConfig flags', () => {
  test('every port flag lands on its port, 0 allowed', () => {
    const c = buildConfig({
      dev: true,
      node: 'n1',
      httpPort: '0',
      dnsPort: '1',
      serverPort: '65535',
      serfLanPort: '8302',
      etcdPort: '02380',
    });
    assert.deepEqual(c.ports, { http: 0, dns: 1, server: 65535, serfLan: 8302, etcd: 2380 });
  });

  test('the remaining flags', () => {
    const c = buildConfig(
      server({
        bootstrapExpect: '3',
        nodeId: '0b9c3a57-3b3a-4d1f-9a55-1d3e0a3c2f10',
        datacenter: 'east-1',
        client: '0.0.0.0',
        advertise: '10.0.0.5',
        retryJoin: ['10.0.0.6', '10.0.0.7:8300'],
        logLevel: 'DEBUG',
        logJson: true,
        raftTickMs: '50',
        raftSnapshotThreshold: '100',
      }),
    );
    assert.equal(c.bootstrapExpect, 3);
    assert.equal(c.nodeId, '0b9c3a57-3b3a-4d1f-9a55-1d3e0a3c2f10');
    assert.equal(c.datacenter, 'east-1');
    assert.equal(c.clientAddr, '0.0.0.0');
    assert.equal(c.advertiseAddr, '10.0.0.5');
    assert.deepEqual(c.retryJoin, ['10.0.0.6', '10.0.0.7:8300']);
    assert.equal(c.logLevel, 'debug', 'log level is case-insensitive');
    assert.equal(c.logJson, true);
    assert.equal(c.raftTickMs, 50);
    assert.equal(c.raftSnapshotThreshold, 100);
  });

  test('-bootstrap alone', () => {
    const c = buildConfig(server({ bootstrap: true }));
    assert.equal(c.bootstrap, true);
    assert.equal(c.bootstrapExpect, 0);
  });
});

describe('buildConfig config files', () => {
  test("Consul's snake_case keys are read", () => {
    const dataDir = freshDir();
    const c = buildConfig({
      configFile: [
        configFile({
          server: true,
          bootstrap_expect: 3,
          node_name: 'from-file',
          node_id: 'AB9C3A57-3B3A-4D1F-9A55-1D3E0A3C2F10',
          datacenter: 'dc2',
          data_dir: dataDir,
          bind_addr: '127.0.0.1',
          client_addr: '127.0.0.2',
          advertise_addr: '127.0.0.3',
          retry_join: ['127.0.0.4'],
          ports: { http: 1, dns: 2, server: 3, serf_lan: 4, etcd: 5 },
          log_level: 'warn',
          log_json: true,
          raft_tick_ms: 20,
          raft_snapshot_threshold: 30,
        }),
      ],
    });
    assert.equal(c.server, true);
    assert.equal(c.dev, false);
    assert.equal(c.bootstrapExpect, 3);
    assert.equal(c.nodeName, 'from-file');
    assert.equal(c.nodeId, 'AB9C3A57-3B3A-4D1F-9A55-1D3E0A3C2F10');
    assert.equal(c.datacenter, 'dc2');
    assert.equal(c.dataDir, dataDir);
    assert.equal(c.bindAddr, '127.0.0.1');
    assert.equal(c.clientAddr, '127.0.0.2');
    assert.equal(c.advertiseAddr, '127.0.0.3');
    assert.deepEqual(c.retryJoin, ['127.0.0.4']);
    assert.deepEqual(c.ports, { http: 1, dns: 2, server: 3, serfLan: 4, etcd: 5 });
    assert.equal(c.logLevel, 'warn');
    assert.equal(c.logJson, true);
    assert.equal(c.raftTickMs, 20);
    assert.equal(c.raftSnapshotThreshold, 30);
  });

  test('a file sets only what it names; ports it leaves out keep their defaults', () => {
    const c = buildConfig({ dev: true, node: 'n1', configFile: [configFile({ ports: { http: 1 } })] });
    assert.deepEqual(c.ports, { ...DEFAULT_PORTS, http: 1 });
    assert.equal(c.datacenter, 'dc1');
  });

  test('ports may be given as digit strings in a file', () => {
    const c = buildConfig({ dev: true, node: 'n1', configFile: [configFile({ ports: { dns: '53' } })] });
    assert.equal(c.ports.dns, 53);
  });

  test('flags win over the file, the file over defaults', () => {
    const dataDir = freshDir();
    const c = buildConfig({
      server: true,
      bind: '127.0.0.1',
      node: 'from-flag',
      dataDir,
      datacenter: 'flagdc',
      httpPort: '7',
      logLevel: 'error',
      configFile: [
        configFile({
          node_name: 'from-file',
          data_dir: join(root, 'file-data-dir-unused'),
          datacenter: 'filedc',
          ports: { http: 1, dns: 2 },
          log_level: 'debug',
          log_json: true,
        }),
      ],
    });
    assert.equal(c.nodeName, 'from-flag');
    assert.equal(c.dataDir, dataDir);
    assert.equal(c.datacenter, 'flagdc');
    assert.equal(c.ports.http, 7, 'the -http-port flag beats ports.http');
    assert.equal(c.ports.dns, 2, 'the file beats the default');
    assert.equal(c.ports.server, 8300);
    assert.equal(c.logLevel, 'error');
    assert.equal(c.logJson, true);
    assert.equal(existsSync(join(root, 'file-data-dir-unused')), false);
  });

  test('retry_join from the file and -retry-join flags add up', () => {
    const c = buildConfig({
      dev: true,
      node: 'n1',
      retryJoin: ['b'],
      configFile: [configFile({ retry_join: ['a'] })],
    });
    assert.deepEqual(c.retryJoin, ['a', 'b']);
  });

  test('several files: later keys win, ports merge, retry_join lists add up', () => {
    const c = buildConfig({
      dev: true,
      configFile: [
        configFile({ node_name: 'first', datacenter: 'one', ports: { http: 1 }, retry_join: ['a'] }),
        configFile({ node_name: 'second', ports: { dns: 2 }, retry_join: ['b'] }),
      ],
    });
    assert.equal(c.nodeName, 'second');
    assert.equal(c.datacenter, 'one');
    assert.deepEqual(c.ports, { ...DEFAULT_PORTS, http: 1, dns: 2 });
    assert.deepEqual(c.retryJoin, ['a', 'b']);
  });

  test('an unknown key is an error naming the key and the file', () => {
    const path = configFile({ server: true, data_dirr: '/x' });
    configError({ dev: true, configFile: [path] }, /unknown key "data_dirr"/);
    configError({ dev: true, configFile: [path] }, new RegExp(path.replace(/[\\.]/g, '\\$&')));
    // camelCase is not Consul's spelling
    configError({ dev: true, configFile: [configFile({ dataDir: '/x' })] }, /unknown key "dataDir"/);
  });

  test('an unknown port name is an error', () => {
    configError({ dev: true, configFile: [configFile({ ports: { grpc: 8502 } })] }, /unknown port "grpc"/);
  });

  test('bad JSON is an error', () => {
    configError({ dev: true, configFile: [configFile('{"server": true,')] }, /is not valid JSON/);
    configError({ dev: true, configFile: [configFile('')] }, /is not valid JSON/);
  });

  test('a file that is not a JSON object is an error', () => {
    configError({ dev: true, configFile: [configFile('[1, 2]')] }, /must hold a JSON object/);
    configError({ dev: true, configFile: [configFile('null')] }, /must hold a JSON object/);
  });

  test('a missing file is an error', () => {
    configError(
      { dev: true, configFile: [join(root, 'no-such-file.json')] },
      /cannot read config file .*ENOENT/,
    );
  });

  test('wrongly typed values are errors naming the key', () => {
    const cases: [unknown, RegExp][] = [
      [{ server: 'yes' }, /server must be true or false/],
      [{ bootstrap_expect: -1 }, /bootstrap_expect must be a non-negative integer/],
      [{ bootstrap_expect: 1.5 }, /bootstrap_expect must be a non-negative integer/],
      [{ node_name: 7 }, /node_name must be a string/],
      [{ retry_join: 'a' }, /retry_join must be a list of strings/],
      [{ retry_join: [1] }, /retry_join must be a list of strings/],
      [{ ports: [] }, /ports must be an object/],
      [{ ports: { http: 70000 } }, /ports\.http must be a port number/],
      [{ ports: { http: 1.5 } }, /ports\.http must be a port number/],
      [{ ports: { http: true } }, /ports\.http must be a port number/],
      [{ log_level: 3 }, /log_level must be a string/],
    ];
    // No flag names these settings, so the file's values are the ones read (and checked).
    for (const [content, message] of cases) {
      const file = configFile({ server: true, node_name: 'n1', ...(content as object) });
      configError({ bind: '127.0.0.1', dataDir: freshDir(), configFile: [file] }, message);
    }
  });
});

describe('buildConfig errors', () => {
  test('a bad port flag', () => {
    configError({ dev: true, node: 'n1', httpPort: '70000' }, /-http-port must be a port number.*"70000"/);
    configError({ dev: true, node: 'n1', httpPort: 'abc' }, /-http-port must be a port number.*"abc"/);
    configError({ dev: true, node: 'n1', httpPort: '' }, /-http-port must be a port number/);
    configError({ dev: true, node: 'n1', httpPort: '-1' }, /-http-port must be a port number/);
    configError({ dev: true, node: 'n1', httpPort: '80.5' }, /-http-port must be a port number/);
    configError({ dev: true, node: 'n1', httpPort: '0x50' }, /-http-port must be a port number/);
    configError({ dev: true, node: 'n1', dnsPort: '65536' }, /-dns-port must be a port number/);
    configError({ dev: true, node: 'n1', serverPort: 'x' }, /-server-port must be a port number/);
    configError({ dev: true, node: 'n1', serfLanPort: 'x' }, /-serf-lan-port must be a port number/);
    configError({ dev: true, node: 'n1', etcdPort: 'x' }, /-etcd-port must be a port number/);
  });

  test('a bad number flag', () => {
    configError(server({ bootstrapExpect: 'three' }), /-bootstrap-expect must be a non-negative integer/);
    configError({ dev: true, node: 'n1', raftTickMs: '1.5' }, /-raft-tick-ms must be a non-negative integer/);
    configError({ dev: true, node: 'n1', raftTickMs: '0' }, /-raft-tick-ms must be between 1 and 10000/);
    configError({ dev: true, node: 'n1', raftSnapshotThreshold: '0' }, /-raft-snapshot-threshold/);
  });

  test('a bad log level, from a flag or a file', () => {
    configError({ dev: true, node: 'n1', logLevel: 'loud' }, /invalid log level "loud": use one of trace/);
    configError(
      { dev: true, node: 'n1', configFile: [configFile({ log_level: 'verbose' })] },
      /invalid log level "verbose"/,
    );
  });

  test('-bootstrap with -bootstrap-expect', () => {
    configError(
      server({ bootstrap: true, bootstrapExpect: '3' }),
      /-bootstrap and -bootstrap-expect are exclusive/,
    );
    configError(
      server({ bootstrap: true, configFile: [configFile({ bootstrap_expect: 3 })] }),
      /-bootstrap and -bootstrap-expect are exclusive/,
    );
  });

  test('-bootstrap-expect with -dev', () => {
    configError(
      { dev: true, node: 'n1', bootstrapExpect: '3' },
      /-bootstrap-expect cannot be used with -dev/,
    );
  });

  test('a non-dev server without -data-dir', () => {
    configError(server({ dataDir: undefined }), /-data-dir is required for a server/);
  });

  test('a data dir that is a regular file', () => {
    const file = join(root, 'a-regular-file');
    writeFileSync(file, 'not a directory');
    configError(server({ dataDir: file }), /-data-dir .*a-regular-file is not a directory/);
  });

  test('a data dir under a regular file', () => {
    const file = join(root, 'another-regular-file');
    writeFileSync(file, 'not a directory');
    configError(server({ dataDir: join(file, 'sub') }), /-data-dir .*sub is not usable: ENOTDIR/);
  });

  test('client mode: neither -server nor -dev; needs a data dir, takes no bootstrap flags', () => {
    const c = buildConfig({ node: 'n1', bind: '127.0.0.1', dataDir: freshDir() });
    assert.equal(c.server, false);
    configError({ bind: '127.0.0.1' }, /-data-dir is required for a client agent/);
    configError(
      { bind: '127.0.0.1', configFile: [configFile({ server: false })] },
      /-data-dir is required for a client agent/,
    );
    configError(
      { bind: '127.0.0.1', dataDir: freshDir(), bootstrapExpect: '3' },
      /are for servers: add -server/,
    );
  });

  test('-server from the config file is enough', () => {
    const c = buildConfig({
      bind: '127.0.0.1',
      node: 'n1',
      dataDir: freshDir(),
      configFile: [configFile({ server: true })],
    });
    assert.equal(c.server, true);
  });

  test('a bad node name', () => {
    for (const node of ['', 'a b', '-lead', 'x/y', 'ünïcode', 'a'.repeat(64)])
      configError({ dev: true, node }, /node name ".*" must be letters, digits/);
    assert.equal(buildConfig({ dev: true, node: 'a'.repeat(63) }).nodeName, 'a'.repeat(63));
    assert.equal(buildConfig({ dev: true, node: 'Node_1.example-x' }).nodeName, 'Node_1.example-x');
  });

  test('a node id that is not a UUID', () => {
    configError({ dev: true, node: 'n1', nodeId: 'node-1' }, /node id "node-1" must be a UUID/);
    configError(server({ nodeId: '0b9c3a57-3b3a-4d1f-9a55-1d3e0a3c2f1' }), /must be a UUID/);
  });

  test('a bad datacenter', () => {
    configError({ dev: true, node: 'n1', datacenter: 'DC1' }, /datacenter "DC1" must be lowercase/);
    configError({ dev: true, node: 'n1', datacenter: '' }, /datacenter "" must be lowercase/);
  });

  test('a -bind, -client or -advertise that is not an IP address', () => {
    configError({ dev: true, node: 'n1', bind: 'localhost' }, /-bind localhost is not an IP address/);
    configError(
      { dev: true, node: 'n1', bind: '127.0.0.1:8300' },
      /-bind 127\.0\.0\.1:8300 is not an IP address/,
    );
    configError(
      { dev: true, node: 'n1', client: 'example.com' },
      /-client example\.com is not an IP address/,
    );
    configError({ dev: true, node: 'n1', advertise: 'host' }, /-advertise host is not an IP address/);
    configError(server({ bind: '' }), /-bind .*is not an IP address/);
  });

  test('IPv6 addresses are fine', () => {
    const c = buildConfig({ dev: true, node: 'n1', bind: '::1', client: '::1' });
    assert.equal(c.bindAddr, '::1');
    assert.equal(c.clientAddr, '::1');
  });
});

test("config: Consul's limits.kv_max_value_size (512 KiB by default), checked", () => {
  assert.equal(buildConfig(server()).kvMaxValueSize, 512 * 1024);
  assert.equal(
    buildConfig(server({ configFile: [configFile({ limits: { kv_max_value_size: 1024 } })] })).kvMaxValueSize,
    1024,
  );
  configError(
    server({ configFile: [configFile({ limits: { kv_max_value_size: 0 } })] }),
    /kv_max_value_size/,
  );
  configError(
    server({ configFile: [configFile({ limits: { txn_max_ops: 3 } })] }),
    /unknown limit "txn_max_ops"/,
  );
});

describe('buildConfig DNS, scripts and definitions', () => {
  test("defaults follow Consul's", () => {
    const c = buildConfig({ dev: true });
    assert.equal(c.domain, 'consul');
    assert.deepEqual(c.dns, {
      nodeTtlS: 0,
      serviceTtlS: {},
      onlyPassing: false,
      enableTruncate: false,
      udpAnswerLimit: 3,
      aRecordLimit: 0,
      allowStale: true,
    });
    assert.equal(c.enableScriptChecks, false);
    assert.deepEqual(c.serviceDefinitions, []);
  });

  test('dns_config, domain and definitions are read; single and listed definitions add up across files', () => {
    const c = buildConfig({
      dev: true,
      configFile: [
        configFile({
          domain: 'Example.',
          dns_config: {
            node_ttl: '1m30s',
            service_ttl: { '*': '5s', web: 30 },
            only_passing: true,
            enable_truncate: true,
            udp_answer_limit: 5,
          },
          enable_script_checks: true,
          service: { name: 'a' },
          checks: [{ id: 'c1' }],
        }),
        configFile({ service: { name: 'b' }, services: [{ name: 'c' }] }),
      ],
    });
    assert.equal(c.domain, 'example');
    assert.equal(c.dns.nodeTtlS, 90);
    assert.deepEqual(c.dns.serviceTtlS, { '*': 5, web: 30 });
    assert.equal(c.dns.onlyPassing, true);
    assert.equal(c.dns.enableTruncate, true);
    assert.equal(c.dns.udpAnswerLimit, 5);
    assert.equal(c.enableScriptChecks, true);
    assert.deepEqual(c.serviceDefinitions.map((d) => (d as { name: string }).name).sort(), ['a', 'b', 'c']);
    assert.deepEqual(c.checkDefinitions, [{ id: 'c1' }]);
  });

  test('bad DNS settings are errors naming the key', () => {
    for (const [dns, pattern] of [
      [{ node_ttl: 'soon' }, /dns_config.node_ttl/],
      [{ udp_answer_limit: -1 }, /udp_answer_limit/],
      [{ only_passing: 'yes' }, /only_passing/],
      [{ nonsense: 1 }, /unknown dns_config key "nonsense"/],
    ] as const) {
      assert.throws(() => buildConfig({ dev: true, configFile: [configFile({ dns_config: dns })] }), pattern);
    }
    assert.throws(
      () => buildConfig({ dev: true, configFile: [configFile({ recursors: ['8.8.8.8'] })] }),
      /recursors are not supported/,
    );
    assert.throws(
      () => buildConfig({ dev: true, configFile: [configFile({ services: {} })] }),
      /services must be a list/,
    );
  });
});
