/**
 * How long a change made on one instance of a fleet takes to be applied by every instance:
 * from the admin answer (which comes once the writing instance applied it from its own watch)
 * to the moment the last of the others applied it. A benchmark, not a test: the numbers
 * depend on the machine and its load.
 *
 *   node bench/fleet-propagation.ts [--changes 100] [--instances 3]
 *
 * One real etcd (test/helpers/etcd.ts) and `--instances` real daemons on loopback. Each
 * change is a PATCH of one backend's weight, sent to the instances in turn, one at a time.
 * "Applied" is an instance's `registry intent applied` log line whose revision reaches the
 * answer's; its pino `time` (same machine, same clock) is compared with the moment the
 * answer arrived here. The watch loop gathers events for 25 ms before it delivers (its
 * coalescing window), which is part of what is measured.
 */
import { parseArgs } from 'node:util';
import { startBackend } from '../test/helpers/backends.ts';
import { startDaemon, type Daemon, type LogLine } from '../test/helpers/daemon.ts';
import { startEtcd } from '../test/helpers/etcd.ts';
import { freePorts } from '../test/helpers/ports.ts';
import { median, percentile } from './lib/stats.ts';

const { values } = parseArgs({ options: { changes: { type: 'string', default: '100' }, instances: { type: 'string', default: '3' } } });
const CHANGES = Math.max(1, Number(values.changes));
const INSTANCES = Math.max(2, Number(values.instances));

function config(admin: number, listen: number, instance: string, endpoint: string, backend: string): string {
  return `workers: 1
admin: {listen: 127.0.0.1:${admin}}
registry:
  etcd: {endpoints: [${endpoint}], prefix: /bench-fleet/, instance: ${instance}}
listeners:
  - {name: web, protocol: tcp, listen: 127.0.0.1:${listen}, cluster: web}
clusters:
  - name: web
    algorithm: round_robin
    health_check: {type: none}
    backends: [{address: ${backend}}]
`;
}

/** When `daemon` logged applying a revision >= `revision` (epoch ms), waiting for the line. */
async function appliedAt(daemon: Daemon, revision: number): Promise<number> {
  const line: LogLine = await daemon.waitForLog((l) => l.msg === 'registry intent applied' && typeof l['revision'] === 'number' && l['revision'] >= revision, 30_000);
  return typeof line['time'] === 'number' ? line['time'] : Date.now();
}

const etcd = await startEtcd();
const backend = await startBackend('echo');
const ports = await freePorts(2 * INSTANCES);
const daemons = await Promise.all(
  Array.from({ length: INSTANCES }, async (_, i) => {
    const admin = ports[2 * i] as number;
    return startDaemon(config(admin, ports[2 * i + 1] as number, `bench-${i + 1}`, etcd.endpoint, backend.address), admin);
  }),
);
const id = `web:${backend.address}`;
const samples: number[] = [];
/** From sending the request to every instance (the writer included) having applied it. */
const endToEnd: number[] = [];
try {
  for (let i = 0; i < CHANGES; i++) {
    const writer = i % INSTANCES;
    const sentAt = Date.now();
    const response = await fetch(`${(daemons[writer] as Daemon).adminUrl}/backends/${id}`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ weight: 2 + (i % 50) }),
    });
    const answeredAt = Date.now();
    const body = (await response.json()) as { revision?: number };
    if (response.status !== 200 || body.revision === undefined) throw new Error(`change ${i}: ${response.status} ${JSON.stringify(body)}`);
    const times = await Promise.all(daemons.map(async (d, j) => (j === writer ? answeredAt : appliedAt(d, body.revision as number))));
    samples.push(Math.max(0, Math.max(...times) - answeredAt));
    endToEnd.push(Math.max(...times) - sentAt);
  }
} finally {
  await Promise.all(daemons.map(async (d) => d.stop()));
  await backend.close();
  await etcd.stop();
}
const row = (name: string, v: readonly number[]): string =>
  `${name.padEnd(44)} ${[median(v), percentile(v, 90), percentile(v, 99), Math.max(...v)].map((x) => x.toFixed(0).padStart(5)).join(' ')}`;
process.stdout.write(
  [
    `fleet propagation: ${CHANGES} changes over ${INSTANCES} instances, ms`,
    `${''.padEnd(44)}   p50   p90   p99   max`,
    row('answer -> every other instance applied', samples),
    row('request sent -> every instance applied', endToEnd),
  ].join('\n') + '\n',
);
