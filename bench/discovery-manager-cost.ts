/**
 * What discovery costs the control plane itself, without the network or the machine's other
 * load in the way: a real ControlPlane (real registry, snapshot writer, counters) whose
 * `--clusters` discovered clusters are fed by in-process sources that report `--records`
 * SRV endpoints each. Timed on this thread (CPU time of the thread, not wall clock):
 *
 * - one round of unchanged refreshes (every cluster reports the answer it already has), per
 *   cluster refresh: the "a refresh that changes nothing" cost;
 * - one control-plane tick with nothing due (health none, no connections): the 100 ms cost
 *   that was clusters × records in discovery's relisting;
 * - the bytes sent to the main thread per round (v8.serialize of each status message, as a
 *   MessagePort's structured clone would copy it).
 *
 *   node bench/discovery-manager-cost.ts [--clusters 100] [--records 150] [--rounds 20]
 */
import { serialize } from 'node:v8';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { ControlPlane } from '../src/controlplane/control-plane.ts';
import type { DiscoveryResult } from '../src/controlplane/discovery/types.ts';
import { SlotAllocator } from '../src/controlplane/slot-allocator.ts';
import { SnapshotWriter } from '../src/controlplane/snapshot-writer.ts';
import { parseConfig } from '../src/shared/config/load.ts';
import { CounterTables, createCounterBuffer } from '../src/shared/counters.ts';
import { createSnapshotBuffer, slotCapacityFor } from '../src/shared/snapshot/layout.ts';
import { median, percentile } from './lib/stats.ts';

const { values } = parseArgs({ options: { clusters: { type: 'string', default: '100' }, records: { type: 'string', default: '150' }, rounds: { type: 'string', default: '20' } } });
const CLUSTERS = Math.max(1, Number(values.clusters));
const RECORDS = Math.max(1, Number(values.records));
const ROUNDS = Math.max(1, Number(values.rounds));

const lines = ['listeners: [{name: l, listen: "127.0.0.1:1", cluster: c0}]', 'clusters:'];
for (let c = 0; c < CLUSTERS; c++) lines.push(`  - name: c${c}`, '    health_check: {type: none}', '    discovery: {type: dns, name: _api._tcp.test, record: srv}');
const config = parseConfig(`${lines.join('\n')}\n`, 'bench.yaml');
const answer: DiscoveryResult = {
  kind: 'answer',
  endpoints: Array.from({ length: RECORDS }, (_, i) => ({ address: `127.0.1.${(i % 250) + 1}:${20_000 + i}`, weight: (i % 5) + 1, tier: i % 2, condition: 'ready' as const })),
};

// Room for every discovered backend, as `capacity: {backends: N}` gives a daemon.
const dims = { workers: 1, backendSlots: Math.max(16_384, CLUSTERS * RECORDS), listenerSlots: 4 };
const reports: ((result: DiscoveryResult) => void)[] = [];
let queue: Promise<unknown> = Promise.resolve();
let bytes = 0;
let messages = 0;
const cp = new ControlPlane({
  config,
  counters: new CounterTables(createCounterBuffer(dims), dims),
  writer: new SnapshotWriter(createSnapshotBuffer(slotCapacityFor(dims.backendSlots))),
  slots: new SlotAllocator(dims.backendSlots),
  log: pino({ level: 'silent' }),
  tickMs: 3_600_000,
  createSource: () => ({ start: (report) => void reports.push(report), stop: () => Promise.resolve() }),
  onDiscoveryStatus: (status) => {
    messages++;
    bytes += serialize({ type: 'discovery.status', status }).length;
  },
  serially: (step) => void (queue = queue.then(step)),
});

const cpuMs = (): number => {
  const { user, system } = process.threadCpuUsage();
  return user / 1000 + system / 1000;
};

async function round(): Promise<void> {
  for (const report of reports) report(answer);
  await queue;
}

await cp.start();
await round(); // the first answer adds every backend
for (let i = 0; i < 3; i++) await round();
const refresh: number[] = [];
const sent: number[] = [];
const sentMessages: number[] = [];
for (let i = 0; i < ROUNDS; i++) {
  bytes = 0;
  messages = 0;
  const before = cpuMs();
  await round();
  refresh.push(((cpuMs() - before) * 1000) / CLUSTERS);
  sent.push(bytes);
  sentMessages.push(messages);
}
const tick: number[] = [];
for (let i = 0; i < ROUNDS * 5; i++) {
  const before = cpuMs();
  cp.tick();
  tick.push(cpuMs() - before);
}
await cp.close();
const f = (n: number, d = 1): string => n.toFixed(d);
console.log(`discovery in the control plane: ${CLUSTERS} clusters × ${RECORDS} SRV endpoints (${cp.registry.size} backends), node ${process.version}; thread CPU time, ${ROUNDS} rounds`);
console.log(`unchanged refresh, per cluster: p50 ${f(median(refresh))} µs, p90 ${f(percentile(refresh, 90))} µs`);
console.log(`control-plane tick with nothing due: p50 ${f(median(tick), 2)} ms, p90 ${f(percentile(tick, 90), 2)} ms`);
console.log(`to the main thread per round of unchanged refreshes: ${median(sentMessages)} messages, ${median(sent)} bytes`);
