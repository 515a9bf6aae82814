import type { SnapshotReader } from '../shared/snapshot/reader.ts';
import { buildRoutingTable, type ClusterRoute, type ListenerRoute, type RoutingEnv, type RoutingTable } from './routing-table.ts';

/**
 * The per-accept routing decision's only shared-memory read: one Atomics.load of the
 * snapshot version (inside `reader.current()`), and a rebuild of the routing table only
 * when the version moved. The rebuild cost is paid once per version, not per accept.
 */
export class Router {
  private readonly reader: SnapshotReader;
  private readonly env: RoutingEnv;
  private table: RoutingTable;

  constructor(reader: SnapshotReader, env: RoutingEnv) {
    this.reader = reader;
    this.env = env;
    this.table = buildRoutingTable(reader.current(), env);
  }

  routeFor(listener: string): ListenerRoute | undefined {
    return this.current().byListener.get(listener);
  }

  /** A cluster's route in the current version (a queued connection retrying). */
  cluster(name: string): ClusterRoute | undefined {
    return this.current().byCluster.get(name);
  }

  /**
   * Rebuild now even though the version did not move: the environment changed
   * (new cluster state buffers arrived, possibly after the snapshot that names them).
   */
  invalidate(): void {
    this.table = buildRoutingTable(this.reader.current(), this.env, this.table);
  }

  get version(): number {
    return this.table.snapshot.version;
  }

  /** The table of the current snapshot, rebuilt first if the version moved. */
  current(): RoutingTable {
    const snapshot = this.reader.current();
    if (snapshot !== this.table.snapshot) this.table = buildRoutingTable(snapshot, this.env, this.table);
    return this.table;
  }
}
