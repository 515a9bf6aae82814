/**
 * What discovery costs the control plane between and during refreshes (issue #16), driven by
 * hand: a fake core that counts what it is asked, fake sources whose reports the test sends.
 * A tick with nothing due must ask the core nothing; an unchanged refresh must send no answer
 * to the main thread and write nothing; the state file's copy serves only after a first error.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { DiscoveryManager, type DiscoveryCore, type DiscoveryStatusUpdate } from '../../../src/controlplane/discovery/discovery-manager.ts';
import { queryKey } from '../../../src/controlplane/discovery/query-key.ts';
import type { DiscoveryResult } from '../../../src/controlplane/discovery/types.ts';
import type { HealthRecord } from '../../../src/controlplane/health/state-machine.ts';
import type { StoredAnswer } from '../../../src/controlplane/state-file.ts';
import { parseConfig } from '../../../src/shared/config/load.ts';

const HOLD_MS = 30_000;

function clustersConfig(count: number) {
  const lines = ['listeners: [{name: l, listen: "127.0.0.1:1", cluster: c0}]', 'clusters:'];
  for (let c = 0; c < count; c++) {
    lines.push(`  - name: c${c}`, '    health_check: {type: none}', `    discovery: {type: dns, name: _api._tcp.c${c}.example, record: srv, hold_obsolete: 30s}`);
  }
  return parseConfig(`${lines.join('\n')}\n`, 'test.yaml');
}

const answer = (ports: readonly number[]): DiscoveryResult => ({
  kind: 'answer',
  endpoints: ports.map((port) => ({ address: `127.0.0.1:${port}`, weight: 1, tier: 0, condition: 'ready' })),
});
const range = (from: number, count: number): number[] => Array.from({ length: count }, (_, i) => from + i);

function harness(options: { clusters?: number; stored?: Record<string, StoredAnswer> } = {}) {
  const config = clustersConfig(options.clusters ?? 1);
  const clock = { now: 1_000_000 };
  const healthy = { state: 'healthy', admin: 'none', up: true, listed: true } as unknown as HealthRecord;
  const held = new Map<string, HealthRecord>();
  const asked = { health: 0, add: 0, remove: 0, persist: 0 };
  const key = (cluster: string, address: string): string => `${cluster}:${address}`;
  const core: DiscoveryCore = {
    now: () => clock.now,
    addresses: () => [],
    health: (cluster, address) => {
      asked.health++;
      return held.get(key(cluster, address));
    },
    add: (cluster, address) => {
      asked.add++;
      held.set(key(cluster, address), healthy);
      return Promise.resolve(true);
    },
    setWeight: () => undefined,
    setListed: () => undefined,
    remove: (cluster, address) => {
      asked.remove++;
      held.delete(key(cluster, address));
    },
    publish: () => undefined,
    persistAnswers: () => {
      asked.persist++;
      return Promise.resolve();
    },
  };
  const reports = new Map<string, (result: DiscoveryResult) => void>();
  const statuses: DiscoveryStatusUpdate[] = [];
  let steps = 0;
  let queue: Promise<unknown> = Promise.resolve();
  const serially = (step: () => Promise<void>): void => {
    steps++;
    queue = queue.then(step);
  };
  const manager = new DiscoveryManager({
    core,
    createSource: (cluster) => ({ start: (r) => void reports.set(cluster, r), stop: () => Promise.resolve() }),
    serially,
    onStatus: (s) => statuses.push(s),
    log: pino({ level: 'silent' }),
    wallClock: () => clock.now,
  });
  // Steps queue further steps (one report per step, then the state file write): wait for all.
  const drained = async (): Promise<void> => {
    for (let seen: Promise<unknown> | undefined; seen !== queue; ) {
      seen = queue;
      await queue;
    }
  };
  if (options.stored !== undefined) manager.useStoredAnswers(options.stored);
  manager.configure(config.clusters);
  return {
    manager,
    config,
    clock,
    held,
    asked,
    statuses,
    steps: () => steps,
    send: async (cluster: string, result: DiscoveryResult) => {
      reports.get(cluster)?.(result);
      await drained();
    },
    settle: drained,
    /** Queues a step as an operator's command would be queued. */
    serially,
  };
}

describe('discovery cost: ticks', () => {
  it('a tick with nothing due asks the core nothing, however many clusters and records', async () => {
    const h = harness({ clusters: 3 });
    for (const c of ['c0', 'c1', 'c2']) await h.send(c, answer(range(9000, 50)));
    h.asked.health = 0;
    for (let i = 0; i < 100; i++) h.manager.tick((h.clock.now += 100));
    expect(h.asked.health).toBe(0);
  });

  it('an unchanged refresh asks the core nothing per backend', async () => {
    const h = harness();
    await h.send('c0', answer(range(9000, 150)));
    h.asked.health = 0;
    h.asked.add = 0;
    await h.send('c0', answer(range(9000, 150).reverse()));
    expect(h.asked).toMatchObject({ health: 0, add: 0 });
  });

  it('a backend whose availability changed relists only its own cluster, once, at the next tick', async () => {
    const h = harness({ clusters: 3 });
    for (const c of ['c0', 'c1', 'c2']) await h.send(c, answer(range(9000, 50)));
    h.asked.health = 0;
    h.manager.availabilityChanged('c1');
    h.manager.availabilityChanged('c1');
    h.manager.tick(h.clock.now);
    expect(h.asked.health).toBe(50);
    h.manager.tick(h.clock.now);
    expect(h.asked.health).toBe(50);
  });

  it('an address gone from the answer is removed at the first tick after hold_obsolete, not before, and no step is queued meanwhile', async () => {
    const h = harness();
    await h.send('c0', answer([9001, 9002]));
    await h.send('c0', answer([9001]));
    const steps = h.steps();
    for (let i = 1; i < HOLD_MS / 1000; i++) h.manager.tick(h.clock.now + i * 1000);
    expect(h.steps()).toBe(steps);
    expect(h.held.has('c0:127.0.0.1:9002')).toBe(true);
    h.manager.tick((h.clock.now += HOLD_MS));
    await h.settle();
    expect(h.asked.remove).toBe(1);
    expect(h.held.has('c0:127.0.0.1:9002')).toBe(false);
  });
});

describe('discovery cost: status to the main thread', () => {
  it('sends the answer with the first report and when it changed; an unchanged refresh sends the sync without it', async () => {
    const h = harness();
    await h.send('c0', answer([9001, 9002]));
    await h.send('c0', answer([9002, 9001]));
    await h.send('c0', answer([9001]));
    await h.send('c0', { kind: 'error', message: 'SERVFAIL' });
    expect(h.statuses.map((s) => s.answer?.map((a) => a.address))).toEqual([['127.0.0.1:9001', '127.0.0.1:9002'], undefined, ['127.0.0.1:9001'], undefined]);
    expect(h.statuses.map((s) => s.refreshes)).toEqual([
      { answer: 1, empty: 0, error: 0 },
      { answer: 2, empty: 0, error: 0 },
      { answer: 3, empty: 0, error: 0 },
      { answer: 3, empty: 0, error: 1 },
    ]);
  });

  it('a hold ending between refreshes sends nothing: the status did not change', async () => {
    const h = harness();
    await h.send('c0', answer([9001, 9002]));
    await h.send('c0', answer([9001]));
    const sent = h.statuses.length;
    h.manager.tick((h.clock.now += HOLD_MS));
    await h.settle();
    expect(h.statuses).toHaveLength(sent);
  });
});

describe('discovery: the state file copy', () => {
  const config = clustersConfig(1);
  const discovery = config.clusters[0]?.discovery;
  if (discovery?.type !== 'dns') throw new Error('test config has no DNS discovery');
  const stored = (query: string): Record<string, StoredAnswer> => ({
    c0: { query, answered_at: '2026-01-01T00:00:00.000Z', answer: [{ address: '127.0.0.1:9005', weight: 1, tier: 0, condition: 'ready' }] },
  });

  it('a first error with a copy for the same question serves the copy and is ready', async () => {
    const h = harness({ stored: stored(queryKey(discovery)) });
    await h.send('c0', { kind: 'error', message: 'timed out' });
    expect([...h.held.keys()]).toEqual(['c0:127.0.0.1:9005']);
    expect(h.statuses.at(-1)).toMatchObject({ ready: true, fromCopy: true, synced: false, up: false, answer: [{ address: '127.0.0.1:9005' }] });
  });

  it('a copy for another question is not served: not ready until the source answers', async () => {
    const h = harness({ stored: stored(queryKey({ ...discovery, name: '_other._tcp.example' })) });
    await h.send('c0', { kind: 'error', message: 'timed out' });
    expect(h.held.size).toBe(0);
    expect(h.statuses.at(-1)).toMatchObject({ ready: false, fromCopy: false });
    await h.send('c0', answer([9001]));
    expect(h.statuses.at(-1)).toMatchObject({ ready: true, synced: true });
  });

  it('a first answer equal to the copy writes nothing; a changed answer is written once for a burst of clusters', async () => {
    const h = harness({ clusters: 3, stored: stored(queryKey(discovery)) });
    await h.send('c0', answer([9005]));
    expect(h.asked.persist).toBe(0);
    expect(h.manager.storedAnswers().c0?.answer).toEqual([{ address: '127.0.0.1:9005', weight: 1, tier: 0, condition: 'ready' }]);
    // Three reports queued before the write runs: one write carries all three.
    h.send('c0', answer([9006])).catch(() => undefined);
    h.send('c1', answer([9007])).catch(() => undefined);
    await h.send('c2', answer([9008]));
    await h.settle();
    expect(h.asked.persist).toBe(1);
    expect(Object.keys(h.manager.storedAnswers()).sort()).toEqual(['c0', 'c1', 'c2']);
  });
});

describe('discovery: reports and operators\' commands', () => {
  it('lets a command queued behind a burst of reports run after the first report, not after all', async () => {
    const h = harness({ clusters: 3 });
    // Three clusters sharing one lookup report together; an operator's command arrives behind them.
    void h.send('c0', answer([9001]));
    void h.send('c1', answer([9002]));
    void h.send('c2', answer([9003]));
    let addsWhenTheCommandRan = -1;
    h.serially(async () => {
      addsWhenTheCommandRan = h.asked.add;
      return Promise.resolve();
    });
    await h.settle();
    expect(addsWhenTheCommandRan).toBe(1);
    expect(h.asked.add).toBe(3);
  });
});
