import { createSocket } from 'node:dgram';
import { createServer, type Server } from 'node:net';

/**
 * `n` distinct free TCP ports on 127.0.0.1, for programs that take a port number and bind it
 * themselves (Patroni's postgres, haproxy, etcd). All `n` listeners stay open until the last
 * one is chosen: closing each before asking for the next lets the kernel hand the same port out
 * twice, and two postgres servers given one port looked to Patroni like one primary.
 * With `udp`, each port must also be free for UDP (gossip binds both).
 */
export async function freePorts(n: number, opts: { udp?: boolean } = {}): Promise<number[]> {
  const held: Server[] = [];
  const ports: number[] = [];
  try {
    // Bounded: a port rejected for UDP stays held, so each try yields a new port.
    for (let tries = 0; ports.length < n && tries < n + 64; tries++) {
      const server = createServer();
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', resolve);
      });
      held.push(server);
      const port = (server.address() as { port: number }).port;
      if (!opts.udp || (await udpFree(port))) ports.push(port);
    }
  } finally {
    await Promise.all(held.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
  if (ports.length < n) throw new Error(`found only ${ports.length} of ${n} free ports`);
  return ports;
}

export async function freePort(): Promise<number> {
  const [port] = await freePorts(1);
  return port!;
}

async function udpFree(port: number): Promise<boolean> {
  const udp = createSocket('udp4');
  const free = await new Promise<boolean>((resolve) => {
    udp.once('error', () => resolve(false));
    udp.bind(port, '127.0.0.1', () => resolve(true));
  });
  await new Promise<void>((resolve) => {
    try {
      udp.close(() => resolve());
    } catch {
      resolve(); // never bound
    }
  });
  return free;
}
