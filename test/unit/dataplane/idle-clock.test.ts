/**
 * The data plane's timing on a monotonic clock, as tables on a fake clock (no sleeps): when
 * the idle sweep closes a session, how often it sweeps, when a queued connection's wait ends,
 * and which waiters the queue times out at a given time.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ConnectionQueue, waitDeadline, type QueuedConnection } from '../../../src/dataplane/connection-queue.ts';
import { sweepIntervalFor, sweepVerdict, type SweepVerdict } from '../../../src/dataplane/idle-sweep.ts';
import { ClusterState, createClusterStateBuffer } from '../../../src/shared/cluster-state.ts';

describe('idle sweep verdict', () => {
  const IDLE = 1000;
  it.each<[string, boolean, number, number, SweepVerdict]>([
    ['bytes moved: active as of now, however long ago it was last active', true, 0, 50_000, 'active'],
    ['no bytes, within the timeout', false, 10_000, 10_999, 'open'],
    ['no bytes, exactly the timeout', false, 10_000, 11_000, 'idle'],
    ['no bytes, past the timeout', false, 10_000, 12_500, 'idle'],
    ['no bytes, the clock has not moved', false, 10_000, 10_000, 'open'],
  ])('%s', (_case, moved, activeAt, now, verdict) => {
    expect(sweepVerdict(moved, activeAt, now, IDLE)).toBe(verdict);
  });

  it('is a function of the monotonic readings only: a wall-clock step changes nothing', () => {
    const wallClock = vi.spyOn(Date, 'now').mockReturnValue(Date.now() + 3_600_000);
    expect(sweepVerdict(false, 10_000, 10_500, IDLE)).toBe('open');
    wallClock.mockRestore();
  });
});

describe('sweep interval', () => {
  it.each([
    // A quarter of the idle timeout, between 25 ms and 1 s.
    [60_000, 1000],
    [4000, 1000],
    [2000, 500],
    [400, 100],
    [100, 25],
    [10, 25],
  ])('idle_timeout %d ms → a sweep every %d ms', (idleTimeoutMs, interval) => {
    expect(sweepIntervalFor(idleTimeoutMs)).toBe(interval);
  });
});

describe('queue wait deadline', () => {
  it.each([
    ['the first wait starts the timeout now', -1, 5000, 1000, 6000],
    ['a wait again after a failed attempt keeps the first deadline', 6000, 5900, 1000, 6000],
    ['... even when the timeout would end later from now', 6000, 5999, 60_000, 6000],
    ['the clock may start at zero (a fresh thread)', -1, 0, 1000, 1000],
  ])('%s', (_case, first, now, timeoutMs, deadline) => {
    expect(waitDeadline(first, now, timeoutMs)).toBe(deadline);
  });
});

/** A waiter that never finds room; it logs when its wait ends. */
class Waiter implements QueuedConnection {
  readonly name: string;
  private readonly log: string[];
  constructor(name: string, log: string[]) {
    this.name = name;
    this.log = log;
  }
  retry(): boolean {
    return false;
  }
  timedOut(): void {
    this.log.push(this.name);
  }
}

const queues: ConnectionQueue[] = [];
afterEach(() => {
  for (const queue of queues.splice(0)) queue.clear();
  vi.restoreAllMocks();
});

/** A queue on a clock the test sets; `at(t)` moves the clock and judges the deadlines. */
function fakeClockQueue(): { queue: ConnectionQueue; state: ClusterState; log: string[]; clock: { now: number }; at: (t: number) => string[] } {
  const clock = { now: 0 };
  const state = new ClusterState(createClusterStateBuffer(0));
  const queue = new ConnectionQueue(state, 0, () => clock.now);
  queues.push(queue);
  const log: string[] = [];
  return {
    queue,
    state,
    log,
    clock,
    at: (t) => {
      clock.now = t;
      const before = log.length;
      queue.expire();
      return log.slice(before);
    },
  };
}

describe('connection queue deadlines on a fake clock', () => {
  // [name, enqueued at (ms), timeout (ms)]; then [time, who times out then].
  const WAITERS: [string, number, number][] = [
    ['a', 0, 100],
    ['b', 50, 30],
    ['c', 60, 200],
    ['d', 60, 39],
  ];
  const STEPS: [number, string[]][] = [
    [79, []],
    [80, ['b']],
    [99, ['d']],
    [100, ['a']],
    [259, []],
    [260, ['c']],
  ];

  it('times each waiter out when the clock reaches its own deadline, and no sooner', () => {
    const { queue, state, log, at } = fakeClockQueue();
    for (const [name, enqueuedAt, timeoutMs] of WAITERS) {
      at(enqueuedAt);
      expect(queue.enqueue(new Waiter(name, log), 10, timeoutMs)).toBe(true);
    }
    expect(STEPS.map(([t]) => [t, at(t)])).toEqual(STEPS);
    expect(queue.length).toBe(0);
    expect(state.statistics().length).toBe(0);
  });

  it('times out, in arrival order, every waiter a late check finds past its deadline', () => {
    const { queue, log, at } = fakeClockQueue();
    for (const [name, enqueuedAt, timeoutMs] of WAITERS) {
      at(enqueuedAt);
      queue.enqueue(new Waiter(name, log), 10, timeoutMs);
    }
    expect(at(1000)).toEqual(['a', 'b', 'c', 'd']);
  });

  it('ignores the wall clock: a step of an hour times no waiter out', () => {
    const { queue, log, at } = fakeClockQueue();
    queue.enqueue(new Waiter('a', log), 10, 1000);
    vi.spyOn(Date, 'now').mockReturnValue(Date.now() + 3_600_000);
    expect(at(999)).toEqual([]);
    expect(at(1000)).toEqual(['a']);
  });

  it('does not time out a waiter that left', () => {
    const { queue, log, at } = fakeClockQueue();
    const a = new Waiter('a', log);
    queue.enqueue(a, 10, 100);
    queue.enqueue(new Waiter('b', log), 10, 200);
    expect(queue.remove(a)).toBe(true);
    expect(at(150)).toEqual([]);
    expect(at(200)).toEqual(['b']);
  });
});
