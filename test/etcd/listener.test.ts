import assert from 'node:assert/strict';
import { connect as connectHttp2 } from 'node:http2';
import { test } from 'node:test';
import { startEtcdTestServer } from './harness.js';

test('closing the etcd API sends gRPC clients a GOAWAY before the connection ends', async () => {
  const server = await startEtcdTestServer();
  const session = connectHttp2(`http://${server.endpoint}`);
  try {
    await new Promise<void>((resolve, reject) => {
      session.once('remoteSettings', () => resolve());
      session.once('error', reject);
    });
    const goaway = new Promise<number>((resolve) => session.once('goaway', (code: number) => resolve(code)));
    const closed = new Promise<void>((resolve) => session.once('close', () => resolve()));
    session.on('error', () => {}); // the reset after the GOAWAY is expected
    await server.close();
    assert.equal(await goaway, 0, 'GOAWAY with NO_ERROR');
    await closed;
  } finally {
    session.destroy();
  }
});
