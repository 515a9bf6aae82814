import { afterEach, describe, expect, it } from 'vitest';
import { ConnectionQueue, type QueuedConnection } from '../../../src/dataplane/connection-queue.ts';
import { ClusterState, createClusterStateBuffer } from '../../../src/shared/cluster-state.ts';

/** Free backend slots, as the real retry would find them with compare-and-swap. */
interface Capacity {
  free: number;
}

class Waiter implements QueuedConnection {
  readonly name: string;
  private readonly capacity: Capacity;
  private readonly log: string[];
  constructor(name: string, capacity: Capacity, log: string[]) {
    this.name = name;
    this.capacity = capacity;
    this.log = log;
  }
  retry(): boolean {
    if (this.capacity.free <= 0) return false;
    this.capacity.free--;
    this.log.push(`served ${this.name}`);
    return true;
  }
  timedOut(): void {
    this.log.push(`timed out ${this.name}`);
  }
}

const queues: ConnectionQueue[] = [];
afterEach(() => {
  for (const queue of queues.splice(0)) queue.clear();
});

function setup(workers = 1): { state: ClusterState; queues: ConnectionQueue[]; capacity: Capacity; log: string[] } {
  const state = new ClusterState(createClusterStateBuffer(0));
  const made = Array.from({ length: workers }, (_, w) => new ConnectionQueue(new ClusterState(state.cells.buffer as SharedArrayBuffer), w));
  queues.push(...made);
  return { state, queues: made, capacity: { free: 0 }, log: [] };
}

/** Wait for `done`; the bound only ends a hang (the assertion after it says what failed). */
async function until(done: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
}

describe('connection queue', () => {
  it('holds at most `size` waiters over all workers', () => {
    const { state, queues: [a, b], capacity, log } = setup(2);
    expect(a!.enqueue(new Waiter('1', capacity, log), 3, 10_000)).toBe(true);
    expect(b!.enqueue(new Waiter('2', capacity, log), 3, 10_000)).toBe(true);
    expect(a!.enqueue(new Waiter('3', capacity, log), 3, 10_000)).toBe(true);
    expect(b!.enqueue(new Waiter('4', capacity, log), 3, 10_000)).toBe(false);
    expect(state.statistics().length).toBe(3);
    expect(a!.length + b!.length).toBe(3);
  });

  it('serves a waiter at once when a slot is already free', () => {
    const { queues: [q], capacity, log } = setup();
    capacity.free = 1;
    expect(q!.enqueue(new Waiter('1', capacity, log), 5, 10_000)).toBe(true);
    expect(log).toEqual(['served 1']);
    expect(q!.length).toBe(0);
  });

  it('serves its waiters in arrival order when another worker frees slots', async () => {
    const { state, queues: [q], capacity, log } = setup();
    for (const name of ['1', '2', '3']) q!.enqueue(new Waiter(name, capacity, log), 5, 10_000);
    capacity.free = 2;
    state.wakeWaiters(); // what a release in any worker does while someone waits
    await until(() => log.length === 2);
    expect(log).toEqual(['served 1', 'served 2']);
    expect(state.statistics().length).toBe(1);
  });

  it('finds room that appears without a wake-up (a backend added by a new snapshot)', async () => {
    const { queues: [q], capacity, log } = setup();
    q!.enqueue(new Waiter('1', capacity, log), 5, 10_000);
    capacity.free = 1;
    await until(() => log.length === 1);
    expect(log).toEqual(['served 1']);
  });

  it('times a waiter out after its timeout and gives its place back', async () => {
    const { state, queues: [q], capacity, log } = setup();
    const startedAt = Date.now();
    q!.enqueue(new Waiter('1', capacity, log), 1, 100);
    await until(() => log.length === 1);
    expect(log).toEqual(['timed out 1']);
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(95);
    expect(state.statistics().length).toBe(0);
    expect(q!.enqueue(new Waiter('2', capacity, log), 1, 10_000)).toBe(true);
  });

  it('lets a waiter leave without timing it out', async () => {
    const { state, queues: [q], capacity, log } = setup();
    const waiter = new Waiter('1', capacity, log);
    q!.enqueue(waiter, 5, 50);
    expect(q!.remove(waiter)).toBe(true);
    expect(q!.remove(waiter)).toBe(false);
    expect(state.statistics().length).toBe(0);
    // A marker with the same timeout, queued after it: once the marker has timed out, the
    // removed waiter's deadline has passed too, and it must not have been timed out.
    q!.enqueue(new Waiter('marker', capacity, log), 5, 50);
    await until(() => log.length > 0);
    expect(log).toEqual(['timed out marker']);
    expect(state.statistics().length).toBe(0);
  });

  it('gives a dead worker’s places back', () => {
    const { state, queues: [a, b], capacity, log } = setup(2);
    a!.enqueue(new Waiter('1', capacity, log), 5, 10_000);
    b!.enqueue(new Waiter('2', capacity, log), 5, 10_000);
    b!.enqueue(new Waiter('3', capacity, log), 5, 10_000);
    state.clearWorker(1);
    expect(state.statistics().length).toBe(1);
  });
});
