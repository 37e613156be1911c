import type { FastifyInstance, FastifyRequest } from 'fastify';
import { decodeKey, KeyringError } from '../../agent/gossip/keyring.js';
import { badRequest, HttpError } from './errors.js';

/**
 * Consul's /v1/operator/keyring: list (GET), install (POST), use (PUT) and remove (DELETE) a
 * gossip encryption key, body {"Key": "..."}. Cluster-wide as in Consul: the agent asked
 * applies the change to its own keyring and relays it to every other alive member's agent
 * (their HTTP port is in their gossip tags), marked with KEYRING_LOCAL_HEADER so the relay is
 * not relayed again; the answer counts the keys over all nodes that replied (Consul's
 * KeyringResponse) and fails with every node's error when any node failed.
 */

/** Marks a relayed request: apply it here only and answer this node's own result. */
export const KEYRING_LOCAL_HEADER = 'x-conclave-keyring-local';
const RELAY_TIMEOUT_MS = 5000;
/** Members asked at once during the fan-out. */
const RELAY_CONCURRENCY = 16;

/** One agent's keyring (src/agent/gossip/keyring.ts). */
export interface LocalKeyring {
  list(): string[];
  install(key: string): void;
  use(key: string): void;
  remove(key: string): void;
}

/** Another member's agent: its node name and HTTP base address, `http://host:port` (null: none known). */
export interface KeyringPeer {
  name: string;
  http: string | null;
}

export interface KeyringContext {
  nodeName: string;
  datacenter: string;
  /** This agent's keyring, or null when its gossip is not encrypted. */
  keyring: () => LocalKeyring | null;
  /** The other alive members, for the fan-out. */
  peers: () => KeyringPeer[];
}

type Operation = 'list' | 'install' | 'use' | 'remove';

/** One node's outcome: its keys (primary first) after the operation, or its error. */
interface NodeResult {
  node: string;
  keys?: string[];
  error?: string;
}

const NOT_ENCRYPTED = 'Gossip encryption is not enabled on this agent (start it with -encrypt)';

export function registerKeyringRoutes(app: FastifyInstance, ctx: KeyringContext): void {
  const handle = (operation: Operation) => async (req: FastifyRequest) => {
    const key = operation === 'list' ? '' : keyOf(req.body);
    if (req.headers[KEYRING_LOCAL_HEADER] !== undefined) {
      const result = applyLocally(ctx, operation, key);
      if (result.error !== undefined) throw new HttpError(500, result.error);
      return { Node: result.node, Keys: result.keys };
    }
    if (ctx.keyring() === null) throw new HttpError(500, NOT_ENCRYPTED);
    const results = [applyLocally(ctx, operation, key), ...(await relay(ctx.peers(), operation, key))];
    const failed = results.filter((r) => r.error !== undefined);
    if (failed.length > 0)
      throw new HttpError(
        500,
        [
          `${failed.length}/${results.length} nodes reported failure`,
          ...failed.map((r) => `${r.node}: ${r.error}`),
        ].join('\n'),
      );
    if (operation !== 'list') return '';
    return [summary(ctx.datacenter, results)];
  };
  app.get('/v1/operator/keyring', handle('list'));
  app.post('/v1/operator/keyring', handle('install'));
  app.put('/v1/operator/keyring', handle('use'));
  app.delete('/v1/operator/keyring', handle('remove'));
}

function keyOf(body: unknown): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.isBuffer(body) ? body.toString('utf8') : String(body ?? ''));
  } catch {
    throw badRequest('Request decode failed: the body must be {"Key": "<base64 key>"}');
  }
  const key = (parsed as { Key?: unknown } | null)?.Key;
  if (typeof key !== 'string' || key === '') throw badRequest('Request decode failed: missing "Key"');
  try {
    decodeKey(key);
  } catch (err) {
    throw badRequest(`Invalid key ${JSON.stringify(key)}: ${(err as Error).message}`);
  }
  return key;
}

function applyLocally(ctx: KeyringContext, operation: Operation, key: string): NodeResult {
  const keyring = ctx.keyring();
  if (keyring === null) return { node: ctx.nodeName, error: NOT_ENCRYPTED };
  try {
    if (operation === 'install') keyring.install(key);
    else if (operation === 'use') keyring.use(key);
    else if (operation === 'remove') keyring.remove(key);
  } catch (err) {
    if (!(err instanceof KeyringError)) throw err;
    return { node: ctx.nodeName, error: err.message };
  }
  return { node: ctx.nodeName, keys: keyring.list() };
}

const METHOD: Record<Operation, string> = { list: 'GET', install: 'POST', use: 'PUT', remove: 'DELETE' };

async function relay(peers: KeyringPeer[], operation: Operation, key: string): Promise<NodeResult[]> {
  const results: NodeResult[] = [];
  for (let i = 0; i < peers.length; i += RELAY_CONCURRENCY) {
    const batch = peers.slice(i, i + RELAY_CONCURRENCY);
    results.push(...(await Promise.all(batch.map((peer) => relayTo(peer, operation, key)))));
  }
  return results;
}

async function relayTo(peer: KeyringPeer, operation: Operation, key: string): Promise<NodeResult> {
  if (peer.http === null) return { node: peer.name, error: 'its gossip tags carry no HTTP port' };
  const init: RequestInit = {
    method: METHOD[operation],
    headers: { [KEYRING_LOCAL_HEADER]: '1' },
    signal: AbortSignal.timeout(RELAY_TIMEOUT_MS),
  };
  if (operation !== 'list') init.body = JSON.stringify({ Key: key });
  try {
    const res = await fetch(`${peer.http}/v1/operator/keyring`, init);
    const text = await res.text();
    if (res.status !== 200) return { node: peer.name, error: text.trim() || `HTTP ${res.status}` };
    const answer = JSON.parse(text) as { Keys?: unknown };
    if (!Array.isArray(answer.Keys)) return { node: peer.name, error: 'answered without its keys' };
    return { node: peer.name, keys: answer.Keys.filter((k): k is string => typeof k === 'string') };
  } catch (err) {
    const { cause } = err as { cause?: { code?: string } };
    return { node: peer.name, error: `no answer: ${cause?.code ?? (err as Error).message}` };
  }
}

/** Consul's KeyringResponse for the LAN pool: how many nodes hold each key, and use it as primary. */
function summary(datacenter: string, results: NodeResult[]): Record<string, unknown> {
  const keys: Record<string, number> = {};
  const primaryKeys: Record<string, number> = {};
  for (const r of results) {
    for (const k of r.keys ?? []) keys[k] = (keys[k] ?? 0) + 1;
    const primary = r.keys?.[0];
    if (primary !== undefined) primaryKeys[primary] = (primaryKeys[primary] ?? 0) + 1;
  }
  return {
    WAN: false,
    Datacenter: datacenter,
    Segment: '',
    Messages: {},
    Keys: keys,
    PrimaryKeys: primaryKeys,
    NumNodes: results.length,
  };
}
