import { describe, expect, it } from 'vitest';
import { encodeSnapshot, SnapshotEncoder } from '../../../src/shared/snapshot/codec.ts';
import { SluiceError } from '../../../src/shared/errors.ts';
import type { Snapshot, SnapshotBackend, SnapshotCluster, SnapshotListener } from '../../../src/shared/snapshot/types.ts';
import { testBackend, testCluster } from '../../helpers/snapshot.ts';

function backend(i: number, weight = 1): SnapshotBackend {
  // A fractional `since` and weight: numbers the encoder must write as JSON does.
  return testBackend(`10.0.0.${i}:80`, { slot: i, weight, configuredWeight: weight, reason: 'no active check', since: 1_700_000_000_000.5 });
}

function cluster(name: string, backends: readonly SnapshotBackend[], extra: Partial<SnapshotCluster> = {}): SnapshotCluster {
  return testCluster({ name, backends, ...extra });
}

/** `web` whose backends getter counts how often the encoder reads it. */
function countingReads(): { cluster: SnapshotCluster; reads: () => number } {
  let reads = 0;
  const counted = { ...web };
  Object.defineProperty(counted, 'backends', {
    enumerable: true,
    get: () => {
      reads++;
      return web.backends;
    },
  });
  return { cluster: counted, reads: () => reads };
}

const web = cluster('web', [backend(1), backend(2, 2.5)], { sendProxy: 'v2' });
const ünï = cluster('ünï-ç😀de', []);
const listeners: readonly SnapshotListener[] = [
  { name: 'http', cluster: 'web', routes: [{ cluster: 'web', weight: 1 }], acl: { allow: ['10.0.0.0/8'], deny: [] } },
  { name: 'sni', cluster: null, routes: [], sniRoutes: [{ serverName: '*.example.com', cluster: 'web' }] },
];

/** Bytes and the padding the writer relies on: zeros up to the next multiple of 4. */
function expectSameAsEncodeSnapshot(encoded: Uint8Array, snapshot: Snapshot): void {
  expect(Buffer.from(encoded).toString()).toBe(Buffer.from(encodeSnapshot(snapshot)).toString());
  expect(encoded.byteOffset).toBe(0);
  expect(encoded.buffer.byteLength).toBe(Math.ceil(encoded.length / 4) * 4);
  expect([...new Uint8Array(encoded.buffer, encoded.length)].every((b) => b === 0)).toBe(true);
}

function thrown(run: () => unknown): SluiceError {
  try {
    run();
  } catch (error) {
    if (error instanceof SluiceError) return error;
    throw error;
  }
  throw new Error('did not throw');
}

describe('SnapshotEncoder', () => {
  it.each<[string, Snapshot]>([
    ['an empty snapshot', { version: 0, clusters: [], listeners: [] }],
    ['one cluster without backends, non-ASCII name', { version: 1, clusters: [ünï], listeners: [] }],
    ['clusters, an acl and SNI routes', { version: 7, clusters: [web, ünï], listeners }],
    ['the largest version', { version: 0x7fffffff, clusters: [web], listeners }],
    ['richer objects than the type (extra fields dropped)', { version: 3, clusters: [{ ...web, extra: 1 } as SnapshotCluster], listeners: [{ ...listeners[0], x: 2 } as SnapshotListener] }],
  ])('encodes %s to exactly the bytes encodeSnapshot does, and measures their length', (_name, snapshot) => {
    expectSameAsEncodeSnapshot(new SnapshotEncoder().encode(snapshot), snapshot);
    expect(new SnapshotEncoder().byteLength(snapshot)).toBe(encodeSnapshot(snapshot).length);
  });

  // One encoder across publishes, as the writer keeps it: each step reuses some objects.
  const reweighted = cluster('web', [backend(1, 3), backend(2, 2.5)], { sendProxy: 'v2' });
  const grown = cluster('web', [backend(1, 3), backend(2, 2.5), backend(3)], { sendProxy: 'v2' });
  const steps: [string, Snapshot][] = [
    ['first publish', { version: 1, clusters: [web, ünï], listeners }],
    ['same objects, next version', { version: 2, clusters: [web, ünï], listeners }],
    ['one cluster replaced by a reweighted copy', { version: 3, clusters: [reweighted, ünï], listeners }],
    ['that cluster grown, the other reused', { version: 4, clusters: [grown, ünï], listeners }],
    ['new listeners', { version: 5, clusters: [grown, ünï], listeners: [listeners[0] as SnapshotListener] }],
    ['clusters reordered', { version: 6, clusters: [ünï, grown], listeners }],
    ['a cluster dropped', { version: 7, clusters: [grown], listeners: [] }],
  ];
  it('across a sequence of publishes reusing objects, every encoding equals encodeSnapshot', () => {
    const encoder = new SnapshotEncoder();
    for (const [name, snapshot] of steps) {
      const encoded = encoder.encode(snapshot);
      expect(Buffer.from(encoded).toString(), name).toBe(Buffer.from(encodeSnapshot(snapshot)).toString());
    }
  });

  it('reads a cluster it encoded before no more: its bytes are reused by identity', () => {
    const { cluster: counted, reads } = countingReads();
    const encoder = new SnapshotEncoder();
    encoder.encode({ version: 1, clusters: [counted], listeners });
    const afterFirst = reads();
    encoder.encode({ version: 2, clusters: [counted], listeners });
    expect(afterFirst).toBeGreaterThan(0);
    expect(reads()).toBe(afterFirst);
  });

  it('a cluster measured for a capacity check is not read again when it is published', () => {
    const { cluster: counted, reads } = countingReads();
    const encoder = new SnapshotEncoder();
    const measured = encoder.byteLength({ version: 0x7fffffff, clusters: [counted], listeners });
    const afterMeasure = reads();
    const published = encoder.encode({ version: 0x7fffffff, clusters: [counted], listeners });
    expect(reads()).toBe(afterMeasure);
    expect(published.length).toBe(measured);
  });

  it.each<[string, unknown]>([
    ['a NaN weight', { version: 1, clusters: [cluster('web', [{ ...backend(1), weight: Number.NaN }])], listeners: [] }],
    ['a version beyond Int32', { version: 2 ** 31, clusters: [web], listeners: [] }],
    ['clusters that are not an array', { version: 1, clusters: {}, listeners: [] }],
    ['a null snapshot', null],
    ['a bad listener acl', { version: 1, clusters: [], listeners: [{ name: 'l', cluster: 'web', routes: [], acl: { allow: ['nope'], deny: [] } }] }],
  ])('refuses %s with the same coded error as encodeSnapshot', (_name, bad) => {
    const expected = thrown(() => encodeSnapshot(bad as Snapshot));
    const got = thrown(() => new SnapshotEncoder().encode(bad as Snapshot));
    expect(got.code).toBe('SLUICE_SNAPSHOT_CORRUPT');
    expect(got.message).toBe(expected.message);
    expect(thrown(() => new SnapshotEncoder().byteLength(bad as Snapshot)).message).toBe(expected.message);
  });
});
