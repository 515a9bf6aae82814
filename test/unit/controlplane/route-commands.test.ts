/**
 * Operators' listener routes in the control plane: checked, recorded, published, kept across
 * a reload that leaves the file's routes alone and a restart of the control plane, replaced
 * when the file changes them.
 */
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { ControlPlane } from '../../../src/controlplane/control-plane.ts';
import type { RuntimeState } from '../../../src/controlplane/runtime-state.ts';
import { SlotAllocator } from '../../../src/controlplane/slot-allocator.ts';
import { SnapshotWriter } from '../../../src/controlplane/snapshot-writer.ts';
import { parseConfig } from '../../../src/shared/config/load.ts';
import type { Config } from '../../../src/shared/config/schema.ts';
import { CounterTables, createCounterBuffer } from '../../../src/shared/counters.ts';
import { createSnapshotBuffer } from '../../../src/shared/snapshot/layout.ts';
import { SnapshotReader } from '../../../src/shared/snapshot/reader.ts';
import type { Snapshot } from '../../../src/shared/snapshot/types.ts';

const started: ControlPlane[] = [];
afterEach(() => {
  for (const cp of started.splice(0)) cp.stop();
});

function config(routes = '[{cluster: web, weight: 90}, {cluster: canary, weight: 10}]', stateFile = true): Config {
  return parseConfig(
    [
      ...(stateFile ? ['state_file: /state/sluice.json'] : []),
      'listeners:',
      `  - {name: web, listen: "127.0.0.1:1", routes: ${routes}}`,
      '  - {name: api, listen: "127.0.0.1:2", cluster: web}',
      '  - {name: dns, protocol: udp, listen: "127.0.0.1:3", cluster: web}',
      'clusters:',
      '  - {name: web, backends: [{address: "127.0.0.1:9001"}]}',
      '  - {name: canary, backends: [{address: "127.0.0.1:9002"}]}',
      '  - {name: proxied, send_proxy: v2, backends: [{address: "127.0.0.1:9003"}]}',
      '',
    ].join('\n'),
    'test.yaml',
  );
}

interface Harness {
  readonly cp: ControlPlane;
  readonly reader: SnapshotReader;
  readonly saved: RuntimeState[];
  routesOf(listener: string): unknown;
}

async function harness(o: { config?: Config; recovered?: Snapshot; failWrites?: boolean } = {}): Promise<Harness> {
  const dims = { workers: 1, backendSlots: 16, listenerSlots: 4 };
  const sab = createSnapshotBuffer(64 * 1024);
  const saved: RuntimeState[] = [];
  const cp = new ControlPlane({
    config: o.config ?? config(),
    counters: new CounterTables(createCounterBuffer(dims), dims),
    writer: new SnapshotWriter(sab),
    slots: new SlotAllocator(dims.backendSlots),
    log: pino({ level: 'silent' }),
    now: () => 1_000_000,
    tickMs: 3_600_000,
    recovered: o.recovered,
    writeState: (_file, state) => {
      if (o.failWrites === true) return Promise.reject(new Error('EROFS: read-only file system'));
      saved.push(state);
      return Promise.resolve();
    },
  });
  started.push(cp);
  await cp.start();
  const reader = new SnapshotReader(sab);
  return { cp, reader, saved, routesOf: (name) => reader.current().listeners.find((l) => l.name === name)?.routes };
}

const HALF = [
  { cluster: 'web', weight: 50 },
  { cluster: 'canary', weight: 50 },
];

describe('listener routes commands', () => {
  it('publishes the new split, records it, and answers with the version that holds it', async () => {
    const h = await harness();
    const before = h.reader.current().version;
    const result = await h.cp.routesCommand({ listener: 'web', routes: HALF });
    expect(result).toEqual({ ok: true, version: before + 1, listener: 'web', routes: HALF });
    expect(h.routesOf('web')).toEqual(HALF);
    expect(h.routesOf('api')).toEqual([{ cluster: 'web', weight: 1 }]);
    expect(h.saved.at(-1)?.routes).toEqual({ web: HALF });
  });

  it('publishes nothing when the routes are already in force', async () => {
    const h = await harness();
    const version = h.reader.current().version;
    const same = await h.cp.routesCommand({ listener: 'web', routes: [{ cluster: 'web', weight: 90 }, { cluster: 'canary', weight: 10 }] });
    expect(same).toMatchObject({ ok: true, version });
  });

  it.each<[string, { listener: string; routes: { cluster: string; weight: number }[] }, string, RegExp]>([
    ['an unknown listener', { listener: 'nope', routes: HALF }, 'NOT_FOUND', /^no listener "nope"; known: web, api, dns$/],
    ['an unknown cluster', { listener: 'web', routes: [{ cluster: 'blue', weight: 1 }] }, 'NOT_FOUND', /^routes\.0\.cluster: unknown cluster "blue"; known: web, canary, proxied$/],
    ['a cluster twice', { listener: 'web', routes: [{ cluster: 'web', weight: 1 }, { cluster: 'web', weight: 1 }] }, 'BAD_REQUEST', /routed twice/],
    ['only zero weights', { listener: 'web', routes: [{ cluster: 'web', weight: 0 }] }, 'BAD_REQUEST', /at least one route needs a weight above 0/],
    ['no routes', { listener: 'web', routes: [] }, 'BAD_REQUEST', /expected at least one route/],
    ['a fractional weight', { listener: 'web', routes: [{ cluster: 'web', weight: 0.5 }] }, 'BAD_REQUEST', /weight: expected an integer/],
    [
      'a send_proxy cluster for a udp listener',
      { listener: 'dns', routes: [{ cluster: 'web', weight: 1 }, { cluster: 'proxied', weight: 1 }] },
      'BAD_REQUEST',
      /^routes\.1\.cluster: cluster "proxied" has send_proxy, which a udp listener cannot send$/,
    ],
  ])('refuses %s and changes nothing', async (_name, command, error, message) => {
    const h = await harness();
    const version = h.reader.current().version;
    const result = await h.cp.routesCommand(command);
    expect(result).toMatchObject({ ok: false, error });
    expect(result.ok ? '' : result.message).toMatch(message);
    expect(h.reader.current().version).toBe(version);
    expect(h.saved).toEqual([]);
  });

  it('refuses the change when the state file cannot be written', async () => {
    const h = await harness({ failWrites: true });
    const version = h.reader.current().version;
    expect(await h.cp.routesCommand({ listener: 'web', routes: HALF })).toMatchObject({ ok: false, error: 'UNAVAILABLE' });
    expect(h.reader.current().version).toBe(version);
  });

  it('forgets the override when the operator sets the file’s routes again', async () => {
    const h = await harness();
    await h.cp.routesCommand({ listener: 'web', routes: HALF });
    await h.cp.routesCommand({ listener: 'web', routes: [{ cluster: 'web', weight: 90 }, { cluster: 'canary', weight: 10 }] });
    expect(h.saved.at(-1)?.routes).toEqual({});
  });

  it('keeps the operator’s routes across a reload that leaves the file’s routes alone, and takes the file’s when it changes them', async () => {
    const h = await harness();
    await h.cp.routesCommand({ listener: 'web', routes: HALF });
    await h.cp.applyConfig(config());
    expect(h.routesOf('web')).toEqual(HALF);
    await h.cp.applyConfig(config('[{cluster: web, weight: 70}, {cluster: canary, weight: 30}]'));
    expect(h.routesOf('web')).toEqual([
      { cluster: 'web', weight: 70 },
      { cluster: 'canary', weight: 30 },
    ]);
  });

  it('keeps the operator’s routes when a restarted control plane recovers from the last snapshot (no state file)', async () => {
    const first = await harness({ config: config(undefined, false) });
    await first.cp.routesCommand({ listener: 'web', routes: HALF });
    const last = first.reader.current();
    const restarted = await harness({ config: config(undefined, false), recovered: last });
    expect(restarted.routesOf('web')).toEqual(HALF);
  });
});
