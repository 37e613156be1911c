import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Agent } from '../../src/agent/agent.js';
import { startInProcessAgent } from './in-process-agent.js';

// Consul's documented lock recipes, run over plain HTTP against a dev agent: leader election
// (a session acquires a key) and the semaphore (contender keys held by sessions, plus a .lock
// key updated with check-and-set).

let agent: Agent;
let base = '';

before(async () => {
  ({ agent, base } = await startInProcessAgent({ node: 'recipes' }));
});

after(async () => {
  await agent.shutdown();
});

async function http(
  method: string,
  path: string,
  body?: string,
): Promise<{ status: number; json: unknown; index: number }> {
  const res = await fetch(`${base}${path}`, body === undefined ? { method } : { method, body });
  const text = await res.text();
  return {
    status: res.status,
    json: text ? (JSON.parse(text) as unknown) : null,
    index: Number(res.headers.get('x-consul-index') ?? 0),
  };
}

const session = async (name: string) =>
  (
    (await http('PUT', '/v1/session/create', JSON.stringify({ Name: name, LockDelay: '0s' }))).json as {
      ID: string;
    }
  ).ID;

test('recipe: leader election — one session holds the key; the next takes it when the first is gone', async () => {
  const [a, b] = [await session('a'), await session('b')];
  assert.equal((await http('PUT', `/v1/kv/service/leader?acquire=${a}`, 'a')).json, true);
  assert.equal((await http('PUT', `/v1/kv/service/leader?acquire=${b}`, 'b')).json, false);
  const held = (await http('GET', '/v1/kv/service/leader')).json as { Session: string }[];
  assert.equal(held[0]!.Session, a);
  // The follower waits on the key with a blocking query; the leader's session ends.
  const before = await http('GET', '/v1/kv/service/leader');
  const waiting = http('GET', `/v1/kv/service/leader?index=${before.index}&wait=10s`);
  await http('PUT', `/v1/session/destroy/${a}`);
  const woke = (await waiting).json as { Session?: string }[];
  assert.equal(woke[0]!.Session, undefined, 'released by the destroyed session');
  assert.equal((await http('PUT', `/v1/kv/service/leader?acquire=${b}`, 'b')).json, true);
});

/** One step of Consul's semaphore recipe; true once this session holds a slot. */
async function trySemaphore(prefix: string, id: string, limit: number): Promise<boolean> {
  // Contender key, held by our session (it disappears from holders if the session dies).
  assert.equal((await http('PUT', `/v1/kv/${prefix}/${id}?acquire=${id}`, 'contender')).json, true);
  const entries = (await http('GET', `/v1/kv/${prefix}?recurse`)).json as {
    Key: string;
    Value: string | null;
    Session?: string;
    ModifyIndex: number;
  }[];
  const lock = entries.find((e) => e.Key === `${prefix}/.lock`);
  const state = lock?.Value
    ? (JSON.parse(Buffer.from(lock.Value, 'base64').toString()) as { Limit: number; Holders: string[] })
    : { Limit: limit, Holders: [] };
  // Prune holders whose contender key no longer has a live session.
  const live = new Set(entries.filter((e) => e.Session).map((e) => e.Key.slice(prefix.length + 1)));
  const holders = state.Holders.filter((h) => live.has(h));
  if (holders.includes(id)) return true;
  if (holders.length >= state.Limit) return false;
  const next = JSON.stringify({ Limit: state.Limit, Holders: [...holders, id] });
  const cas = lock?.ModifyIndex ?? 0;
  return (await http('PUT', `/v1/kv/${prefix}/.lock?cas=${cas}`, next)).json === true;
}

test('recipe: semaphore — at most Limit holders; a dead holder frees its slot', async () => {
  const [a, b, c] = [await session('a'), await session('b'), await session('c')];
  const prefix = 'service/sem';
  assert.equal(await trySemaphore(prefix, a, 2), true);
  assert.equal(await trySemaphore(prefix, b, 2), true);
  assert.equal(await trySemaphore(prefix, c, 2), false, 'the third waits');
  await http('PUT', `/v1/session/destroy/${a}`);
  assert.equal(await trySemaphore(prefix, c, 2), true, 'takes the slot of the dead holder');
  const lock = (await http('GET', `/v1/kv/${prefix}/.lock`)).json as { Value: string }[];
  const state = JSON.parse(Buffer.from(lock[0]!.Value, 'base64').toString()) as { Holders: string[] };
  assert.deepEqual(state.Holders.sort(), [b, c].sort());
});
