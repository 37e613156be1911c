import type { ConclaveServer } from '../../server/server.js';
import { Topic, type WaitTarget } from '../../store/index.js';
import type { CatalogAccess, CatalogWrite } from './anti-entropy.js';

/** Anti-entropy on a server agent: catalog reads after a read barrier, writes through Raft. */
export function serverCatalogAccess(server: ConclaveServer): CatalogAccess {
  return {
    async nodeView(node) {
      // Compare against the committed catalog, not a follower's possibly stale copy.
      await server.readBarrier('default');
      const catalog = server.store.catalog;
      return {
        node: catalog.nodes.get(node),
        services: catalog.nodeServices(node),
        checks: catalog.nodeChecks(node),
      };
    },
    async write(command: CatalogWrite) {
      const result = await server.write(command);
      if (result.type === 'error') throw result.error;
    },
    watchNode(node, onChange) {
      const target: WaitTarget = { kind: 'topic', topic: Topic.node(node) };
      let stopped = false;
      let cancel = () => {};
      const arm = (after: number) => {
        if (stopped) return;
        const started = server.store.waitForChange(target, after, (index) => {
          onChange();
          arm(index);
        });
        if (started.ready) {
          setImmediate(() => {
            onChange();
            arm(started.index);
          });
        } else cancel = started.cancel;
      };
      arm(server.store.index(target));
      return () => {
        stopped = true;
        cancel();
      };
    },
  };
}
