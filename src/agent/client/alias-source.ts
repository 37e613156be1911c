import type { HealthStatus } from '../../store/index.js';
import type { AliasSource } from '../local/check-runners.js';
import type { ServerPool } from './server-pool.js';

/**
 * Alias checks on a client agent, which holds no catalog: each aliased node's checks are read
 * from a server (a stale read, as Consul's clients do for alias checks) and kept for the next
 * run. The answer a run sees is at most one check interval old; before the first read arrives
 * the aliased instance counts as not found (critical), as it would with no server.
 */
export function remoteAliasSource(pool: ServerPool): AliasSource {
  type Entry = {
    services: Set<string>;
    checks: { status: HealthStatus; output: string; serviceId: string }[];
  };
  const cache = new Map<string, Entry | null>();
  const pending = new Set<string>();
  const read = async (path: string): Promise<unknown> => {
    const server = pool.pick();
    const res = await fetch(`http://${server.http}${path}`, { signal: AbortSignal.timeout(5000) });
    if (res.status !== 200) throw new Error(`${path}: ${res.status}`);
    return res.json();
  };
  const refresh = (node: string) => {
    if (pending.has(node)) return;
    pending.add(node);
    void (async () => {
      try {
        const name = encodeURIComponent(node);
        const entry = (await read(`/v1/catalog/node/${name}?stale`)) as {
          Services: Record<string, unknown>;
        } | null;
        const checks = (await read(`/v1/health/node/${name}?stale`)) as {
          Status: HealthStatus;
          Output: string;
          ServiceID: string;
        }[];
        cache.set(
          node,
          entry === null
            ? null
            : {
                services: new Set(Object.keys(entry.Services)),
                checks: checks.map((c) => ({ status: c.Status, output: c.Output, serviceId: c.ServiceID })),
              },
        );
      } catch {
        // no server or no answer: keep what we had
      } finally {
        pending.delete(node);
      }
    })();
  };
  return (node, serviceId) => {
    refresh(node);
    const entry = cache.get(node);
    if (!entry) return null;
    if (serviceId === '') return entry.checks;
    if (!entry.services.has(serviceId)) return null;
    return entry.checks.filter((c) => c.serviceId === '' || c.serviceId === serviceId);
  };
}
