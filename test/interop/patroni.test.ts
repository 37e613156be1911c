import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Etcd3 } from 'etcd3';
import { Cluster, waitFor } from '../cluster/harness.js';
import { freePorts } from '../ports.js';
import { hasCommand, skipUnless } from './tools.js';

// Patroni (Debian, PostgreSQL 15) with its etcd3 backend, unmodified, against a 3-server
// Conclave cluster: Patroni speaks only etcd's HTTP/JSON gateway (leases, txns, watches). Two
// members elect one leader; SIGKILL the leader's Patroni and the other takes over once the
// leader key's lease runs out.

const PG_BIN = '/usr/lib/postgresql/15/bin';
const available = hasCommand('patroni', ['--version']) && existsSync(join(PG_BIN, 'initdb'));
const skip = skipUnless(available, 'patroni with PostgreSQL 15 (Debian)');

/** Postgres refuses to run as root: Patroni runs as the postgres user when we are root. */
const asPostgres = process.getuid?.() === 0;

let cluster: Cluster;
const members: PatroniMember[] = [];

class PatroniMember {
  child: ChildProcess | null = null;
  log = '';
  constructor(
    readonly name: string,
    readonly dir: string,
    readonly restPort: number,
    readonly pgPort: number,
  ) {}

  write(etcdHosts: string[]): string {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const config = [
      'scope: conclave-patroni-test',
      `name: ${this.name}`,
      'restapi:',
      `  listen: 127.0.0.1:${this.restPort}`,
      `  connect_address: 127.0.0.1:${this.restPort}`,
      'etcd3:',
      `  hosts: ${etcdHosts.join(',')}`,
      'bootstrap:',
      '  dcs:',
      '    ttl: 10',
      '    loop_wait: 1',
      '    retry_timeout: 5',
      '  initdb:',
      '  - encoding: UTF8',
      '  pg_hba:',
      '  - local all all trust',
      '  - host all all 127.0.0.1/32 trust',
      '  - host replication all 127.0.0.1/32 trust',
      'postgresql:',
      `  listen: 127.0.0.1:${this.pgPort}`,
      `  connect_address: 127.0.0.1:${this.pgPort}`,
      `  data_dir: ${join(this.dir, 'data')}`,
      `  bin_dir: ${PG_BIN}`,
      '  authentication:',
      '    superuser: {username: postgres, password: postgres}',
      '    replication: {username: replicator, password: replicator}',
      '  parameters:',
      `    unix_socket_directories: ${this.dir}`,
      '',
    ].join('\n');
    const path = join(this.dir, 'patroni.yml');
    writeFileSync(path, config);
    if (asPostgres) {
      const pw = readFileSync('/etc/passwd', 'utf8')
        .split('\n')
        .find((l) => l.startsWith('postgres:'));
      const [, , uid, gid] = (pw ?? '').split(':');
      chownSync(this.dir, Number(uid), Number(gid));
      chownSync(path, Number(uid), Number(gid));
    }
    return path;
  }

  start(etcdHosts: string[]): void {
    const path = this.write(etcdHosts);
    const [cmd, args] = asPostgres
      ? ['runuser', ['-u', 'postgres', '--', 'patroni', path]]
      : ['patroni', [path]];
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.on('data', (d: Buffer) => {
      this.log += d.toString();
    });
    child.stderr?.on('data', (d: Buffer) => {
      this.log += d.toString();
    });
    this.child = child;
  }

  async role(): Promise<string> {
    const r = await fetch(`http://127.0.0.1:${this.restPort}/patroni`, { signal: AbortSignal.timeout(3000) });
    const body = (await r.json()) as { role?: string; state?: string };
    return `${body.role ?? ''}/${body.state ?? ''}`;
  }

  /** Kill Patroni (its process group via runuser) and the postgres it started, by PID. */
  stop(): void {
    this.killPatroniOnly();
    this.killPostgres();
    // Our pipes to a dead Patroni must not keep this test process alive.
    this.child?.stdout?.destroy();
    this.child?.stderr?.destroy();
  }

  killPatroniOnly(): void {
    // runuser forwards nothing on SIGKILL: find patroni itself, the child of runuser.
    const pid = this.child?.pid;
    if (!pid) return;
    for (const p of childPids(pid)) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {}
    }
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  }

  killPostgres(): void {
    const pidFile = join(this.dir, 'data', 'postmaster.pid');
    if (!existsSync(pidFile)) return;
    const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
    if (pid > 0) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {}
    }
  }
}

function childPids(pid: number): number[] {
  try {
    const text = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
    return text ? text.split(/\s+/).map(Number) : [];
  } catch {
    return [];
  }
}

before(async () => {
  if (skip) return;
  cluster = await Cluster.bootstrap(3);
});

after(async () => {
  for (const m of members) m.stop();
  await cluster?.close();
});

test('patroni: two members elect one leader through Conclave; killing the leader fails over', {
  skip,
  timeout: 240_000,
}, async () => {
  const hosts = cluster.agents.map((a) => a.etcdEndpoint);
  // The postgres user must reach its directories inside our (root-owned, 0700) temp dir.
  chmodSync(cluster.rootDir, 0o755);
  const root = join(cluster.rootDir, 'patroni');
  mkdirSync(root, { recursive: true, mode: 0o755 });
  const [rest1, pg1, rest2, pg2] = await freePorts(4);
  members.push(new PatroniMember('pg1', join(root, 'pg1'), rest1!, pg1!));
  members.push(new PatroniMember('pg2', join(root, 'pg2'), rest2!, pg2!));
  members[0]!.start(hosts);
  await waitFor(async () => (await members[0]!.role()) === 'master/running', 90_000, 'pg1 to lead').catch(
    (err) => {
      throw new Error(`${String(err)}\n${members[0]!.log.slice(-3000)}`);
    },
  );
  members[1]!.start(hosts);
  await waitFor(
    async () => (await members[1]!.role()) === 'replica/running',
    90_000,
    'pg2 to replicate',
  ).catch((err) => {
    throw new Error(`${String(err)}\n${members[1]!.log.slice(-3000)}`);
  });
  // The leader key lives in Conclave, under Patroni's default namespace.
  const etcd = new Etcd3({ hosts: hosts[2]! });
  try {
    assert.equal(await etcd.get('/service/conclave-patroni-test/leader').string(), 'pg1');
  } finally {
    etcd.close();
  }

  // Kill the leader's Patroni (not its postgres): its lease expires, pg2 takes over.
  members[0]!.killPatroniOnly();
  await waitFor(
    async () => (await members[1]!.role()) === 'master/running',
    90_000,
    'pg2 to take over',
  ).catch((err) => {
    throw new Error(`${String(err)}\n${members[1]!.log.slice(-3000)}`);
  });
  const etcd2 = new Etcd3({ hosts: hosts[0]! });
  try {
    assert.equal(await etcd2.get('/service/conclave-patroni-test/leader').string(), 'pg2');
  } finally {
    etcd2.close();
  }
});
