import type { Catalog, CatalogNode, ServiceEntry } from '../../store/catalog.js';

/**
 * Case-insensitive catalog reads for DNS (RFC 4343: names compare without case; Consul's
 * catalog indexes are case-insensitive too). The exact lower-case name is tried first, so a
 * scan of the catalog happens only for names registered with capitals, or not at all.
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
    for (const services of catalog.services.values())
      for (const service of services.values())
        if (service.service !== name && service.service.toLowerCase() === name)
          spellings.add(service.service);
    entries = [...spellings].sort().flatMap((spelling) => catalog.instances(spelling));
  }
  if (tag === null) return entries;
  return entries.filter((entry) => entry.service.tags.some((t) => t.toLowerCase() === tag));
}
