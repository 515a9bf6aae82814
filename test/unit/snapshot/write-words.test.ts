import { describe, expect, it } from 'vitest';
import { SnapshotWriter, writeWords } from '../../../src/controlplane/snapshot-writer.ts';
import { createSnapshotBuffer } from '../../../src/shared/snapshot/layout.ts';
import { SnapshotReader } from '../../../src/shared/snapshot/reader.ts';
import type { Snapshot } from '../../../src/shared/snapshot/types.ts';
import { testBackend, testCluster, testListener } from '../../helpers/snapshot.ts';

const bytes = (...values: number[]): Uint8Array => Uint8Array.from(values);
/** The slot's first `n` bytes. */
const head = (slot: Int32Array, n: number): number[] => [...new Uint8Array(slot.buffer, slot.byteOffset, n)];

describe('writeWords', () => {
  // [name, slot before (bytes), written, held copy?, words stored]
  it.each<[string, number[], Uint8Array, boolean, number]>([
    ['an empty slot: every non-zero word', [], bytes(1, 2, 3, 4, 5, 6, 7, 8), false, 2],
    ['the same bytes again: nothing', [1, 2, 3, 4, 5, 6, 7, 8], bytes(1, 2, 3, 4, 5, 6, 7, 8), false, 0],
    ['one byte changed: its word alone', [1, 2, 3, 4, 5, 6, 7, 8], bytes(1, 2, 3, 4, 5, 6, 9, 8), false, 1],
    ['the same, compared with the held copy', [1, 2, 3, 4, 5, 6, 7, 8], bytes(1, 2, 3, 4, 5, 6, 9, 8), true, 1],
    ['a length not a multiple of 4 (padded with zeros)', [1, 2, 3, 4, 5, 6, 7, 8], bytes(1, 2, 3, 4, 5), false, 1],
    ['a view at an offset (copied first)', [0, 0, 0, 0], bytes(9, 1, 2, 3, 4).subarray(1), false, 1],
    ['longer than the held copy: the new tail stored', [1, 2, 3, 4], bytes(1, 2, 3, 4, 5, 6, 7, 8), true, 1],
  ])('%s', (_name, before, written, withHeld, stored) => {
    const slot = new Int32Array(new SharedArrayBuffer(16));
    const first = writeWords(slot, Uint8Array.from(before));
    const result = writeWords(slot, written, withHeld ? first.words : undefined);
    expect(result.stored).toBe(stored);
    const padded = Math.ceil(written.length / 4) * 4;
    expect(head(slot, padded)).toEqual([...written, ...new Array<number>(padded - written.length).fill(0)]);
  });
});

describe('a writer that stores only changed words', () => {
  function content(weights: readonly number[], extra = 0): Omit<Snapshot, 'version'> {
    const backends = weights.map((weight, i) => testBackend(`10.0.0.${i}:80`, { cluster: 'web', slot: i, weight, configuredWeight: weight }));
    const more = Array.from({ length: extra }, (_, i) => testBackend(`10.1.0.${i}:80`, { cluster: 'web', slot: 100 + i }));
    return { clusters: [testCluster({ name: 'web', backends: [...backends, ...more] })], listeners: [testListener({ name: 'l', cluster: 'web' })] };
  }

  // Each slot is written every other publish: a reader must see each step whole, whatever
  // the slot held two publishes before (longer, shorter, or nearly the same).
  const steps = [content([1, 1, 1]), content([2, 1, 1]), content([1, 1, 1]), content([2, 1, 1], 5), content([3, 1, 1]), content([3, 1, 1], 9), content([1])];
  it('readers decode every step exactly', () => {
    const sab = createSnapshotBuffer(64 * 1024);
    const writer = new SnapshotWriter(sab);
    const reader = new SnapshotReader(sab);
    for (const step of steps) {
      const version = writer.publish(step);
      expect(reader.current()).toEqual({ version, ...step });
    }
  });

  it('a new writer over a used buffer (a restarted control plane) compares with the slot itself', () => {
    const sab = createSnapshotBuffer(64 * 1024);
    const first = new SnapshotWriter(sab);
    first.publish(steps[0] as Omit<Snapshot, 'version'>);
    first.publish(steps[3] as Omit<Snapshot, 'version'>);
    const second = new SnapshotWriter(sab);
    const reader = new SnapshotReader(sab);
    for (const step of steps.slice(1)) {
      const version = second.publish(step);
      expect(reader.current()).toEqual({ version, ...step });
    }
  });
});
