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
 * Bounded: at most `size` waiters over all workers, each until its deadline, one timer per
 * queue (for the earliest deadline), and one outstanding waitAsync per cluster per worker
 * while anyone waits here. Nothing here runs for a connection that finds a free backend.
 *
 * Time: deadlines are on the clock the queue is given, a monotonic one (performance.now()):
 * a step of the wall clock must not time waiters out early or keep them late. Tests pass a
 * fake clock and call `expire` to judge the deadlines at a time of their choosing.
 */
import { ClusterCell, type ClusterState } from '../shared/cluster-state.ts';

export interface QueuedConnection {
  /**
   * Try to get a backend now; true when the connection leaves the queue: it got one, or no
   * backend it could wait for is left (it was refused).
   */
  retry(): boolean;
  /** Its wait ended without a backend. */
  timedOut(): void;
}

interface Entry {
  readonly connection: QueuedConnection;
  /** On the queue's clock, milliseconds. */
  readonly deadline: number;
}

/** Re-check for capacity this often even without a wake-up, while anyone waits. */
const SAFETY_POLL_MS = 250;

/** Milliseconds of a monotonic clock: what the data plane times waits and idleness with. */
export function monotonicMs(): number {
  return performance.now();
}

/**
 * When a connection's wait ends: `timeoutMs` after it first queued (`firstDeadline` < 0: it
 * never did), however often it queues again after a failed attempt. Over once `now` reaches it.
 */
export function waitDeadline(firstDeadline: number, now: number, timeoutMs: number): number {
  return firstDeadline < 0 ? now + timeoutMs : firstDeadline;
}

export class ConnectionQueue {
  readonly state: ClusterState;
  private readonly worker: number;
  private readonly now: () => number;
  private readonly waiting: Entry[] = [];
  private armed = false;
  /** The one deadline timer, set for `timerDeadline` (the earliest deadline when it was set). */
  private timer: NodeJS.Timeout | undefined;
  private timerDeadline = Infinity;

  constructor(state: ClusterState, worker: number, now: () => number = monotonicMs) {
    this.state = state;
    this.worker = worker;
    this.now = now;
  }

  get length(): number {
    return this.waiting.length;
  }

  /** Wait for at most `timeoutMs` from now; false (and nothing queued) when `size` already wait. */
  enqueue(connection: QueuedConnection, size: number, timeoutMs: number): boolean {
    if (!this.state.tryEnterQueue(this.worker, size)) return false;
    const deadline = this.now() + timeoutMs;
    this.waiting.push({ connection, deadline });
    if (deadline < this.timerDeadline) this.setTimer(deadline);
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

  /**
   * Time out, in arrival order, every waiter whose deadline the clock has reached. The timer
   * calls it; a timer may fire a little before the clock reaches the deadline (libuv measures
   * from the start of its loop turn), and then it only sets itself again.
   */
  expire(): void {
    const now = this.now();
    for (const entry of [...this.waiting]) {
      if (entry.deadline <= now && this.take(entry.connection)) entry.connection.timedOut();
    }
    this.setTimer(this.earliestDeadline());
  }

  private take(connection: QueuedConnection): boolean {
    const index = this.waiting.findIndex((entry) => entry.connection === connection);
    if (index < 0) return false;
    this.waiting.splice(index, 1);
    this.state.leaveQueue(this.worker);
    // A timer set for an earlier waiter that left is let run: it finds nothing due and moves on.
    if (this.waiting.length === 0) this.setTimer(Infinity);
    return true;
  }

  private earliestDeadline(): number {
    let earliest = Infinity;
    for (const entry of this.waiting) if (entry.deadline < earliest) earliest = entry.deadline;
    return earliest;
  }

  /** Replace the deadline timer with one for `deadline` (Infinity: none). */
  private setTimer(deadline: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerDeadline = deadline;
    if (deadline === Infinity) return;
    // Whole milliseconds, rounded up: a timer never fires before the delay it was given.
    this.timer = setTimeout(this.onTimer, Math.max(1, Math.ceil(deadline - this.now())));
  }

  private readonly onTimer = (): void => {
    this.timer = undefined;
    this.timerDeadline = Infinity;
    this.expire();
  };

  /** Serve waiters in order while backends have room. */
  private serve(): void {
    for (;;) {
      const head = this.waiting[0];
      // A retry that returns true has reserved a backend and started connecting
      // (asynchronously), or refused the client, so it cannot re-enter the queue before it is
      // taken out here.
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
