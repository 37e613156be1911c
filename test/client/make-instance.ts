import type { ServiceInstance } from '../../src/client/instance.js';

/** A ServiceInstance with defaults, for picker tests. */
export function instance(id: string, fields: Partial<ServiceInstance> = {}): ServiceInstance {
  return {
    id,
    node: id.split('/')[0] ?? id,
    serviceId: id,
    service: 'web',
    address: '127.0.0.1',
    port: 8080,
    datacenter: 'dc1',
    tags: [],
    meta: {},
    health: 'passing',
    weight: 1,
    ...fields,
  };
}

/** A Random returning the given values in turn, then repeating the last one. */
export function sequence(...values: number[]): () => number {
  let i = 0;
  return () => values[Math.min(i++, values.length - 1)]!;
}
