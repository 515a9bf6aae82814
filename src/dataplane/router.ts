import type { SnapshotReader } from '../shared/snapshot/reader.ts';
import { buildRoutingTable, type ClusterRoute, type RoutingTable } from './routing-table.ts';

/**
 * The per-accept routing decision's only shared-memory read: one Atomics.load of the
 * snapshot version (inside `reader.current()`), and a rebuild of the routing table only
 * when the version moved. The rebuild cost is paid once per version, not per accept.
 */
export class Router {
  private readonly reader: SnapshotReader;
  private table: RoutingTable;

  constructor(reader: SnapshotReader) {
    this.reader = reader;
    this.table = buildRoutingTable(reader.current());
  }

  routeFor(listener: string): ClusterRoute | undefined {
    return this.current().byListener.get(listener);
  }

  /** The table of the current snapshot, rebuilt first if the version moved. */
  current(): RoutingTable {
    const snapshot = this.reader.current();
    if (snapshot !== this.table.snapshot) this.table = buildRoutingTable(snapshot, this.table);
    return this.table;
  }

  get version(): number {
    return this.table.snapshot.version;
  }
}
