/** The CLI's HTTP calls to a local agent (Consul's -http-addr / CONSUL_HTTP_ADDR). */

export function agentAddress(flag: string | undefined): string {
  const raw = flag ?? process.env.CONCLAVE_HTTP_ADDR ?? process.env.CONSUL_HTTP_ADDR ?? '127.0.0.1:8500';
  return /^https?:\/\//.test(raw) ? raw.replace(/\/+$/, '') : `http://${raw}`;
}

export class AgentCallError extends Error {
  override name = 'AgentCallError';
}

export async function callAgent(
  base: string,
  method: string,
  path: string,
  body?: Uint8Array | string,
): Promise<{ status: number; text: string; bytes: Buffer }> {
  let res: Response;
  try {
    const init: RequestInit = { method, signal: AbortSignal.timeout(60_000) };
    if (body !== undefined) init.body = typeof body === 'string' ? body : Buffer.from(body);
    res = await fetch(`${base}${path}`, init);
  } catch (err) {
    // fetch's own message is just "fetch failed"; the cause says why (ECONNREFUSED, bad port...).
    const { cause } = err as { cause?: { code?: string; message?: string } };
    const why = cause?.code ?? cause?.message ?? (err as Error).message;
    throw new AgentCallError(`cannot reach the agent at ${base}: ${why}`);
  }
  const bytes = Buffer.from(await res.arrayBuffer());
  return { status: res.status, text: bytes.toString('utf8'), bytes };
}

/** Call and require a 2xx answer; the agent's own error text becomes the message. */
export async function callAgentOk(
  base: string,
  method: string,
  path: string,
  body?: Uint8Array | string,
): Promise<{ status: number; text: string; bytes: Buffer }> {
  const r = await callAgent(base, method, path, body);
  if (r.status < 200 || r.status >= 300)
    throw new AgentCallError(`${r.status}: ${r.text.trim() || 'request failed'}`);
  return r;
}
