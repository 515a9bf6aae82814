/** /clusters and /snapshot: what the published snapshot says, read without asking the control plane. */
import type { FastifyInstance } from 'fastify';
import type { SnapshotReader } from '../../shared/snapshot/reader.ts';
import type { BackendState } from '../../shared/snapshot/types.ts';

export interface ClusterView {
  readonly name: string;
  readonly algorithm: string;
  readonly panic_mode: string;
  readonly listeners: readonly string[];
  readonly backends: number;
  readonly states: Readonly<Record<BackendState, number>>;
}

export function registerClusterRoutes(app: FastifyInstance, snapshots: SnapshotReader): void {
  app.get('/clusters', () => {
    const snapshot = snapshots.current();
    return snapshot.clusters.map((c): ClusterView => {
      const states: Record<BackendState, number> = { healthy: 0, draining: 0, unhealthy: 0 };
      for (const b of c.backends) states[b.state]++;
      return {
        name: c.name,
        algorithm: c.algorithm,
        panic_mode: c.panicMode,
        listeners: snapshot.listeners.filter((l) => l.cluster === c.name).map((l) => l.name),
        backends: c.backends.length,
        states,
      };
    });
  });

  app.get('/snapshot', () => snapshots.current());
}
