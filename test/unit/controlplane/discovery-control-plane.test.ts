/**
 * Discovery through the control plane, driven by hand: a fake source whose reports the test
 * sends, a fake clock and probe, a real snapshot buffer and counters. What is asserted is
 * what the data plane would see: the published snapshot.
 */
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { ControlPlane } from '../../../src/controlplane/control-plane.ts';
import type { DiscoveryStatus } from '../../../src/controlplane/discovery/discovery-manager.ts';
import type { DiscoveredEndpoint, DiscoveryResult } from '../../../src/controlplane/discovery/types.ts';
import type { ProbeResult } from '../../../src/controlplane/health/checkers.ts';
import { SlotAllocator } from '../../../src/controlplane/slot-allocator.ts';
import { SnapshotWriter } from '../../../src/controlplane/snapshot-writer.ts';
import { parseConfig } from '../../../src/shared/config/load.ts';
import { CounterTables, createCounterBuffer } from '../../../src/shared/counters.ts';
import { mergeDiscoveryStatus } from '../../../src/shared/discovery-status.ts';
import { createSnapshotBuffer } from '../../../src/shared/snapshot/layout.ts';
import { SnapshotReader } from '../../../src/shared/snapshot/reader.ts';

const started: ControlPlane[] = [];
afterEach(() => {
  for (const cp of started.splice(0)) cp.stop();
});

const HOLD_MS = 30_000;

function endpoint(port: number, tier = 0, weight = 1, condition: DiscoveredEndpoint['condition'] = 'ready'): DiscoveredEndpoint {
  return { address: `127.0.0.1:${port}`, weight, tier, condition };
}

async function harness(options: { healthCheck?: string; backendSlots?: number } = {}) {
  const config = parseConfig(
    [
      'listeners: [{name: api, listen: "127.0.0.1:1", cluster: api}]',
      'clusters:',
      '  - name: api',
      `    health_check: ${options.healthCheck ?? '{type: none}'}`,
      '    drain_timeout: 1s',
      '    discovery: {type: dns, name: _api._tcp.example, record: srv, hold_obsolete: 30s}',
      '',
    ].join('\n'),
    'test.yaml',
  );
  const dims = { workers: 1, backendSlots: options.backendSlots ?? 64, listenerSlots: 4 };
  const counters = new CounterTables(createCounterBuffer(dims), dims);
  const sab = createSnapshotBuffer(64 * 1024);
  const clock = { now: 1_000_000 };
  const down = new Set<number>();
  let report: (result: DiscoveryResult) => void = () => undefined;
  let stopped = 0;
  const statuses: DiscoveryStatus[] = [];
  let queue: Promise<unknown> = Promise.resolve();
  const cp = new ControlPlane({
    config,
    counters,
    writer: new SnapshotWriter(sab),
    slots: new SlotAllocator(dims.backendSlots),
    log: pino({ level: 'silent' }),
    now: () => clock.now,
    probe: (target): Promise<ProbeResult> => Promise.resolve(down.has(target.port) ? { ok: false, detail: 'connection refused (ECONNREFUSED)' } : { ok: true, detail: 'connected' }),
    tickMs: 3_600_000,
    createSource: () => ({
      start: (r) => {
        report = r;
      },
      stop: () => {
        stopped++;
        return Promise.resolve();
      },
    }),
    onDiscoveryStatus: (s) => statuses.push(mergeDiscoveryStatus(statuses.at(-1), s)),
    serially: (step) => {
      queue = queue.then(step);
    },
  });
  started.push(cp);
  const reader = new SnapshotReader(sab);
  await cp.start();
  const backends = () => reader.current().clusters.find((c) => c.name === 'api')?.backends ?? [];
  return {
    cp,
    clock,
    down,
    statuses,
    stopped: () => stopped,
    /** Sends a report and waits until the control plane has applied it. */
    send: async (result: DiscoveryResult) => {
      report(result);
      await queue;
    },
    /** Lets the clock pass and runs what a tick and a wake-up would. */
    advance: async (ms: number) => {
      clock.now += ms;
      cp.tick();
      await queue;
    },
    settled: async () => queue,
    states: () => Object.fromEntries(backends().map((b) => [b.port, b.state])),
    weights: () => Object.fromEntries(backends().map((b) => [b.port, b.weight])),
    version: () => reader.current().version,
  };
}

describe('discovery through the control plane', () => {
  it('a cluster fed by discovery starts empty and takes the answer as backends, with stable ids', async () => {
    const h = await harness();
    expect(h.states()).toEqual({});
    await h.send({ kind: 'answer', endpoints: [endpoint(9001), endpoint(9002, 0, 3)] });
    expect(h.states()).toEqual({ 9001: 'healthy', 9002: 'healthy' });
    expect(h.weights()).toEqual({ 9001: 1, 9002: 3 });
    expect(h.statuses.at(-1)).toMatchObject({ cluster: 'api', synced: true, up: true, source: 'dns srv _api._tcp.example' });
  });

  it('a refresh that changes nothing publishes nothing', async () => {
    const h = await harness();
    const answer: DiscoveryResult = { kind: 'answer', endpoints: [endpoint(9001), endpoint(9002)] };
    await h.send(answer);
    const version = h.version();
    await h.send(answer);
    await h.send({ kind: 'answer', endpoints: [endpoint(9002), endpoint(9001)] });
    expect(h.version()).toBe(version);
  });

  it('an address gone from an answer drains at once, comes back as it was within hold_obsolete, and is removed after it', async () => {
    const h = await harness();
    await h.send({ kind: 'answer', endpoints: [endpoint(9001), endpoint(9002)] });
    await h.send({ kind: 'answer', endpoints: [endpoint(9001)] });
    expect(h.states()).toEqual({ 9001: 'healthy', 9002: 'draining' });
    await h.send({ kind: 'answer', endpoints: [endpoint(9001), endpoint(9002)] });
    expect(h.states()).toEqual({ 9001: 'healthy', 9002: 'healthy' });
    await h.send({ kind: 'answer', endpoints: [endpoint(9001)] });
    await h.advance(HOLD_MS);
    await h.settled();
    expect(h.states()).toEqual({ 9001: 'healthy' });
  });

  it('lookup errors keep the last known set; an empty answer drains only after hold_obsolete', async () => {
    const h = await harness();
    await h.send({ kind: 'answer', endpoints: [endpoint(9001)] });
    for (let i = 0; i < 5; i++) await h.send({ kind: 'error', message: 'SERVFAIL' });
    expect(h.states()).toEqual({ 9001: 'healthy' });
    expect(h.statuses.at(-1)).toMatchObject({ up: false, lastError: 'SERVFAIL', refreshes: { answer: 1, error: 5 } });
    await h.send({ kind: 'answer', endpoints: [] });
    expect(h.states()).toEqual({ 9001: 'healthy' });
    await h.advance(HOLD_MS);
    expect(h.states()).toEqual({ 9001: 'draining' });
  });

  it('SRV tiers: the backup tier serves only while every backend of the active tier is out', async () => {
    const h = await harness({ healthCheck: '{type: tcp, interval: 1h, timeout: 1s, rise: 1, fall: 1}' });
    await h.send({ kind: 'answer', endpoints: [endpoint(9001, 0), endpoint(9002, 0), endpoint(9003, 1)] });
    expect(h.states()).toMatchObject({ 9001: 'healthy', 9002: 'healthy', 9003: 'draining' });
    await h.advance(1);
    expect(h.states()).toMatchObject({ 9003: 'unhealthy' });
    // An operator drains both primaries: the backup takes over on the next tick.
    for (const port of [9001, 9002]) await h.cp.command({ op: 'drain', id: `api:127.0.0.1:${port}` });
    await h.advance(1);
    expect(h.states()).toMatchObject({ 9001: 'draining', 9002: 'draining', 9003: 'healthy' });
    await h.cp.command({ op: 'undrain', id: 'api:127.0.0.1:9001' });
    await h.advance(1);
    expect(h.states()).toMatchObject({ 9001: 'healthy', 9003: 'draining' });
  });

  it('an operator drain and weight on a discovered backend survive refreshes; add and remove answer 409', async () => {
    const h = await harness();
    await h.send({ kind: 'answer', endpoints: [endpoint(9001, 0, 5)] });
    const id = 'api:127.0.0.1:9001';
    expect(await h.cp.command({ op: 'weight', id, weight: 7 })).toMatchObject({ ok: true });
    expect(await h.cp.command({ op: 'drain', id })).toMatchObject({ ok: true });
    await h.send({ kind: 'answer', endpoints: [endpoint(9001, 0, 9)] });
    expect(h.weights()).toEqual({ 9001: 7 });
    expect(h.states()).toEqual({ 9001: 'draining' });
    const add = await h.cp.command({ op: 'add', cluster: 'api', address: '127.0.0.1:9009', weight: 1 });
    expect(add).toMatchObject({ ok: false, error: 'CONFLICT' });
    expect(add.ok ? '' : add.message).toMatch(/cluster api takes its backends from discovery \(dns srv _api\._tcp\.example\)/);
    expect(await h.cp.command({ op: 'remove', id, force: false })).toMatchObject({ ok: false, error: 'CONFLICT' });
  });

  it('with an active check, a new address is probed before it takes traffic', async () => {
    const h = await harness({ healthCheck: '{type: tcp, interval: 1h, timeout: 1s, rise: 1, fall: 1}' });
    h.down.add(9002);
    await h.send({ kind: 'answer', endpoints: [endpoint(9001), endpoint(9002)] });
    expect(h.states()).toEqual({ 9001: 'healthy', 9002: 'unhealthy' });
  });

  it('an address that finds no counter slot is left out; the rest of the answer is served', async () => {
    const h = await harness({ backendSlots: 1 });
    await h.send({ kind: 'answer', endpoints: [endpoint(9001), endpoint(9002)] });
    expect(Object.values(h.states())).toEqual(['healthy']);
  });

  it('stopping the control plane stops its sources', async () => {
    const h = await harness();
    h.cp.stop();
    await h.settled();
    expect(h.stopped()).toBe(1);
  });
});
