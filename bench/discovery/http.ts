import { Agent, request } from 'node:http';

/**
 * A small HTTP client for the load generator: keep-alive sockets (at most `SOCKETS_PER_HOST`
 * per server), no JSON parsing unless asked, a timeout on every request.
 */

const SOCKETS_PER_HOST = 64;
const REQUEST_TIMEOUT_MS = 40_000;

const agent = new Agent({ keepAlive: true, maxSockets: SOCKETS_PER_HOST });

export interface Reply {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

export function call(
  port: number,
  method: string,
  path: string,
  body?: string,
  timeoutMs = REQUEST_TIMEOUT_MS,
): Promise<Reply> {
  return new Promise((res, rej) => {
    const req = request({ host: '127.0.0.1', port, method, path, agent, timeout: timeoutMs }, (r) => {
      const chunks: Buffer[] = [];
      r.on('data', (c: Buffer) => chunks.push(c));
      r.on('end', () =>
        res({ status: r.statusCode ?? 0, body: Buffer.concat(chunks).toString(), headers: r.headers }),
      );
      r.on('error', rej);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer in ${timeoutMs} ms`)));
    req.on('error', rej);
    req.end(body);
  });
}

/** `call`, failing unless the status is 200. */
export async function ok(port: number, method: string, path: string, body?: string): Promise<Reply> {
  const r = await call(port, method, path, body);
  if (r.status !== 200) throw new Error(`${method} ${path}: ${r.status} ${r.body.slice(0, 300)}`);
  return r;
}

export function consulIndex(r: Reply): number {
  const raw = r.headers['x-consul-index'];
  const index = Number(Array.isArray(raw) ? raw[0] : raw);
  if (!Number.isSafeInteger(index) || index <= 0)
    throw new Error(`no X-Consul-Index in reply (${String(raw)})`);
  return index;
}

export function closeSockets(): void {
  agent.destroy();
}
