/**
 * The control plane's publishing rules, driven by hand: a fake probe and clock, real
 * snapshot buffer and counters. Ticks are called directly, so nothing here waits.
 */
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { ControlPlane } from '../../../src/controlplane/control-plane.ts';
import type { ProbeResult } from '../../../src/controlplane/health/checkers.ts';
import { SlotAllocator } from '../../../src/controlplane/slot-allocator.ts';
import { SnapshotWriter } from '../../../src/controlplane/snapshot-writer.ts';
import { parseConfig } from '../../../src/shared/config/load.ts';
import { BackendCounter, CounterTables, createCounterBuffer } from '../../../src/shared/counters.ts';
import { createSnapshotBuffer } from '../../../src/shared/snapshot/layout.ts';
import { SnapshotReader } from '../../../src/shared/snapshot/reader.ts';
import type { RuntimeState } from '../../../src/controlplane/runtime-state.ts';

const HOUR = '1h';
const started: ControlPlane[] = [];
afterEach(() => {
  for (const cp of started.splice(0)) cp.stop();
});

interface Harness {
  readonly cp: ControlPlane;
  readonly reader: SnapshotReader;
  readonly counters: CounterTables;
  readonly clock: { now: number };
  readonly verdicts: Map<string, boolean>;
  state(port: number): string | undefined;
  weight(port: number): number | undefined;
}

interface HarnessOptions {
  readonly failing?: number[];
  readonly stateFile?: string;
  readonly writeState?: (file: string, state: RuntimeState) => Promise<void>;
}

async function harness(cluster: string[], ports: number[], failingOrOptions: number[] | HarnessOptions = []): Promise<Harness> {
  const options: HarnessOptions = Array.isArray(failingOrOptions) ? { failing: failingOrOptions } : failingOrOptions;
  const failing = options.failing ?? [];
  const config = parseConfig(
    [
      ...(options.stateFile === undefined ? [] : [`state_file: ${JSON.stringify(options.stateFile)}`]),
      'listeners: [{name: web, listen: "127.0.0.1:1", cluster: web}]',
      'clusters:',
      '  - name: web',
      ...cluster.map((l) => `    ${l}`),
      `    backends: [${ports.map((p) => `{address: "127.0.0.1:${p}"}`).join(', ')}]`,
      '',
    ].join('\n'),
    'test.yaml',
  );
  const dims = { workers: 2, backendSlots: 64, listenerSlots: 4 };
  const counters = new CounterTables(createCounterBuffer(dims), dims);
  const sab = createSnapshotBuffer(64 * 1024);
  const clock = { now: 1_000_000 };
  const verdicts = new Map<string, boolean>(failing.map((p) => [String(p), false]));
  const probe = (target: { port: number }): Promise<ProbeResult> => {
    const ok = verdicts.get(String(target.port)) ?? true;
    return Promise.resolve({ ok, detail: ok ? 'connected' : 'connection refused (ECONNREFUSED)' });
  };
  const cp = new ControlPlane({
    config,
    counters,
    writer: new SnapshotWriter(sab),
    slots: new SlotAllocator(dims.backendSlots),
    log: pino({ level: 'silent' }),
    now: () => clock.now,
    probe,
    tickMs: 3_600_000,
    ...(options.writeState === undefined ? {} : { writeState: options.writeState }),
  });
  started.push(cp);
  const reader = new SnapshotReader(sab);
  const find = (port: number) => reader.current().clusters[0]?.backends.find((b) => b.port === port);
  await cp.start();
  return { cp, reader, counters, clock, verdicts, state: (p) => find(p)?.state, weight: (p) => find(p)?.weight };
}

describe('control plane publishing', () => {
  it('publishes nothing while nothing changes, whatever the ticks and probe passes', async () => {
    const h = await harness([`health_check: {type: tcp, interval: ${HOUR}, timeout: 1s}`], [9001, 9002]);
    expect(h.reader.current().version).toBe(1);
    for (let i = 0; i < 50; i++) {
      h.clock.now += 100;
      h.cp.tick();
    }
    expect(h.reader.current().version).toBe(1);
    expect(h.cp.stats().snapshotPublishes).toBe(1);
  });

  it('starts a backend that fails its first probe unhealthy, in the first snapshot', async () => {
    const h = await harness([`health_check: {type: tcp, interval: ${HOUR}, timeout: 1s}`], [9001, 9002], [9002]);
    expect(h.reader.current().version).toBe(1);
    expect([h.state(9001), h.state(9002)]).toEqual(['healthy', 'unhealthy']);
    const failed = h.reader.current().clusters[0]!.backends[1]!;
    expect(failed.reason).toBe('first probe failed: connection refused (ECONNREFUSED)');
    expect(failed.drained).toBe(true);
  });

  it('without active checks, starts every backend healthy', async () => {
    const h = await harness([], [9001, 9002], [9001, 9002]);
    expect([h.state(9001), h.state(9002)]).toEqual(['healthy', 'healthy']);
  });

  it('ejects a backend on passive failures read from the shared counters, once per real change', async () => {
    const h = await harness(['passive: {consecutive_failures: 3}', 'outlier: {base_ejection_time: 10s}'], [9001, 9002]);
    const slot = h.reader.current().clusters[0]!.backends[0]!.slot;
    const worker1 = h.counters.forWorker(1);
    worker1.bumpBackend(slot, BackendCounter.connectFailures, 2);
    h.cp.tick();
    expect(h.state(9001)).toBe('healthy');
    worker1.bumpBackend(slot, BackendCounter.connectFailures, 1);
    h.cp.tick();
    // 3 in a row: draining, and in the same tick unhealthy (no connection to wait for).
    expect(h.state(9001)).toBe('unhealthy');
    expect(h.cp.stats().healthTransitions).toBe(2);
    const version = h.reader.current().version;
    h.clock.now += 9_999;
    h.cp.tick();
    expect(h.reader.current().version).toBe(version);
    h.clock.now += 1;
    h.cp.tick();
    expect(h.state(9001)).toBe('healthy');
    expect(h.reader.current().version).toBe(version + 1);
  });

  it('waits for open connections before a health drain ends', async () => {
    const h = await harness(['passive: {consecutive_failures: 1}', 'drain_timeout: 5s'], [9001, 9002]);
    const slot = h.reader.current().clusters[0]!.backends[0]!.slot;
    const w0 = h.counters.forWorker(0);
    w0.reserve(slot, 0);
    w0.connectionOpened(slot);
    w0.bumpBackend(slot, BackendCounter.connectFailures, 1);
    h.cp.tick();
    h.clock.now += 4_000;
    h.cp.tick();
    expect(h.state(9001)).toBe('draining');
    w0.release(slot);
    h.cp.tick();
    expect(h.state(9001)).toBe('unhealthy');
  });

  it('steps a slow-start ramp in at most five publishes over the window, then stops publishing', async () => {
    const h = await harness(['passive: {consecutive_failures: 1}', 'outlier: {base_ejection_time: 1s}', 'slow_start: 10s'], [9001]);
    const slot = h.reader.current().clusters[0]!.backends[0]!.slot;
    h.counters.forWorker(0).bumpBackend(slot, BackendCounter.connectFailures, 1);
    h.cp.tick();
    expect(h.state(9001)).toBe('unhealthy');
    const before = h.cp.stats().snapshotPublishes;
    const weights: number[] = [];
    h.clock.now += 1_000;
    for (let t = 0; t <= 12_000; t += 100) {
      h.cp.tick();
      if (weights.at(-1) !== h.weight(9001)) weights.push(h.weight(9001)!);
      h.clock.now += 100;
    }
    expect(weights).toEqual([0.2, 0.4, 0.6, 0.8, 1]);
    expect(h.cp.stats().snapshotPublishes - before).toBe(5);
  });
});

describe('operator commands', () => {
  const CHECK = `health_check: {type: tcp, interval: ${HOUR}, timeout: 1s}`;

  it('adds a backend, probed first, in a new version, and refuses a duplicate however it is spelt', async () => {
    const h = await harness([CHECK], [9001], [9003]);
    const added = await h.cp.command({ op: 'add', cluster: 'web', address: '[::1]:9002', weight: 3 });
    expect(added).toMatchObject({ ok: true, version: 2, cluster: 'web', backend: { id: 'web:[::1]:9002', state: 'healthy', configuredWeight: 3 } });
    expect(h.reader.current().version).toBe(2);
    const failing = await h.cp.command({ op: 'add', cluster: 'web', address: '127.0.0.1:9003', weight: 1 });
    expect(failing).toMatchObject({ ok: true, version: 3, backend: { state: 'unhealthy', reason: 'first probe failed: connection refused (ECONNREFUSED)' } });
    const duplicate = await h.cp.command({ op: 'add', cluster: 'web', address: '[0:0::1]:9002', weight: 1 });
    expect(duplicate).toEqual({ ok: false, error: 'CONFLICT', message: 'cluster web already has a backend at [0:0::1]:9002 (web:[::1]:9002)' });
    expect(await h.cp.command({ op: 'add', cluster: 'api', address: '127.0.0.1:1', weight: 1 })).toEqual({
      ok: false,
      error: 'NOT_FOUND',
      message: 'unknown cluster "api"; known: web',
    });
    expect(h.reader.current().version).toBe(3);
  });

  it('removes a backend with open connections only after they close, then retires its slot', async () => {
    const h = await harness([], [9001, 9002]);
    const slot = h.reader.current().clusters[0]!.backends[0]!.slot;
    h.counters.forWorker(0).reserve(slot, 0);
    h.counters.forWorker(0).connectionOpened(slot);
    const removing = await h.cp.command({ op: 'remove', id: 'web:127.0.0.1:9001', force: false });
    expect(removing).toMatchObject({ ok: true, version: 2, backend: { state: 'draining', admin: 'remove', drained: false } });
    expect(await h.cp.command({ op: 'drain', id: 'web:127.0.0.1:9001' })).toEqual({ ok: false, error: 'CONFLICT', message: 'backend web:127.0.0.1:9001 is being removed' });
    h.cp.tick();
    expect(h.state(9001)).toBe('draining');
    h.counters.forWorker(0).release(slot);
    h.cp.tick();
    expect(h.state(9001)).toBeUndefined();
    expect(await h.cp.command({ op: 'remove', id: 'web:127.0.0.1:9001', force: false })).toMatchObject({ ok: false, error: 'NOT_FOUND' });
  });

  it('removes a backend without connections at once, and a forced removal at once whatever it holds', async () => {
    const h = await harness([], [9001, 9002]);
    expect(await h.cp.command({ op: 'remove', id: 'web:127.0.0.1:9002', force: false })).toMatchObject({ ok: true, backend: undefined });
    expect(h.state(9002)).toBeUndefined();
    const slot = h.reader.current().clusters[0]!.backends[0]!.slot;
    h.counters.forWorker(1).connectionOpened(slot);
    // Gone from the snapshot in the answered version: data planes close what they still hold.
    expect(await h.cp.command({ op: 'remove', id: 'web:127.0.0.1:9001', force: true })).toMatchObject({ ok: true, version: 3, backend: undefined });
    expect(h.reader.current().clusters[0]!.backends).toEqual([]);
    // Its slot is not handed out while a connection still counts in it.
    expect(await h.cp.command({ op: 'add', cluster: 'web', address: '127.0.0.1:9003', weight: 1 })).toMatchObject({ ok: true });
    expect(h.reader.current().clusters[0]!.backends[0]!.slot).not.toBe(slot);
  });

  it('drains, undrains and reweights, each in its own version', async () => {
    const h = await harness([], [9001]);
    expect(await h.cp.command({ op: 'drain', id: 'web:127.0.0.1:9001' })).toMatchObject({ ok: true, version: 2, backend: { state: 'draining', drained: true } });
    expect(await h.cp.command({ op: 'drain', id: 'web:127.0.0.1:9001' })).toMatchObject({ ok: true, version: 2 });
    expect(await h.cp.command({ op: 'undrain', id: 'web:127.0.0.1:9001' })).toMatchObject({ ok: true, version: 3, backend: { state: 'healthy' } });
    expect(await h.cp.command({ op: 'weight', id: 'web:127.0.0.1:9001', weight: 0 })).toMatchObject({ ok: true, version: 4, backend: { weight: 0, configuredWeight: 0 } });
  });

  it('refuses a change it cannot write to the state file, and changes nothing', async () => {
    const h = await harness([], [9001], {
      stateFile: '/nonexistent/state.json',
      writeState: () => Promise.reject(new Error('EROFS: read-only file system')),
    });
    const result = await h.cp.command({ op: 'add', cluster: 'web', address: '127.0.0.1:9002', weight: 1 });
    expect(result).toEqual({
      ok: false,
      error: 'UNAVAILABLE',
      message: 'the state file cannot be written, so the change was not made: EROFS: read-only file system',
    });
    expect(h.reader.current().version).toBe(1);
    expect(h.state(9002)).toBeUndefined();
    expect(await h.cp.command({ op: 'drain', id: 'web:127.0.0.1:9001' })).toMatchObject({ ok: false, error: 'UNAVAILABLE' });
    expect(h.state(9001)).toBe('healthy');
  });
});

describe('reload after operators’ changes', () => {
  const configWith = (backends: string): ReturnType<typeof parseConfig> =>
    parseConfig(['listeners: [{name: web, listen: "127.0.0.1:1", cluster: web}]', 'clusters:', '  - name: web', `    backends: ${backends}`, ''].join('\n'), 'test.yaml');

  it('keeps an operator’s removal, drain and weight unless the file changed that backend', async () => {
    const h = await harness([], [9001, 9002, 9003]);
    await h.cp.command({ op: 'remove', id: 'web:127.0.0.1:9002', force: false });
    await h.cp.command({ op: 'drain', id: 'web:127.0.0.1:9003' });
    await h.cp.command({ op: 'weight', id: 'web:127.0.0.1:9001', weight: 9 });
    await h.cp.command({ op: 'add', cluster: 'web', address: '127.0.0.1:9009', weight: 2 });
    // The file adds 9004 and changes nothing else.
    await h.cp.applyConfig(
      configWith('[{address: "127.0.0.1:9001"}, {address: "127.0.0.1:9002"}, {address: "127.0.0.1:9003"}, {address: "127.0.0.1:9004"}]'),
    );
    const view = () => h.reader.current().clusters[0]!.backends.map((b) => [b.port, b.configuredWeight, b.admin]);
    expect(view()).toEqual([
      [9001, 9, 'none'],
      [9003, 1, 'drain'],
      [9009, 2, 'none'],
      [9004, 1, 'none'],
    ]);
    // Now the file changes 9001's weight and drops 9003: the file wins for those.
    await h.cp.applyConfig(configWith('[{address: "127.0.0.1:9001", weight: 4}, {address: "127.0.0.1:9002"}, {address: "127.0.0.1:9004"}]'));
    expect(view()).toEqual([
      [9001, 4, 'none'],
      [9009, 2, 'none'],
      [9004, 1, 'none'],
    ]);
  });
});
