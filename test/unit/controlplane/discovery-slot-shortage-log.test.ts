/**
 * A discovered cluster that finds no counter slots retries its adds at every refresh; the
 * error must be said once per shortage, not once per address per refresh (at 1,000 records
 * refreshed every second that was 1,000 error lines a second per cluster, measured by
 * bench/discovery-load.ts).
 */
import { pino } from 'pino';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { DiscoveryManager, type DiscoveryCore } from '../../../src/controlplane/discovery/discovery-manager.ts';
import type { DiscoveryResult } from '../../../src/controlplane/discovery/types.ts';
import type { HealthRecord } from '../../../src/controlplane/health/state-machine.ts';
import { parseConfig } from '../../../src/shared/config/load.ts';

const CONFIG = parseConfig(
  [
    'listeners: [{name: api, listen: "127.0.0.1:1", cluster: api}]',
    'clusters:',
    '  - name: api',
    '    health_check: {type: none}',
    '    discovery: {type: dns, name: _api._tcp.example, record: srv}',
    '',
  ].join('\n'),
  'test.yaml',
);

const answer = (ports: readonly number[]): DiscoveryResult => ({
  kind: 'answer',
  endpoints: ports.map((port) => ({ address: `127.0.0.1:${port}`, weight: 1, tier: 0, condition: 'ready' })),
});

function harness(slots: number) {
  const lines: { level: number; msg: string; refused?: number }[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()) as (typeof lines)[number]);
      done();
    },
  });
  const held = new Map<string, HealthRecord>();
  const healthy = { state: 'healthy', admin: 'none', up: true } as unknown as HealthRecord;
  const core: DiscoveryCore = {
    now: () => 0,
    addresses: () => [],
    health: (_cluster, address) => held.get(address),
    add: (_cluster, address) => {
      if (held.size >= slots) return Promise.resolve(false);
      held.set(address, healthy);
      return Promise.resolve(true);
    },
    setWeight: () => undefined,
    setListed: () => undefined,
    remove: (_cluster, address) => void held.delete(address),
    publish: () => undefined,
    persistAnswers: () => Promise.resolve(),
  };
  let report: (result: DiscoveryResult) => void = () => undefined;
  let queue: Promise<unknown> = Promise.resolve();
  const manager = new DiscoveryManager({
    core,
    createSource: () => ({ start: (r) => void (report = r), stop: () => Promise.resolve() }),
    serially: (step) => void (queue = queue.then(step)),
    onStatus: () => undefined,
    log: pino({ level: 'info' }, sink),
  });
  manager.configure(CONFIG.clusters);
  return {
    held,
    send: async (result: DiscoveryResult) => {
      report(result);
      await queue;
    },
    errors: () => lines.filter((l) => l.level >= 50),
    infos: () => lines.filter((l) => l.level === 30 && l.msg.includes('slot')),
  };
}

describe('discovery: no counter slot left', () => {
  it('is logged once for a shortage that lasts over several refreshes, with the count refused', async () => {
    const h = harness(1);
    for (let i = 0; i < 3; i++) await h.send(answer([9001, 9002, 9003]));
    expect(h.held.size).toBe(1);
    expect(h.errors()).toHaveLength(1);
    expect(h.errors()[0]).toMatchObject({ refused: 2 });
  });

  it('says so when every address has a slot again, and logs a new shortage again', async () => {
    const h = harness(1);
    await h.send(answer([9001, 9002]));
    await h.send(answer([9001]));
    expect(h.infos()).toHaveLength(1);
    await h.send(answer([9001, 9003]));
    expect(h.errors()).toHaveLength(2);
  });
});
