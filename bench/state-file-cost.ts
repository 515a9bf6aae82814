/**
 * What an operator's change pays to serialize the state file when discovered clusters keep
 * their last answers in it (state-file.ts): `--clusters` × `--addresses` addresses, one
 * cluster's answer replaced between writes (what a discovery change does), the others kept
 * as the same objects (what the discovery manager keeps). A benchmark, not a test.
 *
 *   node bench/state-file-cost.ts [--clusters 16] [--addresses 1024] [--rounds 20]
 *
 * Prints the first write (every answer serialized) and the median and slowest of the rest,
 * CPU-bound on this thread; no file is written (the fsync is the disk's, not ours).
 */
import { parseArgs } from 'node:util';
import { EMPTY_RUNTIME_STATE } from '../src/controlplane/runtime-state.ts';
import { serializeState, type StoredAnswer } from '../src/controlplane/state-file.ts';
import { median } from './lib/stats.ts';

const { values } = parseArgs({
  options: {
    clusters: { type: 'string', default: '16' },
    addresses: { type: 'string', default: '1024' },
    rounds: { type: 'string', default: '20' },
  },
});
const CLUSTERS = Number(values.clusters);
const ADDRESSES = Number(values.addresses);
const ROUNDS = Number(values.rounds);

function answer(cluster: number, round: number): StoredAnswer {
  return {
    query: `["dns","srv","_svc${cluster}._tcp.example",null,null]`,
    answered_at: new Date(Date.UTC(2026, 11, 6, 0, 0, round)).toISOString(),
    answer: Array.from({ length: ADDRESSES }, (_, i) => ({ address: `10.${cluster}.${i >> 8}.${i & 255}:8080`, weight: 1 + (round % 3), tier: 0, condition: 'ready' as const })),
  };
}

const discovered: Record<string, StoredAnswer> = {};
for (let c = 0; c < CLUSTERS; c++) discovered[`svc${c}`] = answer(c, 0);

const times: number[] = [];
let bytes = 0;
for (let round = 0; round <= ROUNDS; round++) {
  if (round > 0) discovered[`svc${round % CLUSTERS}`] = answer(round % CLUSTERS, round);
  const started = performance.now();
  bytes = serializeState({ ...EMPTY_RUNTIME_STATE, discovered: { ...discovered } }).length;
  times.push(performance.now() - started);
}
const [first = 0, ...rest] = times;
console.log(`${CLUSTERS} × ${ADDRESSES} addresses, ${(bytes / 1e6).toFixed(2)} MB a file`);
console.log(`first write ${first.toFixed(2)} ms; then one answer replaced per write: median ${median(rest).toFixed(2)} ms, slowest ${Math.max(...rest).toFixed(2)} ms`);
