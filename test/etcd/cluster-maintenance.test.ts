import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { Etcd3 } from 'etcd3';
import { memberIdOf } from '../../src/api/etcd/ids.js';
import { snapshotFromFile } from '../../src/api/etcd/maintenance.js';
import { restore, stateHash } from '../../src/store/index.js';
import { etcdctl, hasEtcdctl, skipUnless } from '../interop/tools.js';
import {
  type EtcdMember,
  joinMember,
  leaderOf,
  type Msg,
  type ServiceClients,
  serviceClients,
  startEtcdCluster,
  unary,
  waitFor,
} from './service-clients.js';

// etcd's Cluster and Maintenance services (raw gRPC and etcdctl) against in-process servers:
// one with a small quota (alarms, snapshot, hashes, defragment), and a three-server cluster
// (member list, learners and promotion, removal, moving the leader, hashes across members).

const b = (s: string) => Buffer.from(s);

function assertEtcdError(err: unknown, code: grpc.status, text: string | RegExp): true {
  const e = err as grpc.ServiceError;
  if (typeof text === 'string') assert.equal(e.details, text);
  else assert.match(e.details, text);
  assert.equal(e.code, code, `status of "${e.details}"`);
  return true;
}

/** Every `"field":<digits>` in etcdctl's JSON output, as decimal text. */
function uint64Fields(json: string, field: string): string[] {
  return [...json.matchAll(new RegExp(`"${field}":(\\d+)`, 'g'))].map((m) => m[1]!);
}

function snapshotMessages(c: ServiceClients): Promise<Msg[]> {
  return new Promise((resolve, reject) => {
    const messages: Msg[] = [];
    const stream = (
      c.maintenance as unknown as { Snapshot(r: Msg): grpc.ClientReadableStream<Msg> }
    ).Snapshot({});
    stream.on('data', (m: Msg) => messages.push(m));
    stream.on('error', reject);
    stream.on('end', () => resolve(messages));
  });
}

describe('one server', () => {
  let member: EtcdMember;
  let c: ServiceClients;
  before(async () => {
    [member] = (await startEtcdCluster(1, { storeOptions: { limits: { quotaBytes: 256 * 1024 } } })) as [
      EtcdMember,
    ];
    c = serviceClients(member.endpoint);
  });
  after(async () => {
    c?.close();
    await member?.stop();
  });

  test('MemberList names this server; MemberAdd/Update are refused; etcd errors for unknown ids and voters', async () => {
    const list = await unary(c.cluster, 'MemberList', { linearizable: true });
    assert.deepEqual(list.members, [
      {
        ID: memberIdOf(member.server.id),
        name: 's1',
        peerURLs: [`http://${member.server.serverAddress}`],
        clientURLs: [`http://${member.endpoint}`],
        isLearner: false,
      },
    ]);
    assert.equal(list.header.member_id, memberIdOf(member.server.id));
    await assert.rejects(unary(c.cluster, 'MemberAdd', { peerURLs: ['http://127.0.0.1:1'] }), (err) =>
      assertEtcdError(err, grpc.status.FAILED_PRECONDITION, /-retry-join/),
    );
    await assert.rejects(unary(c.cluster, 'MemberUpdate', { ID: list.members[0].ID, peerURLs: [] }), (err) =>
      assertEtcdError(err, grpc.status.FAILED_PRECONDITION, /-retry-join/),
    );
    await assert.rejects(unary(c.cluster, 'MemberPromote', { ID: list.members[0].ID }), (err) =>
      assertEtcdError(err, grpc.status.FAILED_PRECONDITION, 'etcdserver: can only promote a learner member'),
    );
    for (const method of ['MemberPromote', 'MemberRemove']) {
      await assert.rejects(unary(c.cluster, method, { ID: '12345' }), (err) =>
        assertEtcdError(err, grpc.status.NOT_FOUND, 'etcdserver: member not found'),
      );
    }
    await assert.rejects(unary(c.maintenance, 'MoveLeader', { targetID: '12345' }), (err) =>
      assertEtcdError(err, grpc.status.FAILED_PRECONDITION, 'etcdserver: bad leader transferee'),
    );
    // Moving leadership to the leader itself is done already.
    await unary(c.maintenance, 'MoveLeader', { targetID: list.members[0].ID });
    assert.ok(member.server.isLeader());
  });

  test('Snapshot streams the store snapshot in chunks with remaining_bytes, then its SHA-256; Hash and Defragment', async () => {
    for (let i = 0; i < 40; i++)
      await unary(c.kv, 'Put', { key: b(`snap/${i}`), value: Buffer.alloc(1500, i) });
    const expected = stateHash(member.server.store);
    const messages = await snapshotMessages(c);
    assert.ok(messages.length >= 3, 'several chunks and the digest');
    assert.ok(messages[0].header, 'the first message carries the header');
    assert.equal(Number(messages[0].header.revision), member.server.store.revision);
    const blobs = messages.slice(0, -1).map((m) => Buffer.from(m.blob));
    const data = Buffer.concat(blobs);
    let remaining = data.length;
    for (const [i, m] of messages.slice(0, -1).entries()) {
      remaining -= blobs[i]!.length;
      assert.equal(Number(m.remaining_bytes), remaining);
    }
    const digest = messages.at(-1);
    assert.equal(Number(digest.remaining_bytes), 0);
    assert.deepEqual(Buffer.from(digest.blob), createHash('sha256').update(data).digest());
    assert.equal(data.length % 512, 0, 'page-aligned, as etcdctl expects');
    // The saved file (data + digest) gives back a store with the same state.
    const restored = restore(snapshotFromFile(Buffer.concat([data, Buffer.from(digest.blob)])));
    assert.equal(stateHash(restored), expected);
    assert.throws(() => snapshotFromFile(Buffer.concat([data, Buffer.alloc(32)])), /SHA-256 mismatch/);

    assert.equal((await unary(c.maintenance, 'Hash', {})).hash, expected);
    const defrag = await unary(c.maintenance, 'Defragment', {});
    assert.equal(defrag.header.member_id, memberIdOf(member.server.id));
    await unary(c.kv, 'DeleteRange', { key: b('snap/'), range_end: b('snap0') });
  });

  test('HashKV: a hash of the KV history up to a revision, with compact_revision and etcd errors', async () => {
    await unary(c.kv, 'Put', { key: b('h/a'), value: b('1') });
    const first = await unary(c.maintenance, 'HashKV', { revision: '0' });
    const rev1 = member.server.store.revision;
    assert.equal(first.compact_revision, String(member.server.store.compactRevision || -1));
    await unary(c.kv, 'Put', { key: b('h/a'), value: b('2') });
    const atRev1 = await unary(c.maintenance, 'HashKV', { revision: String(rev1) });
    assert.equal(atRev1.hash, first.hash, 'later writes do not change the hash at an earlier revision');
    const now = await unary(c.maintenance, 'HashKV', { revision: '0' });
    assert.notEqual(now.hash, first.hash);
    await assert.rejects(unary(c.maintenance, 'HashKV', { revision: String(rev1 + 1000) }), (err) =>
      assertEtcdError(
        err,
        grpc.status.OUT_OF_RANGE,
        'etcdserver: mvcc: required revision is a future revision',
      ),
    );
    const rev2 = member.server.store.revision;
    await unary(c.kv, 'Compact', { revision: String(rev2) });
    const compacted = await unary(c.maintenance, 'HashKV', { revision: String(rev2) });
    assert.equal(compacted.compact_revision, String(rev2));
    await assert.rejects(unary(c.maintenance, 'HashKV', { revision: String(rev1) }), (err) =>
      assertEtcdError(
        err,
        grpc.status.OUT_OF_RANGE,
        'etcdserver: mvcc: required revision has been compacted',
      ),
    );
  });

  test('Alarm: NOSPACE listed while the quota alarm is on; DEACTIVATE clears nothing; it clears after delete + compact', async () => {
    assert.deepEqual((await unary(c.maintenance, 'Alarm', { action: 'Get' })).alarms, []);
    let failure: unknown;
    for (let i = 0; i < 200 && failure === undefined; i++) {
      await unary(c.kv, 'Put', { key: b(`big/${i}`), value: Buffer.alloc(8 * 1024, 1) }).catch((err) => {
        failure = err;
      });
    }
    assertEtcdError(failure, grpc.status.RESOURCE_EXHAUSTED, 'etcdserver: mvcc: database space exceeded');
    const self = memberIdOf(member.server.id);
    const expected = [{ memberID: self, alarm: 'Nospace' }];
    assert.deepEqual((await unary(c.maintenance, 'Alarm', { action: 'Get' })).alarms, expected);
    assert.deepEqual(
      (await unary(c.maintenance, 'Alarm', { action: 'Get', memberID: self, alarm: 'Nospace' })).alarms,
      expected,
    );
    assert.deepEqual((await unary(c.maintenance, 'Alarm', { action: 'Get', memberID: '42' })).alarms, []);
    assert.deepEqual((await unary(c.maintenance, 'Status', {})).errors, [`memberID:${self} alarm:NOSPACE `]);
    await assert.rejects(unary(c.maintenance, 'Alarm', { action: 'Activate', alarm: 'Nospace' }), (err) =>
      assertEtcdError(err, grpc.status.UNIMPLEMENTED, /raised by the store itself/),
    );
    assert.deepEqual(
      (await unary(c.maintenance, 'Alarm', { action: 'Deactivate', alarm: 'Nospace' })).alarms,
      [],
    );
    assert.deepEqual((await unary(c.maintenance, 'Alarm', { action: 'Get' })).alarms, expected, 'still on');

    // Recovery: delete, then compact away the history.
    await unary(c.kv, 'DeleteRange', { key: b('big/'), range_end: b('big0') });
    await unary(c.kv, 'Compact', { revision: String(member.server.store.revision) });
    assert.deepEqual((await unary(c.maintenance, 'Alarm', { action: 'Get' })).alarms, []);
    await unary(c.kv, 'Put', { key: b('big/again'), value: b('fits') });
  });

  test('etcdctl: member list, endpoint status, alarm list, snapshot save, defrag', {
    skip: skipUnless(hasEtcdctl(), 'etcdctl (Debian etcd-client)'),
    timeout: 60_000,
  }, async () => {
    const ok = async (args: string[]) => {
      const r = await etcdctl([member.endpoint], args);
      assert.equal(r.code, 0, `etcdctl ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    const hex = BigInt(memberIdOf(member.server.id)).toString(16);
    assert.equal(
      (await ok(['member', 'list'])).trim(),
      `${hex}, started, s1, http://${member.server.serverAddress}, http://${member.endpoint}, false`,
    );
    // etcdctl prints uint64 ids as JSON numbers: read them as text (JSON.parse rounds them).
    const status = await ok(['endpoint', 'status', '-w', 'json']);
    assert.deepEqual(uint64Fields(status, 'leader'), [memberIdOf(member.server.id)]);
    assert.equal((await ok(['alarm', 'list'])).trim(), '');
    assert.match(await ok(['defrag']), /Finished defragmenting etcd member\[/);

    const dir = mkdtempSync(join(tmpdir(), 'conclave-snapshot-'));
    try {
      const file = join(dir, 'backup.db');
      const expected = stateHash(member.server.store);
      assert.match(await ok(['snapshot', 'save', file]), /Snapshot saved at/);
      assert.equal(stateHash(restore(snapshotFromFile(readFileSync(file)))), expected);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('three servers', () => {
  let members: EtcdMember[];
  const extra: EtcdMember[] = [];
  before(async () => {
    members = await startEtcdCluster(3);
  });
  after(async () => {
    for (const m of [...extra, ...(members ?? [])]) await m.stop();
  });

  test('MemberList on every member; HashKV is the same on every member at one revision', async () => {
    const ids = members.map((m) => memberIdOf(m.server.id)).sort();
    for (const m of members) {
      const c = serviceClients(m.endpoint);
      try {
        const list = await unary(c.cluster, 'MemberList', {});
        assert.deepEqual(list.members.map((x: Msg) => x.ID).sort(), ids);
        assert.deepEqual(list.members.map((x: Msg) => x.name).sort(), ['s1', 's2', 's3']);
        const self = list.members.find((x: Msg) => x.ID === memberIdOf(m.server.id));
        assert.deepEqual(self.clientURLs, [`http://${m.endpoint}`]);
        assert.deepEqual(self.peerURLs, [`http://${m.server.serverAddress}`]);
        assert.ok(list.members.every((x: Msg) => x.isLearner === false && x.clientURLs.length === 1));
      } finally {
        c.close();
      }
    }
    const c = serviceClients(members[0]!.endpoint);
    try {
      for (let i = 0; i < 10; i++) await unary(c.kv, 'Put', { key: b(`hk/${i % 3}`), value: b(String(i)) });
      const revision = leaderOf(members).server.store.revision;
      await waitFor(
        () => members.every((m) => m.server.store.revision >= revision),
        5000,
        'every member applied',
      );
      const hashes = await Promise.all(
        members.map(async (m) => {
          const mc = serviceClients(m.endpoint);
          try {
            return (await unary(mc.maintenance, 'HashKV', { revision: String(revision) })).hash;
          } finally {
            mc.close();
          }
        }),
      );
      assert.equal(new Set(hashes).size, 1, `one hash: ${hashes.join(', ')}`);
    } finally {
      c.close();
    }
  });

  test('MoveLeader from a follower hands leadership to the target voter', async () => {
    const leader = leaderOf(members);
    const [via, target] = members.filter((m) => m !== leader) as [EtcdMember, EtcdMember];
    const c = serviceClients(via.endpoint);
    try {
      await unary(c.maintenance, 'MoveLeader', { targetID: memberIdOf(target.server.id) });
      await waitFor(
        () => members.every((m) => m.server.leaderId() === target.server.id),
        5000,
        'the new leader',
      );
      const status = await unary(c.maintenance, 'Status', {});
      assert.equal(status.leader, memberIdOf(target.server.id));
    } finally {
      c.close();
    }
  });

  test('MemberPromote: a lagging learner is not ready; an in-sync one is promoted; MemberRemove drops one', async () => {
    const leader = leaderOf(members);
    const follower = members.find((m) => m !== leader)!;
    const [cl, cf] = [serviceClients(leader.endpoint), serviceClients(follower.endpoint)];
    try {
      // A learner that stops right after it joined: it never catches up, so it is never ready.
      const lagging = await joinMember('s4', leader);
      extra.push(lagging);
      await waitFor(
        () => leader.server.raftStatus().config.learners.includes(lagging.server.id),
        10_000,
        'the learner added',
      );
      await lagging.stop();
      for (let i = 0; i < 5; i++) await unary(cl.kv, 'Put', { key: b(`lag/${i}`), value: b('x') });
      const laggingId = memberIdOf(lagging.server.id);
      const listed = (await unary(cl.cluster, 'MemberList', {})).members.find((x: Msg) => x.ID === laggingId);
      assert.equal(listed?.isLearner, true);
      assert.equal(listed?.name, 's4');
      await assert.rejects(unary(cl.cluster, 'MemberPromote', { ID: laggingId }), (err) =>
        assertEtcdError(
          err,
          grpc.status.FAILED_PRECONDITION,
          'etcdserver: can only promote a learner member which is in sync with leader',
        ),
      );

      // A live learner: MemberPromote (sent to a follower) returns once it votes.
      const fresh = await joinMember('s5', leader);
      extra.push(fresh);
      const freshId = memberIdOf(fresh.server.id);
      await waitFor(
        async () => (await unary(cf.cluster, 'MemberList', {})).members.some((x: Msg) => x.ID === freshId),
        10_000,
        'the new learner listed',
      );
      const promoted = await unary(cf.cluster, 'MemberPromote', { ID: freshId });
      assert.equal(promoted.members.find((x: Msg) => x.ID === freshId)?.isLearner, false);

      const removed = await unary(cf.cluster, 'MemberRemove', { ID: laggingId });
      assert.ok(!removed.members.some((x: Msg) => x.ID === laggingId));
      await waitFor(
        async () => !(await unary(cl.cluster, 'MemberList', {})).members.some((x: Msg) => x.ID === laggingId),
        5000,
        'the removed learner gone from the leader list',
      );
      await unary(cf.cluster, 'MemberRemove', { ID: freshId });
      await waitFor(
        () => !leader.server.raftStatus().config.voters.includes(fresh.server.id),
        5000,
        'the fifth server removed',
      );
    } finally {
      cl.close();
      cf.close();
    }
  });

  test('etcd3 npm client: maintenance and cluster calls it exposes', async () => {
    const client = new Etcd3({ hosts: members.map((m) => `http://${m.endpoint}`) });
    try {
      const list = await client.cluster.memberList({});
      assert.equal(list.members.length, 3);
      const status = await client.maintenance.status({});
      assert.ok(list.members.some((m) => m.ID === status.leader));
      const alarms = await client.maintenance.alarm({ action: 'Get', memberID: '0', alarm: 'None' });
      assert.deepEqual(alarms.alarms, []);
      await client.maintenance.defragment({});
      // (client.maintenance.hashKV cannot be called: etcd3 looks up `hashKV`, but grpc-js names
      // the method's alias `hashKv`; that is the client's bug, so the raw client tests HashKV.)
    } finally {
      client.close();
    }
  });

  test('etcdctl: member list, endpoint status on every member, move-leader', {
    skip: skipUnless(hasEtcdctl(), 'etcdctl (Debian etcd-client)'),
    timeout: 60_000,
  }, async () => {
    const endpoints = members.map((m) => m.endpoint);
    const ok = async (on: string[], args: string[]) => {
      const r = await etcdctl(on, args);
      assert.equal(r.code, 0, `etcdctl ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    const lines = (await ok([endpoints[1]!], ['member', 'list'])).trim().split('\n');
    assert.equal(lines.length, 3);
    for (const m of members) {
      const hex = BigInt(memberIdOf(m.server.id)).toString(16);
      assert.ok(
        lines.some(
          (l) => l.startsWith(`${hex}, started, s`) && l.includes(`http://${m.server.serverAddress}`),
        ),
        `${hex} listed: ${lines.join(' | ')}`,
      );
    }
    const status = await ok(endpoints, ['endpoint', 'status', '-w', 'json']);
    const leader = leaderOf(members);
    assert.deepEqual(uint64Fields(status, 'leader'), Array(3).fill(memberIdOf(leader.server.id)));

    const target = members.find((m) => m !== leader)!;
    const targetHex = BigInt(memberIdOf(target.server.id)).toString(16);
    const moved = await ok(endpoints, ['move-leader', targetHex]);
    assert.match(moved, new RegExp(`Leadership transferred from [0-9a-f]+ to ${targetHex}`));
    await waitFor(
      () => members.every((m) => m.server.leaderId() === target.server.id),
      5000,
      'the moved leader',
    );
  });
});
