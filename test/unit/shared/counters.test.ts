import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { CounterTables, createCounterBuffer, type CounterDimensions } from '../../../src/shared/counters.ts';
import type { ReserveRaceData, ReserveRaceResult } from '../../fixtures/reserve-race-worker.ts';

const dims: CounterDimensions = { workers: 4, backendSlots: 8, listenerSlots: 2 };

function tables(): CounterTables {
  return new CounterTables(createCounterBuffer(dims), dims);
}

const started: Worker[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map(async (w) => w.terminate()));
});

describe('global connection counts', () => {
  it('counts a reservation in the global row and in the reserving worker row', () => {
    const t = tables();
    const w0 = t.forWorker(0);
    const w2 = t.forWorker(2);
    expect(w0.reserve(3, 0)).toBe(true);
    expect(w2.reserve(3, 0)).toBe(true);
    expect(w2.reserve(3, 0)).toBe(true);
    expect(t.activeConnections(3)).toBe(3);
    expect(t.active[0 * dims.backendSlots + 3]).toBe(1);
    expect(t.active[2 * dims.backendSlots + 3]).toBe(2);
    w2.release(3);
    expect(t.activeConnections(3)).toBe(2);
  });

  it('refuses a reservation that would pass the limit, whichever worker holds the others', () => {
    const t = tables();
    expect(t.forWorker(0).reserve(1, 2)).toBe(true);
    expect(t.forWorker(1).reserve(1, 2)).toBe(true);
    expect(t.forWorker(3).reserve(1, 2)).toBe(false);
    t.forWorker(0).release(1);
    expect(t.forWorker(3).reserve(1, 2)).toBe(true);
    expect(t.activeConnections(1)).toBe(2);
  });

  it('takes a dead worker’s share out of the global row and leaves the others’', () => {
    const t = tables();
    for (let i = 0; i < 5; i++) t.forWorker(1).reserve(0, 0);
    for (let i = 0; i < 2; i++) t.forWorker(3).reserve(0, 0);
    t.forWorker(1).reserve(4, 0);
    t.clearWorkerActive(1);
    expect(t.activeConnections(0)).toBe(2);
    expect(t.activeConnections(4)).toBe(0);
    expect(t.active[1 * dims.backendSlots + 0]).toBe(0);
    // The restarted worker starts from an empty row; the survivors' releases still balance.
    t.forWorker(3).release(0);
    t.forWorker(3).release(0);
    expect(t.activeConnections(0)).toBe(0);
  });

  it('never lets the global count pass the limit while four threads reserve and release at once', async () => {
    const counterBuffer = createCounterBuffer(dims);
    const startBuffer = new SharedArrayBuffer(4);
    const limit = 5;
    const runs = [0, 1, 2, 3].map(
      (worker) =>
        new Promise<ReserveRaceResult>((resolve, reject) => {
          const data: ReserveRaceData = { counterBuffer, dims, worker, slot: 6, limit, iterations: 200_000, startBuffer, threads: 4 };
          const thread = new Worker(new URL('../../fixtures/reserve-race-worker.ts', import.meta.url), { workerData: data });
          started.push(thread);
          thread.once('message', resolve);
          thread.once('error', reject);
        }),
    );
    const results = await Promise.all(runs);
    const t = new CounterTables(counterBuffer, dims);
    expect(results.map((r) => r.overLimit)).toEqual([0, 0, 0, 0]);
    expect(Math.max(...results.map((r) => r.maxSeen))).toBe(limit);
    // The race was real: threads were refused because the others held the slots.
    expect(results.reduce((sum, r) => sum + r.refused, 0)).toBeGreaterThan(0);
    expect(t.activeConnections(6)).toBe(0);
  }, 30_000);
});
