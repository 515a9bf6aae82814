/**
 * Per-pick cost of each balancing algorithm at 1, 100 and 10,000 eligible backends, printed
 * as a markdown table (docs/benchmarks-balancers.md holds a run). A benchmark, not a test:
 * numbers depend on the machine and its load.
 *
 *   node bench/balancer-picks.ts [--ms 150]
 *
 * What is measured: `Balancer.pick` exactly as the data plane calls it once per accepted
 * connection (the object built once per snapshot version), with the same seeded generator
 * as production. Times are CPU time of this thread. For least_connections and power_of_two the global counter row holds random
 * loads (0–99); consistent_hash is given a fresh client hash per pick. The build column is
 * the once-per-version cost (routing table rebuild; median of 3 after a warm-up), not paid
 * per pick. Each cell is the
 * median of 5 timed rounds of at least `--ms` / 5 milliseconds each, after a warm-up.
 */
import { parseArgs } from 'node:util';
import { createBalancer, type Balancer } from '../src/dataplane/balancer/cluster-balancer.ts';
import { AffinityTable } from '../src/shared/balancer/affinity.ts';
import { seededRandom } from '../src/dataplane/balancer/random.ts';
import { ClusterState, createClusterStateBuffer } from '../src/shared/cluster-state.ts';
import type { Algorithm, SnapshotBackend, SnapshotCluster } from '../src/shared/snapshot/types.ts';

const { values } = parseArgs({ options: { ms: { type: 'string', default: '150' } } });
const budgetMs = Math.max(10, Number(values.ms));
const SIZES = [1, 100, 10_000];
const ALGORITHMS: Algorithm[] = ['round_robin', 'random', 'least_connections', 'power_of_two', 'consistent_hash'];
const ROUNDS = 5;

function backends(n: number): SnapshotBackend[] {
  return Array.from({ length: n }, (_, i) => {
    const host = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    const weight = 1 + (i % 5);
    return {
      id: `web:${host}:80`,
      slot: i,
      address: `${host}:80`,
      host,
      port: 80,
      weight,
      configuredWeight: weight,
      state: 'healthy',
      maxConnections: 0,
      admin: 'none',
      drained: false,
      reason: 'bench',
      since: 0,
    };
  });
}

function cluster(algorithm: Algorithm, list: SnapshotBackend[]): SnapshotCluster {
  return {
    name: 'web',
    algorithm,
    hashKey: 'source_ip',
    maglevTableSize: 65_537,
    stickyTtlMs: 0,
    stickyMaxEntries: 0,
    queueSize: 0,
    queueTimeoutMs: 0,
    connectTimeoutMs: 1000,
    idleTimeoutMs: 1000,
    panicMode: 'refuse',
    backends: list,
  };
}

/**
 * CPU nanoseconds per call of `step`, median of ROUNDS rounds. CPU time (not wall time), so
 * the result does not count the time this thread spent descheduled on a busy machine.
 */
function nsPerCall(step: (i: number) => number): number {
  let sink = 0;
  // Warm-up: let the JIT settle on this call site.
  for (let i = 0; i < 200_000; i++) sink += step(i);
  const perRoundUs = (budgetMs * 1000) / ROUNDS;
  const results: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    let calls = 0;
    const started = process.cpuUsage();
    let elapsedUs = 0;
    while (elapsedUs < perRoundUs) {
      for (let i = 0; i < 10_000; i++) sink += step(calls + i);
      calls += 10_000;
      const used = process.cpuUsage(started);
      elapsedUs = used.user + used.system;
    }
    results.push((elapsedUs * 1000) / calls);
  }
  if (sink === Number.MIN_VALUE) console.log('unreachable');
  results.sort((a, b) => a - b);
  return results[Math.floor(ROUNDS / 2)] ?? 0;
}

/** CPU milliseconds of one build, median of 3 after a warm-up build. */
function msPerBuild(build: () => unknown): number {
  build();
  const times: number[] = [];
  for (let i = 0; i < 3; i++) {
    const started = process.cpuUsage();
    build();
    const used = process.cpuUsage(started);
    times.push((used.user + used.system) / 1000);
  }
  times.sort((a, b) => a - b);
  return times[1] ?? 0;
}

function format(ns: number): string {
  return ns < 10 ? ns.toFixed(1) : ns.toFixed(0);
}

interface Row {
  readonly name: string;
  readonly cells: string[];
}

const rows: Row[] = [];
for (const algorithm of ALGORITHMS) {
  const cells: string[] = [];
  for (const n of SIZES) {
    const list = backends(n);
    const active = new Int32Array(new SharedArrayBuffer(4 * n));
    for (let i = 0; i < n; i++) active[i] = Math.floor(Math.random() * 100);
    const env = { activeTotal: active, random: seededRandom(42) };
    const build = (): Balancer => createBalancer(cluster(algorithm, list), list, undefined, env);
    const buildMs = msPerBuild(build);
    const balancer = build();
    const ns = nsPerCall((i) => balancer.pick(Math.imul(i, 2654435761) >>> 0));
    cells.push(`${format(ns)} ns (build ${buildMs < 1 ? buildMs.toFixed(2) : buildMs.toFixed(1)} ms)`);
  }
  rows.push({ name: algorithm, cells });
}

// consistent_hash with every 10th backend down: a tenth of the picks probe on past an
// ineligible entry. The build is a health change: the table is reused, only eligibility is redone.
{
  const cells: string[] = [];
  for (const n of SIZES) {
    const list = backends(n);
    const env = { activeTotal: new Int32Array(new SharedArrayBuffer(4 * n)), random: seededRandom(42) };
    const healthy = createBalancer(cluster('consistent_hash', list), list, undefined, env);
    const someDown = list.map((b, i) => (i % 10 === 9 ? { ...b, state: 'unhealthy' as const } : b));
    const eligible = someDown.filter((b) => b.state === 'healthy');
    const build = (): Balancer => createBalancer(cluster('consistent_hash', someDown), eligible, healthy, env);
    const buildMs = msPerBuild(build);
    const balancer = build();
    const ns = nsPerCall((i) => balancer.pick(Math.imul(i, 2654435761) >>> 0));
    cells.push(`${format(ns)} ns (build ${buildMs < 1 ? buildMs.toFixed(2) : buildMs.toFixed(1)} ms)`);
  }
  rows.push({ name: 'consistent_hash, every 10th backend down (build: a health change)', cells });
}

// Sticky sessions add a lookup in the shared affinity table before the algorithm's pick.
{
  const cells: string[] = [];
  for (const n of SIZES) {
    const state = new ClusterState(createClusterStateBuffer(100_000));
    const table = new AffinityTable(state.cells, state.affinityCapacity, state.affinityEpochSeconds);
    const clients = 50_000;
    for (let c = 0; c < clients; c++) table.remember(Math.imul(c, 2654435761) >>> 0, c + 1, c % n, 600, 0);
    const ns = nsPerCall((i) => {
      const c = i % clients;
      return table.lookup(Math.imul(c, 2654435761) >>> 0, c + 1, 0);
    });
    cells.push(`${format(ns)} ns`);
  }
  rows.push({ name: 'sticky lookup (added before the pick)', cells });
}

const header = `| algorithm | ${SIZES.map((n) => `${n.toLocaleString('en-US')} backend${n === 1 ? '' : 's'}`).join(' | ')} |`;
const rule = `|---|${SIZES.map(() => '---:').join('|')}|`;
console.log(`Per-pick cost in CPU time, Node ${process.version}, ${budgetMs} ms per cell (median of ${ROUNDS} rounds)\n`);
console.log(header);
console.log(rule);
for (const row of rows) console.log(`| ${row.name} | ${row.cells.join(' | ')} |`);
