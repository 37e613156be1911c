import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

// A small stand-in for a Consul agent's GET /v1/health/service/:name with blocking queries:
// a query whose index is at or past the current one is held until set() changes the data (or
// the server closes). Tests drive it step by step and read back the requests it saw.

export interface Check {
  Status: 'passing' | 'warning' | 'critical';
  CheckID?: string;
}

/** One health-service entry in Consul's shape, from a few fields. */
export function entry(
  node: string,
  serviceId: string,
  options: {
    address?: string;
    nodeAddress?: string;
    port?: number;
    checks?: Check['Status'][];
    weights?: { Passing: number; Warning: number };
    tags?: string[];
    meta?: Record<string, string>;
  } = {},
): unknown {
  return {
    Node: {
      ID: `id-${node}`,
      Node: node,
      Address: options.nodeAddress ?? `10.0.0.${node.length}`,
      Datacenter: 'dc1',
      TaggedAddresses: null,
      Meta: {},
    },
    Service: {
      ID: serviceId,
      Service: 'web',
      Tags: options.tags ?? [],
      Address: options.address ?? '',
      Port: options.port ?? 8080,
      Meta: options.meta ?? {},
      Weights: options.weights ?? { Passing: 1, Warning: 1 },
    },
    Checks: (options.checks ?? ['passing']).map((Status, i) => ({
      Node: node,
      CheckID: `check-${i}`,
      Name: `check ${i}`,
      Status,
      ServiceID: serviceId,
    })),
  };
}

export interface SeenRequest {
  path: string;
  index: string | null;
  wait: string | null;
  passing: string | null;
  tags: string[];
  dc: string | null;
  token: string | undefined;
}

/** A response the server gives at once, ahead of the blocking logic. */
export interface Scripted {
  status?: number;
  /** X-Consul-Index header; null sends none. Default: the current index. */
  index?: string | null;
  /** Raw body; default the current entries as JSON. */
  body?: string;
}

interface Held {
  res: ServerResponse;
  passingOnly: boolean;
}

function isPassing(e: unknown): boolean {
  const checks = (e as { Checks: { Status: string }[] }).Checks;
  return checks.every((c) => c.Status === 'passing');
}

export class FakeConsul {
  index = 1;
  entries: unknown[] = [];
  readonly requests: SeenRequest[] = [];
  /** Responses to give, in order, before any blocking behaviour. */
  readonly script: Scripted[] = [];
  /** Held queries the client gave up on (aborted) before they were answered. */
  droppedHeld = 0;
  readonly #server: Server;
  readonly #held = new Set<Held>();

  constructor() {
    this.#server = createServer((req, res) => this.#handle(req, res));
  }

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  /** Replaces the data and wakes every held query. `index` defaults to the next index. */
  set(entries: unknown[], index = this.index + 1): void {
    this.entries = entries;
    this.index = index;
    for (const held of [...this.#held]) this.#answer(held.res, held.passingOnly);
    this.#held.clear();
  }

  /** Queries waiting for a change right now. */
  get heldCount(): number {
    return this.#held.size;
  }

  /** Stops listening and drops every connection, held ones included. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeAllConnections();
    this.#held.clear();
    await closed;
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    const seen: SeenRequest = {
      path: url.pathname,
      index: url.searchParams.get('index'),
      wait: url.searchParams.get('wait'),
      passing: url.searchParams.get('passing'),
      tags: url.searchParams.getAll('tag'),
      dc: url.searchParams.get('dc'),
      token: req.headers['x-consul-token'] as string | undefined,
    };
    this.requests.push(seen);
    const passingOnly = seen.passing !== null;
    const scripted = this.script.shift();
    if (scripted !== undefined) {
      const index = scripted.index === undefined ? String(this.index) : scripted.index;
      const headers: Record<string, string> = { 'Content-Type': 'application/json' };
      if (index !== null) headers['X-Consul-Index'] = index;
      res.writeHead(scripted.status ?? 200, headers);
      res.end(scripted.body ?? JSON.stringify(this.#visible(passingOnly)));
      return;
    }
    const index = Number(seen.index ?? 0);
    if (index > 0 && index >= this.index) {
      const held = { res, passingOnly };
      this.#held.add(held);
      res.once('close', () => {
        if (this.#held.delete(held)) this.droppedHeld++;
      });
      return;
    }
    this.#answer(res, passingOnly);
  }

  #visible(passingOnly: boolean): unknown[] {
    return passingOnly ? this.entries.filter(isPassing) : this.entries;
  }

  #answer(res: ServerResponse, passingOnly: boolean): void {
    res.writeHead(200, { 'Content-Type': 'application/json', 'X-Consul-Index': String(this.index) });
    res.end(JSON.stringify(this.#visible(passingOnly)));
  }
}

/** Waits until `condition()` holds, checking every 5 ms, at most `tries` times. Not a timing assertion. */
export async function until(condition: () => boolean, what: string, tries = 3000): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error(`gave up waiting for ${what}`);
}
