import type { Catalog, CatalogNode, ServiceEntry } from '../../store/catalog.js';

/**
 * Case-insensitive catalog reads for DNS (RFC 4343: names compare without case; Consul's
 * catalog indexes are case-insensitive too). The exact lower-case name is tried first; a name
 * registered with capitals, or not at all, then costs a pass over the service names (or nodes).
 */

export function findNode(catalog: Catalog, name: string): CatalogNode | undefined {
  const exact = catalog.nodes.get(name);
  if (exact !== undefined) return exact;
  for (const node of catalog.nodes.values()) if (node.node.toLowerCase() === name) return node;
  return undefined;
}

/** Instances of the service `name` (lower case), with `tag` (lower case) if given. */
export function findInstances(catalog: Catalog, name: string, tag: string | null): ServiceEntry[] {
  let entries = catalog.instances(name);
  if (entries.length === 0) {
    const spellings = new Set<string>();
    // Distinct names, not instances: an unknown name costs one pass over the service names.
    for (const spelling of catalog.registeredServiceNames())
      if (spelling !== name && spelling.toLowerCase() === name) spellings.add(spelling);
    entries = [...spellings].sort().flatMap((spelling) => catalog.instances(spelling));
  }
  if (tag === null) return entries;
  return entries.filter((entry) => entry.service.tags.some((t) => t.toLowerCase() === tag));
}
