/**
 * What one publish costs the control plane as the snapshot grows, in one thread, without a
 * daemon (so the numbers are not mixed with ticks, probes or other threads): `--clusters` ×
 * `--backends` backends, each round changing one backend's weight in one cluster and keeping
 * the other clusters' objects (what reuseUnchanged hands the writer).
 *
 *   node bench/publish-cost.ts [--clusters 100] [--backends 1000] [--rounds 20]
 *
 * Columns (CPU ms per publish, median of the rounds): the whole encode (encodeSnapshot), the
 * writer's encode (SnapshotEncoder), storing every word with Atomics.store (the writer before
 * it skipped unchanged words), and SnapshotWriter.publish as it is (encode + changed words);
 * then what each data-plane worker pays per publish: a reader taking the version in (copy under
 * the seqlock + decode), and the decode alone.
 */
import { parseArgs } from 'node:util';
import { SnapshotWriter } from '../src/controlplane/snapshot-writer.ts';
import { decodeSnapshot, encodeSnapshot, SnapshotEncoder } from '../src/shared/snapshot/codec.ts';
import { createSnapshotBuffer, slotCapacityFor } from '../src/shared/snapshot/layout.ts';
import { SnapshotReader } from '../src/shared/snapshot/reader.ts';
import type { Snapshot, SnapshotBackend, SnapshotCluster } from '../src/shared/snapshot/types.ts';
import { median } from './lib/stats.ts';
import { testBackend, testCluster } from '../test/helpers/snapshot.ts';

const { values } = parseArgs({
  options: {
    clusters: { type: 'string', default: '100' },
    backends: { type: 'string', default: '1000' },
    rounds: { type: 'string', default: '20' },
  },
});
const CLUSTERS = Number(values.clusters);
const BACKENDS = Number(values.backends);
const ROUNDS = Number(values.rounds);

const since = performance.timeOrigin + performance.now();

function backend(cluster: string, i: number, weight: number): SnapshotBackend {
  const address = `127.0.${1 + Math.floor(i / 250)}.${1 + (i % 250)}:9`;
  return testBackend(address, { cluster, slot: i, weight, configuredWeight: weight, reason: 'no active check', since });
}

function cluster(c: number, firstWeight: number): SnapshotCluster {
  const name = `c${String(c).padStart(3, '0')}`;
  const backends = Array.from({ length: BACKENDS }, (_, i) => backend(name, i, i === 0 ? firstWeight : 1));
  return testCluster({ name, connectTimeoutMs: 5000, idleTimeoutMs: 600_000, backends });
}

/** CPU ms (user + system) of `run`: on a loaded machine wall time measures the neighbours. */
function time(run: () => void): number {
  const start = process.cpuUsage();
  run();
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000;
}

/** The writer's store loop before it skipped words the slot already held. */
function storeEveryWord(target: Int32Array, bytes: Uint8Array): void {
  const padded = new Uint8Array(Math.ceil(bytes.length / 4) * 4);
  padded.set(bytes);
  const words = new Int32Array(padded.buffer);
  for (let i = 0; i < words.length; i++) Atomics.store(target, i, words[i] as number);
}

const clusters = Array.from({ length: CLUSTERS }, (_, c) => cluster(c, 1));
const listeners: Snapshot['listeners'] = [{ name: 'l', cluster: 'c000', routes: [{ cluster: 'c000', weight: 1 }] }];
const capacity = slotCapacityFor(CLUSTERS * BACKENDS);
const sab = createSnapshotBuffer(capacity);
const writer = new SnapshotWriter(sab);
const reader = new SnapshotReader(sab);
const encoder = new SnapshotEncoder();
const scratch = new Int32Array(new SharedArrayBuffer(capacity));
const rows = { whole: [] as number[], encoder: [] as number[], storeAll: [] as number[], publish: [] as number[], takeIn: [] as number[], decode: [] as number[] };
let bytes = 0;
writer.publish({ clusters, listeners });
encoder.encode({ version: 1, clusters, listeners });
for (let round = 0; round < ROUNDS; round++) {
  // One backend of one cluster reweighted; every other cluster object kept.
  const c = round % CLUSTERS;
  clusters[c] = cluster(c, 2 + (round % 2));
  const snapshot = { version: round + 2, clusters: [...clusters], listeners };
  let encoded: Uint8Array = new Uint8Array(0);
  rows.whole.push(time(() => (encoded = encodeSnapshot(snapshot))));
  rows.encoder.push(time(() => encoder.encode(snapshot)));
  rows.storeAll.push(time(() => storeEveryWord(scratch, encoded)));
  rows.publish.push(time(() => writer.publish(snapshot)));
  rows.takeIn.push(time(() => reader.current()));
  rows.decode.push(time(() => decodeSnapshot(encoded)));
  bytes = encoded.length;
}
console.log(
  JSON.stringify({
    backends: CLUSTERS * BACKENDS,
    snapshotBytes: bytes,
    bytesPerBackend: Math.round(bytes / (CLUSTERS * BACKENDS)),
    wholeEncodeMs: +median(rows.whole).toFixed(1),
    encoderMs: +median(rows.encoder).toFixed(1),
    storeEveryWordMs: +median(rows.storeAll).toFixed(1),
    publishNowMs: +median(rows.publish).toFixed(1),
    workerTakeInMs: +median(rows.takeIn).toFixed(1),
    decodeMs: +median(rows.decode).toFixed(1),
  }),
);
