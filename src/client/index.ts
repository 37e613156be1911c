/**
 * Service discovery with client-side load balancing, over Consul's HTTP API only (an agent of
 * Conclave or of Consul):
 *
 *   const lb = LoadBalancer.forService({ agent: 'http://127.0.0.1:8500', service: 'api',
 *     picker: new LeastRequestsPicker() });
 *   await lb.ready();
 *   const body = await lb.run((i) => fetch(`http://${i.address}:${i.port}/v1/thing`));
 *   await lb.close();
 *
 * Pickers: RoundRobinPicker, WeightedRandomPicker (Consul Weights), LeastRequestsPicker
 * (requests in flight through run() or acquire()), HashRingPicker (pick(key) / run(fn, key)).
 */
export { Backoff, type BackoffOptions } from './backoff.js';
export { nextBlockingIndex } from './blocking-index.js';
export { type Hash32, sha256Hash32 } from './hash.js';
export { HashRing, type HashRingOptions } from './hash-ring.js';
export { HashRingPicker } from './hash-ring-picker.js';
export { AgentHttpError } from './http-body.js';
export { MalformedResponseError, parseHealthService, type ServiceInstance } from './instance.js';
export { LeastRequestsPicker } from './least-requests.js';
export {
  type InstanceSource,
  LoadBalancer,
  type LoadBalancerOptions,
  NoInstanceError,
} from './load-balancer.js';
export type { Lease, Picker } from './picker.js';
export { type Random, seededRandom } from './random.js';
export { RoundRobinPicker } from './round-robin.js';
export { ServiceWatcher, type ServiceWatcherEvents, type ServiceWatcherOptions } from './service-watcher.js';
export { TokenBucket } from './token-bucket.js';
export { WeightedRandomPicker } from './weighted-random.js';
