import { describe, expect, it } from 'vitest';
import { SnapshotWriter } from '../../../src/controlplane/snapshot-writer.ts';
import { PublishStamp } from '../../../src/shared/counters.ts';
import { createSnapshotBuffer } from '../../../src/shared/snapshot/layout.ts';
import { propagationMs, recordPropagation, stampOf, stampPublish } from '../../../src/shared/snapshot/propagation.ts';
import { SnapshotReader } from '../../../src/shared/snapshot/reader.ts';
import { testBackend, testCluster } from '../../helpers/snapshot.ts';

function cells(version: bigint, atMicros: bigint): BigInt64Array {
  const c = new BigInt64Array(2);
  c[PublishStamp.version] = version;
  c[PublishStamp.atMicros] = atMicros;
  return c;
}

describe('publish stamp', () => {
  it.each([
    { name: 'names the version taken in', stamp: cells(7n, 1_000_000n), version: 7, expected: 1_000_000 },
    { name: 'a later publish already stamped', stamp: cells(8n, 2_000_000n), version: 7, expected: undefined },
    { name: 'being rewritten (version 0)', stamp: cells(0n, 2_000_000n), version: 7, expected: undefined },
    { name: 'never stamped', stamp: new BigInt64Array(2), version: 1, expected: undefined },
  ])('stampOf: $name', ({ stamp, version, expected }) => {
    expect(stampOf(stamp, version)).toBe(expected);
  });

  it('stampPublish writes what stampOf reads back, rounded to whole µs', () => {
    const c = new BigInt64Array(new SharedArrayBuffer(16));
    stampPublish(c, 3, 1_234_567.6);
    expect(stampOf(c, 3)).toBe(1_234_568);
    expect(stampOf(c, 2)).toBeUndefined();
  });

  it.each([
    { stamp: 1_000_000, now: 1_000_250, ms: 0.25 },
    { stamp: 1_000_000, now: 1_002_000, ms: 2 },
    { stamp: 1_000_000, now: 1_000_000, ms: 0 },
    // Thread clocks disagree by a little: never a negative delay.
    { stamp: 1_000_000, now: 999_990, ms: 0 },
  ])('propagationMs($stamp, $now) = $ms', ({ stamp, now, ms }) => {
    expect(propagationMs(stamp, now)).toBe(ms);
  });

  it('recordPropagation observes only a version the stamp still names', () => {
    const observed: number[] = [];
    const c = cells(5n, 10_000n);
    recordPropagation(c, 5, 10_500, (ms) => observed.push(ms));
    recordPropagation(c, 4, 10_500, (ms) => observed.push(ms));
    expect(observed).toEqual([0.5]);
  });
});

describe('SnapshotReader onTakenIn', () => {
  it('fires once per version taken in, not per read', () => {
    const sab = createSnapshotBuffer(64 * 1024);
    const writer = new SnapshotWriter(sab);
    const taken: number[] = [];
    const reader = new SnapshotReader(sab, { onTakenIn: (v) => taken.push(v) });
    const content = (n: number) => ({ clusters: [testCluster({ name: 'web', backends: [testBackend(`10.0.0.${n}:80`, { cluster: 'web', slot: 0 })] })], listeners: [] });
    reader.current();
    writer.publish(content(1));
    reader.current();
    reader.current();
    writer.publish(content(2));
    writer.publish(content(3));
    reader.current();
    expect(taken).toEqual([1, 3]);
  });
});
