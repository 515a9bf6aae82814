/**
 * The cost of one DNS discovery refresh at 1,000 SRV records: the lookup (UDP, truncated,
 * then TCP), turning the records into endpoints, and reconciling them with the cluster's
 * previous state. A benchmark, not a test: numbers depend on the machine and its load.
 *
 *   node bench/discovery-refresh.ts [--rounds 30] [--records 1000]
 *
 * Two servers answer the same 1,000 records (on 250 hosts, 4 ports each, two priorities):
 * a real dnsmasq (--srv-host, addresses from a hosts file, names compressed) and the tests'
 * scripted server (test/helpers/dns-server.ts, no name compression). Times are wall-clock
 * medians and 90th percentiles over `--rounds` refreshes after 3 warm-up rounds; the
 * reconcile rows are CPU-bound and timed on this thread alone.
 */
import { parseArgs } from 'node:util';
import type { Answer } from 'dns-packet';
import { queryDns } from '../src/controlplane/discovery/dns-client.ts';
import { lookupEndpoints } from '../src/controlplane/discovery/dns-source.ts';
import { EMPTY_STATE, reconcile } from '../src/controlplane/discovery/reconciler.ts';
import type { DiscoveryResult } from '../src/controlplane/discovery/types.ts';
import { startDnsServer } from '../test/helpers/dns-server.ts';
import { startDnsmasq } from '../test/helpers/dnsmasq.ts';
import { percentile, median } from './lib/stats.ts';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '30' }, records: { type: 'string', default: '1000' } } });
const ROUNDS = Math.max(1, Number(values.rounds));
const RECORDS = Math.max(1, Number(values.records));
const HOSTS = Math.max(1, Math.ceil(RECORDS / 4));
const NAME = '_api._tcp.test';
const HOLD = { holdObsolete: 30_000, holdFailure: 0 };

function hostIp(h: number): string {
  return `10.0.${h >> 8}.${h & 255}`;
}

async function time(rounds: number, run: () => unknown): Promise<number[]> {
  for (let i = 0; i < 3; i++) await run();
  const samples: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const start = process.hrtime.bigint();
    await run();
    samples.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  return samples;
}

function row(label: string, samples: readonly number[]): string {
  return `| ${label} | ${median(samples).toFixed(2)} | ${percentile(samples, 90).toFixed(2)} |`;
}

async function measure(label: string, resolver: { host: string; port: number }): Promise<string[]> {
  const options = { resolvers: [resolver], timeoutMs: 5_000 };
  const query = await time(ROUNDS, async () => {
    const lookup = await queryDns(NAME, 'SRV', options);
    if (!lookup.ok || lookup.answers.length !== RECORDS) throw new Error(`${label}: unexpected answer ${JSON.stringify(lookup).slice(0, 200)}`);
  });
  let result: DiscoveryResult | undefined;
  const lookup = await time(ROUNDS, async () => {
    result = await lookupEndpoints({ name: NAME, record: 'srv' }, options);
  });
  if (result?.kind !== 'answer' || result.endpoints.length !== RECORDS) throw new Error(`${label}: expected ${RECORDS} endpoints, got ${JSON.stringify(result).slice(0, 200)}`);
  return [row(`${label}: query only (UDP → TC → TCP, decode)`, query), row(`${label}: query + targets + endpoints (lookupEndpoints)`, lookup)];
}

async function reconcileRows(result: DiscoveryResult): Promise<string[]> {
  if (result.kind !== 'answer') throw new Error('no answer');
  const first = reconcile(EMPTY_STATE, result, 0, HOLD);
  const oneGone: DiscoveryResult = { kind: 'answer', endpoints: result.endpoints.slice(1) };
  const fresh = await time(ROUNDS, () => reconcile(EMPTY_STATE, result, 0, HOLD));
  const same = await time(ROUNDS, () => {
    if (reconcile(first.state, result, 1_000, HOLD).changed) throw new Error('a repeated answer changed something');
  });
  const gone = await time(ROUNDS, () => reconcile(first.state, oneGone, 1_000, HOLD));
  return [row('reconcile: first answer (all new)', fresh), row('reconcile: the same answer again (changed: false)', same), row('reconcile: one address gone', gone)];
}

const answers: Answer[] = [];
const additionals: Answer[] = [];
const srvArgs: string[] = [];
const hostLines: string[] = [];
for (let h = 0; h < HOSTS; h++) {
  additionals.push({ type: 'A', name: `n${h}.test`, ttl: 30, data: hostIp(h) });
  hostLines.push(`${hostIp(h)} n${h}.test`);
}
for (let i = 0; i < RECORDS; i++) {
  const data = { priority: i % 2, weight: (i % 5) + 1, port: 10_000 + i, target: `n${i % HOSTS}.test` };
  answers.push({ type: 'SRV', name: NAME, ttl: 30, data });
  srvArgs.push(`${NAME},${data.target},${data.port},${data.priority},${data.weight}`);
}

const scripted = await startDnsServer(() => ({ answers, additionals }));
const dnsmasq = await startDnsmasq({ hosts: hostLines, srv: srvArgs, localTtl: 30 });
try {
  const lines = ['| step | median ms | p90 ms |', '|---|---|---|'];
  lines.push(...(await measure('dnsmasq', { host: '127.0.0.1', port: dnsmasq.port })));
  lines.push(...(await measure('scripted server', { host: '127.0.0.1', port: scripted.port })));
  const result = await lookupEndpoints({ name: NAME, record: 'srv' }, { resolvers: [{ host: '127.0.0.1', port: scripted.port }], timeoutMs: 5_000 });
  lines.push(...(await reconcileRows(result)));
  console.log(`One DNS discovery refresh at ${RECORDS} SRV records on ${HOSTS} hosts, ${ROUNDS} rounds (node ${process.version}):\n`);
  console.log(lines.join('\n'));
} finally {
  await scripted.close();
  await dnsmasq.stop();
}
