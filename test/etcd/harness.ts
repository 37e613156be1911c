import { randomUUID } from 'node:crypto';
import { startEtcdApi } from '../../src/api/etcd/etcd-api.js';
import { silentLogger } from '../../src/server/logger.js';
import { ConclaveServer } from '../../src/server/server.js';

/** One in-memory server with the etcd API on an ephemeral loopback port, for etcd API tests. */
export interface EtcdTestServer {
  server: ConclaveServer;
  /** host:port of the etcd API. */
  endpoint: string;
  close(): Promise<void>;
}

export async function startEtcdTestServer(): Promise<EtcdTestServer> {
  const server = new ConclaveServer({
    nodeId: randomUUID(),
    nodeName: 'etcd-test',
    dataDir: null,
    bindHost: '127.0.0.1',
    serverPort: 0,
    bootstrap: 'self',
    retryJoin: [],
    log: silentLogger,
    tickMs: 10,
  });
  await server.start();
  const end = Date.now() + 5000;
  while (!server.isLeader()) {
    if (Date.now() > end) throw new Error('no leader');
    await new Promise((r) => setTimeout(r, 5));
  }
  const api = await startEtcdApi(server, '127.0.0.1', 0);
  return {
    server,
    endpoint: `127.0.0.1:${api.port}`,
    close: async () => {
      await api.close();
      await server.stop();
    },
  };
}
