/**
 * The reload plan: a pure table (planReload), then sequences of reloads and operators'
 * changes through a real control plane (fake probe and clock, real buffers), checking that
 * the running set ends equal to what the file plus the recorded operator changes say, and
 * that a change over a capacity limit is refused whole.
 */
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { ControlPlane } from '../../../src/controlplane/control-plane.ts';
import { planReload, type RunningBackend } from '../../../src/controlplane/reload-plan.ts';
import { EMPTY_RUNTIME_STATE, desiredBackends, type RuntimeState } from '../../../src/controlplane/runtime-state.ts';
import { SlotAllocator } from '../../../src/controlplane/slot-allocator.ts';
import { SnapshotWriter } from '../../../src/controlplane/snapshot-writer.ts';
import { parseConfig } from '../../../src/shared/config/load.ts';
import type { Config } from '../../../src/shared/config/schema.ts';
import { CounterTables, createCounterBuffer } from '../../../src/shared/counters.ts';
import type { BackendCommand } from '../../../src/shared/messages.ts';
import { encodeSnapshot } from '../../../src/shared/snapshot/codec.ts';
import { createSnapshotBuffer } from '../../../src/shared/snapshot/layout.ts';
import { SnapshotReader } from '../../../src/shared/snapshot/reader.ts';

/** A config whose cluster `web` has these backends (`9001` or `9001*3` for weight 3). */
function config(backends: readonly string[], extra: readonly string[] = []): Config {
  const entries = backends.map((b) => {
    const [port, weight] = b.split('*');
    return `{address: "127.0.0.1:${port}"${weight === undefined ? '' : `, weight: ${weight}`}}`;
  });
  return parseConfig(
    ['listeners: [{name: web, listen: "127.0.0.1:1", cluster: web}]', 'clusters:', '  - name: web', `    backends: [${entries.join(', ')}]`, ...extra, ''].join('\n'),
    'test.yaml',
  );
}

const id = (port: number): string => `web:127.0.0.1:${port}`;

function running(port: number, options: Partial<RunningBackend> = {}): RunningBackend {
  return { id: id(port), cluster: 'web', weight: 1, admin: 'none', activeConnections: 0, ...options };
}

describe('planReload', () => {
  const ports = (list: readonly { address: string }[]): number[] => list.map((b) => Number(b.address.split(':')[1]));
  const cases: {
    name: string;
    previous: string[];
    next: string[];
    runtime?: RuntimeState;
    running: RunningBackend[];
    expect: { add?: number[]; restore?: number[]; remove?: number[]; drain?: number[]; reweight?: [number, number, number][]; keep?: number[] };
  }[] = [
    { name: 'nothing changed: every backend kept', previous: ['9001', '9002'], next: ['9001', '9002'], running: [running(9001), running(9002)], expect: { keep: [9001, 9002] } },
    { name: 'a new backend is added', previous: ['9001'], next: ['9001', '9002'], running: [running(9001)], expect: { add: [9002], keep: [9001] } },
    { name: 'a dropped backend without connections is removed', previous: ['9001', '9002'], next: ['9001'], running: [running(9001), running(9002)], expect: { remove: [9002], keep: [9001] } },
    {
      name: 'a dropped backend holding connections drains',
      previous: ['9001', '9002'],
      next: ['9001'],
      running: [running(9001), running(9002, { activeConnections: 3 })],
      expect: { drain: [9002], keep: [9001] },
    },
    {
      name: 'defect 2: listed again while it drains out: its removal is cancelled',
      previous: ['9001'],
      next: ['9001', '9002'],
      running: [running(9001), running(9002, { admin: 'remove', activeConnections: 1 })],
      expect: { restore: [9002], keep: [9001] },
    },
    {
      name: 'removed by an operator and still listed: stays removed',
      previous: ['9001', '9002'],
      next: ['9001', '9002'],
      runtime: { ...EMPTY_RUNTIME_STATE, removed: [id(9002)] },
      running: [running(9001), running(9002, { admin: 'remove', activeConnections: 1 })],
      expect: { keep: [9001] },
    },
    {
      name: 'the file changed a weight: the file wins over the operator',
      previous: ['9001*2'],
      next: ['9001*5'],
      runtime: { ...EMPTY_RUNTIME_STATE, weights: { [id(9001)]: 9 } },
      running: [running(9001, { weight: 9 })],
      expect: { reweight: [[9001, 9, 5]] },
    },
    {
      name: 'the file kept a weight: the operator’s weight stays',
      previous: ['9001*2'],
      next: ['9001*2', '9002'],
      runtime: { ...EMPTY_RUNTIME_STATE, weights: { [id(9001)]: 9 } },
      running: [running(9001, { weight: 9 })],
      expect: { add: [9002], keep: [9001] },
    },
    {
      name: 'a backend an operator added stays across a reload that does not list it',
      previous: ['9001'],
      next: ['9001'],
      runtime: { ...EMPTY_RUNTIME_STATE, added: [{ cluster: 'web', address: '127.0.0.1:9009', weight: 2 }] },
      running: [running(9001), running(9009, { weight: 2 })],
      expect: { keep: [9001, 9009] },
    },
    {
      name: 'a running backend no one desires (lost by an earlier defect) is removed',
      previous: ['9001'],
      next: ['9001'],
      running: [running(9001), running(9003)],
      expect: { remove: [9003], keep: [9001] },
    },
  ];
  it.each(cases)('$name', (c) => {
    const plan = planReload(config(c.previous), config(c.next), c.runtime ?? EMPTY_RUNTIME_STATE, c.running);
    const port = (text: string): number => Number(text.split(':')[2]);
    expect({
      add: ports(plan.backends.add),
      restore: ports(plan.backends.restore),
      remove: plan.backends.remove.map(port),
      drain: plan.backends.drain.map(port),
      reweight: plan.backends.reweight.map((r) => [port(r.id), r.from, r.to]),
      keep: plan.backends.keep.map(port),
    }).toEqual({ add: [], restore: [], remove: [], drain: [], reweight: [], keep: [], ...c.expect });
  });
});

// ── through a real control plane ───────────────────────────────────────────────────────

const started: ControlPlane[] = [];
afterEach(() => {
  for (const cp of started.splice(0)) cp.stop();
});

async function harness(initial: Config, options: { slots?: number; snapshotBytes?: number } = {}) {
  const dims = { workers: 2, backendSlots: options.slots ?? 64, listenerSlots: 4 };
  const counters = new CounterTables(createCounterBuffer(dims), dims);
  const sab = createSnapshotBuffer(options.snapshotBytes ?? 64 * 1024);
  const clock = { now: 1_000_000 };
  const saved: RuntimeState[] = [];
  const cp = new ControlPlane({
    config: { ...initial, state_file: '/nonexistent/state.json' },
    counters,
    writer: new SnapshotWriter(sab),
    slots: new SlotAllocator(dims.backendSlots),
    log: pino({ level: 'silent' }),
    now: () => clock.now,
    probe: () => Promise.resolve({ ok: true, detail: 'connected' }),
    tickMs: 3_600_000,
    writeState: (_file, state) => {
      saved.push(state);
      return Promise.resolve();
    },
  });
  started.push(cp);
  await cp.start();
  const reader = new SnapshotReader(sab);
  const worker = counters.forWorker(0);
  const slotOf = (port: number): number => reader.current().clusters[0]!.backends.find((b) => b.port === port)!.slot;
  return {
    cp,
    reader,
    saved,
    /** Hold one connection to the backend on `port`; returns the release. */
    hold(port: number): () => void {
      const slot = slotOf(port);
      worker.reserve(slot, 0);
      return () => worker.release(slot);
    },
    /** Backends as published: `port state admin`. */
    view: (): string[] => reader.current().clusters.flatMap((c) => c.backends.map((b) => `${b.port} ${b.state} ${b.admin}`)),
    reload: async (next: Config) => cp.applyConfig({ ...next, state_file: '/nonexistent/state.json' }),
    command: async (command: BackendCommand) => cp.command(command),
  };
}

describe('reload sequences', () => {
  it('defect 2: a backend removed by one reload and restored by the next is in service again', async () => {
    const h = await harness(config(['9001', '9002']));
    const release = h.hold(9002);
    await h.reload(config(['9001']));
    expect(h.view()).toEqual(['9001 healthy none', '9002 draining remove']);
    const restored = await h.reload(config(['9001', '9002']));
    expect(h.view()).toEqual(['9001 healthy none', '9002 healthy none']);
    expect(restored.ok && restored.plan.restore.map((b) => b.address)).toEqual(['127.0.0.1:9002']);
    // Its connection closing changes nothing: it is no longer on its way out.
    release();
    h.cp.tick();
    expect(h.view()).toEqual(['9001 healthy none', '9002 healthy none']);
  });

  it('ends with the desired set after reloads and operators’ changes in any order', async () => {
    const h = await harness(config(['9001', '9002', '9003']));
    const releases = [h.hold(9002), h.hold(9003)];
    await h.command({ op: 'drain', id: id(9001) });
    await h.reload(config(['9001']));
    await h.command({ op: 'add', cluster: 'web', address: '127.0.0.1:9009', weight: 2 });
    await h.reload(config(['9001', '9003']));
    await h.command({ op: 'remove', id: id(9001), force: false });
    await h.reload(config(['9001', '9002', '9003*4']));
    for (const release of releases) release();
    h.cp.tick();
    const last = h.saved.at(-1) ?? EMPTY_RUNTIME_STATE;
    const desired = desiredBackends(config(['9001', '9002', '9003*4']), last).map((d) => `${Number(d.address.split(':')[1])} ${d.weight}`);
    const published = h.reader.current().clusters[0]!.backends.map((b) => `${b.port} ${b.configuredWeight}`);
    expect(published.sort()).toEqual(desired.sort());
    expect(published.sort()).toEqual(['9002 1', '9003 4', '9009 2']);
  });
});

describe('capacity limits on a reload', () => {
  it('refuses a swap that needs more slots than there are while the old backends drain: nothing changes', async () => {
    const h = await harness(config(['9001', '9002', '9003']), { slots: 5 });
    const releases = [h.hold(9001), h.hold(9002), h.hold(9003)];
    const before = h.reader.current().version;
    const savedBefore = h.saved.length;
    const result = await h.reload(config(['9101', '9102', '9103']));
    expect(result.ok).toBe(false);
    expect(!result.ok && result.problems.map((p) => [p.limit, p.needed, p.bound])).toEqual([['backend_slots', 6, 5]]);
    expect(!result.ok && result.problems[0]!.message).toContain('needs 6 backend counter slots, the limit is 5');
    expect(h.reader.current().version).toBe(before);
    expect(h.saved.length).toBe(savedBefore);
    expect(h.view()).toEqual(['9001 healthy none', '9002 healthy none', '9003 healthy none']);
    // Operators' writes still work and the next reload that fits applies.
    expect((await h.command({ op: 'weight', id: id(9001), weight: 3 })).ok).toBe(true);
    const fits = await h.reload(config(['9001', '9101']));
    expect(fits.ok).toBe(true);
    for (const release of releases) release();
  });

  it('refuses a reload whose snapshot would not fit its slot, before recording anything', async () => {
    const h = await harness(config(['9001']), { snapshotBytes: 16 * 1024 });
    const before = h.reader.current().version;
    const blocks = Array.from({ length: 1500 }, (_, i) => `"10.${i >> 8}.${i & 255}.0/24"`).join(', ');
    const next = parseConfig(
      ['listeners: [{name: web, listen: "127.0.0.1:1", cluster: web, acl: {deny: [' + blocks + ']}}]', 'clusters: [{name: web, backends: [{address: "127.0.0.1:9001"}]}]', ''].join('\n'),
      'test.yaml',
    );
    const result = await h.reload(next);
    expect(!result.ok && result.problems.map((p) => [p.limit, p.code, p.bound])).toEqual([['snapshot_bytes', 'SLUICE_SNAPSHOT_TOO_LARGE', 16 * 1024]]);
    expect(h.reader.current().version).toBe(before);
    expect(h.reader.current().listeners[0]!.acl).toBeUndefined();
  });

  it('a dry run plans and checks but changes nothing', async () => {
    const h = await harness(config(['9001']));
    const before = h.reader.current().version;
    const dry = await h.cp.applyConfig(config(['9002']), { dryRun: true });
    expect(dry.ok && [dry.dryRun, dry.plan.add.map((b) => b.address), dry.plan.remove]).toEqual([true, ['127.0.0.1:9002'], [id(9001)]]);
    expect(h.reader.current().version).toBe(before);
    expect(h.view()).toEqual(['9001 healthy none']);
  });

  it('refuses an operator’s add at the slot limit with NO_CAPACITY naming the limit', async () => {
    const h = await harness(config(['9001', '9002']), { slots: 2 });
    const result = await h.command({ op: 'add', cluster: 'web', address: '127.0.0.1:9003', weight: 1 });
    expect(result).toEqual({
      ok: false,
      error: 'NO_CAPACITY',
      message: 'cannot add web:127.0.0.1:9003: backend_slots: needs 3 backend counter slots, the limit is 2 (capacity.backends; a removed backend keeps its slot until its connections closed)',
    });
  });
});

describe('a snapshot that outgrows its slot after the checks', () => {
  it('is not published and does not throw: routing stays on the last snapshot until one fits', async () => {
    const probe = await harness(config(['9001', '9002']));
    const size = encodeSnapshot(probe.reader.current()).length;
    // Room for the current snapshot and 3 bytes more: a weight of 10000 adds 8.
    const h = await harness(config(['9001', '9002']), { snapshotBytes: Math.ceil((size + 1) / 4) * 4 });
    const before = h.reader.current().version;
    const grown = await h.command({ op: 'weight', id: id(9001), weight: 10_000 });
    expect(grown.ok && grown.version).toBe(before);
    h.cp.tick();
    expect(h.reader.current().version).toBe(before);
    expect((await h.command({ op: 'weight', id: id(9001), weight: 2 })).ok).toBe(true);
    expect(h.reader.current().version).toBe(before + 1);
    expect(h.reader.current().clusters[0]!.backends[0]!.configuredWeight).toBe(2);
  });
});
