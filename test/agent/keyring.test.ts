import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { GossipShell } from '../../src/agent/gossip/gossip-shell.js';
import { Keyring, KeyringError, keyringFile, openKeyring } from '../../src/agent/gossip/keyring.js';
import { silentLogger } from '../../src/server/logger.js';

/** The agent's keyring file (Consul's serf/local.keyring): what a restarted agent encrypts with. */

const K1 = Buffer.alloc(32, 1).toString('base64');
const K2 = Buffer.alloc(32, 2).toString('base64');
const K3 = Buffer.alloc(16, 3).toString('base64');

const root = mkdtempSync(join(tmpdir(), 'conclave-keyring-test-'));
after(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;
const dataDir = () => join(root, `d${++dirs}`);
const saved = (file: string) => JSON.parse(readFileSync(file, 'utf8')) as string[];

test('first start: -encrypt seeds the keyring file', () => {
  const file = keyringFile(dataDir());
  assert.match(file, /serf[\\/]local\.keyring$/);
  const { keyring, ignoredEncrypt } = openKeyring({ encrypt: K1, file });
  assert.deepEqual(keyring?.list(), [K1]);
  assert.equal(ignoredEncrypt, false);
  assert.deepEqual(saved(file), [K1]);
});

test('every change is saved, and a restart uses the saved keys over -encrypt', () => {
  const file = keyringFile(dataDir());
  const first = openKeyring({ encrypt: K1, file }).keyring!;
  first.install(K2);
  assert.deepEqual(saved(file), [K1, K2]);
  first.use(K2);
  assert.deepEqual(saved(file), [K2, K1]);
  first.remove(K1);
  assert.deepEqual(saved(file), [K2]);
  // Restarted with the old -encrypt: the file wins, and the caller is told to warn.
  const again = openKeyring({ encrypt: K1, file });
  assert.deepEqual(again.keyring?.list(), [K2]);
  assert.equal(again.ignoredEncrypt, true);
  // Restarted without -encrypt at all: still encrypted with the saved keys.
  assert.deepEqual(openKeyring({ encrypt: null, file }).keyring?.list(), [K2]);
  // The -encrypt key among the saved ones: nothing to warn about.
  first.install(K1);
  assert.equal(openKeyring({ encrypt: K1, file }).ignoredEncrypt, false);
});

test('no key and no file: gossip in the clear, nothing written; -dev keeps nothing', () => {
  const dir = dataDir();
  assert.equal(openKeyring({ encrypt: null, file: keyringFile(dir) }).keyring, null);
  assert.equal(existsSync(dir), false);
  const dev = openKeyring({ encrypt: K1, file: null }).keyring!;
  dev.install(K2);
  assert.deepEqual(dev.list(), [K1, K2]);
  assert.equal(dev.file, null);
});

test('a damaged keyring file is refused with its name', () => {
  const file = keyringFile(dataDir());
  openKeyring({ encrypt: K1, file });
  writeFileSync(file, '{"not": "a list"}');
  assert.throws(
    () => openKeyring({ encrypt: K1, file }),
    (err: Error) => {
      assert.ok(err instanceof KeyringError);
      assert.ok(err.message.includes(file), err.message);
      return true;
    },
  );
  writeFileSync(file, JSON.stringify(['short']));
  assert.throws(() => openKeyring({ encrypt: K1, file }), KeyringError);
});

test('a change that cannot be saved does not take effect', () => {
  const dir = dataDir();
  openKeyring({ encrypt: K1, file: keyringFile(dir) });
  // The keyring's directory replaced by a plain file: the save fails.
  const blocked = join(dir, 'blocked');
  writeFileSync(blocked, '');
  const keyring = new Keyring([K1], { file: join(blocked, 'local.keyring') });
  assert.throws(() => keyring.install(K2));
  assert.deepEqual(keyring.list(), [K1]);
});

test('rotation: old packets open until their key is removed; the primary cannot be removed', () => {
  const keyring = new Keyring([K1]);
  const old = keyring.encrypt(Buffer.from('hello'));
  keyring.install(K3);
  keyring.use(K3);
  assert.equal(keyring.decrypt(old)?.toString(), 'hello');
  assert.equal(new Keyring([K1]).decrypt(keyring.encrypt(Buffer.from('x'))), null, 'K3 encrypts now');
  assert.throws(() => keyring.remove(K3), /primary/);
  assert.throws(() => keyring.use(K2), /not installed/);
  keyring.remove(K1);
  assert.equal(keyring.decrypt(old), null);
  assert.deepEqual(keyring.list(), [K3]);
});

test('joinAndWait counts the seeds that answered: a seed with another key does not', async () => {
  const meta = { role: 'client' as const, datacenter: 'dc1', ports: {}, version: '0', tags: {} };
  const shell = (name: string, key: string) =>
    new GossipShell({
      name,
      bindHost: '127.0.0.1',
      port: 0,
      advertiseHost: '127.0.0.1',
      meta,
      keyring: new Keyring([key]),
      log: silentLogger,
    });
  const a = shell('a', K1);
  const b = shell('b', K1);
  const outsider = shell('x', K2);
  await Promise.all([a.start(), b.start(), outsider.start()]);
  try {
    assert.equal(await b.joinAndWait([a.address]), 1);
    assert.ok(b.members().some((m) => m.name === 'a' && m.status === 'alive'));
    assert.equal(await outsider.joinAndWait([a.address], 1500), 0);
    assert.equal(await outsider.joinAndWait(['127.0.0.1:1'], 1500), 0, 'nobody listens there');
    assert.ok(!a.members().some((m) => m.name === 'x'));
    // Once the outsider installs the pool's key, it gets in.
    outsider.keyring?.install(K1);
    outsider.keyring?.use(K1);
    assert.equal(await outsider.joinAndWait([a.address]), 1);
  } finally {
    await Promise.all([a.stop(), b.stop(), outsider.stop()]);
  }
});
