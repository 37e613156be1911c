import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { etcdctl, hasEtcdctl, skipUnless } from '../interop/tools.js';
import { type EtcdTestServer, startEtcdTestServer } from './harness.js';
import { waitFor } from './raw-client.js';

// etcd's own CLI (Debian etcd-client) against our Watch and Lease services. Skipped when
// etcdctl is not installed, except in CI (CI=true), where its absence is a failure.

const env = { ...process.env, ETCDCTL_API: '3' };
const skip = skipUnless(hasEtcdctl(), 'etcdctl (Debian etcd-client)');

describe('etcdctl watch and lease', { skip }, () => {
  let etcd: EtcdTestServer;
  const ctl = async (...args: string[]) => {
    const r = await etcdctl([etcd.endpoint], args);
    assert.equal(r.code, 0, `etcdctl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };

  before(async () => {
    etcd = await startEtcdTestServer();
  });

  after(async () => {
    await etcd?.close();
  });

  test('etcdctl watch --prev-kv prints puts and deletes with previous values', async () => {
    const child = spawn('etcdctl', ['--endpoints', etcd.endpoint, 'watch', '--prev-kv', 'ctl/w'], { env });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    try {
      await waitFor(() => etcd.server.store.status().watchers > 0, 10_000, 'etcdctl to start watching');
      await ctl('put', 'ctl/w', 'v1');
      await ctl('put', 'ctl/w', 'v2');
      await ctl('del', 'ctl/w');
      const expected = 'PUT\nctl/w\nv1\nPUT\nctl/w\nv1\nctl/w\nv2\nDELETE\nctl/w\nv2\nctl/w\n\n';
      await waitFor(() => out.length >= expected.length, 10_000, 'three events from etcdctl');
      assert.equal(out, expected);
    } finally {
      child.kill();
    }
  });

  test('etcdctl lease grant, keep-alive --once, timetolive --keys, revoke', async () => {
    const granted = await ctl('lease', 'grant', '60');
    const id = /lease ([0-9a-f]{16}) granted with TTL\(60s\)/.exec(granted)?.[1];
    assert.ok(id, granted);
    assert.equal((await ctl('put', `--lease=${id}`, 'ctl/l', 'v')).trim(), 'OK');
    assert.match(
      await ctl('lease', 'keep-alive', '--once', id),
      new RegExp(`lease ${id} keepalived with TTL\\(60\\)`),
    );
    const ttl = await ctl('lease', 'timetolive', '--keys', id);
    const remaining = /granted with TTL\(60s\), remaining\((\d+)s\), attached keys\(\[ctl\/l\]\)/.exec(ttl);
    assert.ok(remaining && Number(remaining[1]) >= 58, ttl);
    assert.match(await ctl('lease', 'list'), new RegExp(id));
    assert.match(await ctl('lease', 'revoke', id), new RegExp(`lease ${id} revoked`));
    assert.equal(await ctl('get', 'ctl/l'), '');
    assert.match(await ctl('lease', 'timetolive', id), /already expired/);
  });
});
