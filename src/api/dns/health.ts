import type { CatalogCheck, ServiceEntry } from '../../store/catalog.js';

/**
 * Which instances DNS hands out. Consul's DNS "excludes instances with failing health checks":
 * critical (and maintenance, which Consul models as a critical check) are out, warning is in,
 * unless dns_config.only_passing also drops warning.
 */

export type AggregateStatus = 'passing' | 'warning' | 'critical';

/** The worst status among the checks (Consul's HealthChecks.AggregatedStatus). */
export function aggregateStatus(checks: readonly CatalogCheck[]): AggregateStatus {
  let worst: AggregateStatus = 'passing';
  for (const check of checks) {
    if (check.status === 'critical' || check.status === 'maintenance') return 'critical';
    if (check.status === 'warning') worst = 'warning';
  }
  return worst;
}

export function isServable(entry: ServiceEntry, onlyPassing: boolean): boolean {
  const status = aggregateStatus(entry.checks);
  return onlyPassing ? status === 'passing' : status !== 'critical';
}

/** SRV weight: the service's Weights for its status (Consul's findWeight; 1/1 by default). */
export function srvWeight(entry: ServiceEntry): number {
  const status = aggregateStatus(entry.checks);
  if (status === 'passing') return entry.service.weights.passing;
  if (status === 'warning') return entry.service.weights.warning;
  return 0;
}
