/**
 * How long a published snapshot version takes to reach each data-plane worker, measured
 * from inside: the control plane stamps the version it is about to publish and when, and each
 * worker, when it takes that version in, records now − stamp into its row of a shared
 * histogram (`sluice_snapshot_propagation_seconds`).
 *
 * The stamp is two BigInt64 cells with one writer, used as a tiny seqlock (every access is an
 * Atomics load or store, so sequentially consistent):
 *   writer: version := 0, atMicros := t, version := v; then it publishes v.
 *   reader taking v in: a := version, t := atMicros, b := version; t is v's iff a = b = v.
 * A rewrite between the reader's two loads changes `version` (0, then v + 1), so a reader
 * never pairs a version with another publish's time. A worker that skipped a version (two
 * publishes before it woke) or read the stamp already moved on records nothing for it: the
 * count is at most publishes × workers.
 *
 * Clock: wall-clock microseconds as `performance.timeOrigin + performance.now()`, the one
 * clock threads can compare (each thread's performance.now() has its own origin). It is
 * monotonic within a thread; across threads it can disagree by the NTP slew between their
 * start times, far below the buckets' 50 µs floor in practice. A negative difference reads 0.
 */
import { PublishStamp } from '../counters.ts';

/** Wall-clock µs comparable across threads (see the file comment). */
export function wallClockMicros(): number {
  return performance.timeOrigin * 1000 + performance.now() * 1000;
}

/** Control plane, before the version becomes visible to readers. */
export function stampPublish(cells: BigInt64Array, version: number, atMicros: number): void {
  Atomics.store(cells, PublishStamp.version, 0n);
  Atomics.store(cells, PublishStamp.atMicros, BigInt(Math.round(atMicros)));
  Atomics.store(cells, PublishStamp.version, BigInt(version));
}

/** When `version`'s publish began (µs), or undefined when the stamp names another version. */
export function stampOf(cells: BigInt64Array, version: number): number | undefined {
  const wanted = BigInt(version);
  if (Atomics.load(cells, PublishStamp.version) !== wanted) return undefined;
  const at = Atomics.load(cells, PublishStamp.atMicros);
  if (Atomics.load(cells, PublishStamp.version) !== wanted) return undefined;
  return Number(at);
}

/** The delay to record, in ms, for a stamp read at `nowMicros`; never negative. */
export function propagationMs(stampMicros: number, nowMicros: number): number {
  return Math.max(0, nowMicros - stampMicros) / 1000;
}

/** A data-plane worker took `version` in: observe its delay, if the stamp still names it. */
export function recordPropagation(cells: BigInt64Array, version: number, nowMicros: number, observe: (ms: number) => void): void {
  const stamp = stampOf(cells, version);
  if (stamp !== undefined) observe(propagationMs(stamp, nowMicros));
}
