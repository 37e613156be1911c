import { Agent } from '../../src/agent/agent.js';
import { type AgentFlags, buildConfig } from '../../src/agent/config.js';
import { silentLogger } from '../../src/server/logger.js';

/** Every port an agent binds, picked free by the OS, so tests never collide. */
export const EPHEMERAL_PORTS: AgentFlags = {
  httpPort: '0',
  serverPort: '0',
  etcdPort: '0',
  dnsPort: '0',
  serfLanPort: '0',
};

/** An agent in this process (a -dev one unless the flags say otherwise), started; its HTTP base URL. */
export async function startInProcessAgent(flags: AgentFlags): Promise<{ agent: Agent; base: string }> {
  const agent = new Agent(buildConfig({ dev: true, ...EPHEMERAL_PORTS, ...flags }), silentLogger);
  await agent.start();
  return { agent, base: `http://127.0.0.1:${agent.httpPort}` };
}

export interface HttpReply {
  status: number;
  text: string;
  /** The body parsed as JSON, or the text when it is not JSON; null when empty. */
  json: unknown;
  /** X-Consul-Index, 0 when absent. */
  index: number;
  headers: Headers;
}

export type HttpCall = (method: string, path: string, body?: unknown) => Promise<HttpReply>;

/** Plain HTTP calls to an agent at `base`; a body that is not a string is sent as JSON. */
export function httpCaller(base: string): HttpCall {
  return async (method, path, body) => {
    const init: RequestInit = { method, signal: AbortSignal.timeout(20_000) };
    if (body !== undefined) init.body = typeof body === 'string' ? body : JSON.stringify(body);
    const res = await fetch(`${base}${path}`, init);
    const text = await res.text();
    let json: unknown = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = text;
    }
    return {
      status: res.status,
      text,
      json,
      index: Number(res.headers.get('x-consul-index') ?? 0),
      headers: res.headers,
    };
  };
}
