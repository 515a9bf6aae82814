/**
 * Connections waiting for a backend slot when every eligible backend of their cluster is at
 * its max_connections. One queue object per cluster per worker; the bound (`queue.size`) is
 * global: a place is taken with compare-and-swap on the cluster's shared queue length.
 *
 * Waking: whoever frees a slot of a cluster with waiters (any worker) bumps the cluster's
 * shared wake cell and notifies it; every worker with waiters has one `Atomics.waitAsync` on
 * that cell outstanding and then serves its own waiters in arrival order. So: FIFO within a
 * worker; across workers the woken waiters race for the freed slots (compare-and-swap decides).
 * A slow safety poll covers capacity that appears without a release (a backend added or
 * undrained by a new snapshot).
 *
 * Bounded: at most `size` waiters over all workers, each for at most its timeout (one timer
 * per waiter), and one outstanding waitAsync per cluster per worker while anyone waits here.
 * Nothing here runs for a connection that finds a free backend.
 */
import { ClusterCell, type ClusterState } from '../shared/cluster-state.ts';

export interface QueuedConnection {
  /** Try to get a backend now; true when it did (it then leaves the queue). */
  retry(): boolean;
  /** Its wait ended without a backend. */
  timedOut(): void;
}

interface Entry {
  readonly connection: QueuedConnection;
  readonly timer: NodeJS.Timeout;
}

/** Re-check for capacity this often even without a wake-up, while anyone waits. */
const SAFETY_POLL_MS = 250;

export class ConnectionQueue {
  readonly state: ClusterState;
  private readonly worker: number;
  private readonly waiting: Entry[] = [];
  private armed = false;

  constructor(state: ClusterState, worker: number) {
    this.state = state;
    this.worker = worker;
  }

  get length(): number {
    return this.waiting.length;
  }

  /** Wait for at most `timeoutMs`; false (and nothing queued) when `size` already wait. */
  enqueue(connection: QueuedConnection, size: number, timeoutMs: number): boolean {
    if (!this.state.tryEnterQueue(this.worker, size)) return false;
    const timer = setTimeout(() => {
      if (this.take(connection)) connection.timedOut();
    }, timeoutMs);
    this.waiting.push({ connection, timer });
    if (this.armed) this.serve();
    else this.cycle();
    return true;
  }

  /** The connection went away while waiting (true if it was waiting here). */
  remove(connection: QueuedConnection): boolean {
    return this.take(connection);
  }

  /** Cut every waiter (drain): each is timed out at once. */
  clear(): void {
    for (const entry of [...this.waiting]) {
      if (this.take(entry.connection)) entry.connection.timedOut();
    }
  }

  private take(connection: QueuedConnection): boolean {
    const index = this.waiting.findIndex((entry) => entry.connection === connection);
    if (index < 0) return false;
    const [entry] = this.waiting.splice(index, 1);
    if (entry !== undefined) clearTimeout(entry.timer);
    this.state.leaveQueue(this.worker);
    return true;
  }

  /** Serve waiters in order while backends have room. */
  private serve(): void {
    for (;;) {
      const head = this.waiting[0];
      // A successful retry has reserved a backend and started connecting (asynchronously), so
      // it cannot re-enter the queue before it is taken out here.
      if (head === undefined || !head.connection.retry()) return;
      this.take(head.connection);
    }
  }

  private readonly cycle = (): void => {
    this.armed = false;
    if (this.waiting.length === 0) return;
    // Read the wake cell before looking for room: a release after this read changes the cell,
    // so the wait below returns at once instead of missing it.
    const seen = Atomics.load(this.state.cells, ClusterCell.wake);
    this.serve();
    if (this.waiting.length === 0) return;
    this.armed = true;
    const result = Atomics.waitAsync(this.state.cells, ClusterCell.wake, seen, SAFETY_POLL_MS);
    if (result.async) void result.value.then(this.cycle);
    else queueMicrotask(this.cycle);
  };
}
