import { describe, expect, it } from 'vitest';
import { SluiceError } from '../../../src/shared/errors.ts';
import {
  ACTIVE_SLOT,
  HEADER_BYTES,
  LAYOUT_VERSION,
  MAGIC,
  SEQ,
  SLOT_CAPACITY,
  VERSION,
  createSnapshotBuffer,
  openSnapshotBuffer,
} from '../../../src/shared/snapshot/layout.ts';

function expectCorrupt(run: () => unknown, messagePart: string): void {
  expect(run).toThrow(SluiceError);
  expect(run).toThrow(messagePart);
  try {
    run();
  } catch (err) {
    expect((err as SluiceError).code).toBe('SLUICE_SNAPSHOT_CORRUPT');
  }
}

describe('snapshot buffer layout', () => {
  it('creates a buffer of header plus two slots with nothing published', () => {
    const sab = createSnapshotBuffer(1024);
    expect(sab.byteLength).toBe(HEADER_BYTES + 2 * 1024);
    const view = openSnapshotBuffer(sab);
    expect(view.capacity).toBe(1024);
    expect(view.slots.map((s) => [s.byteOffset, s.byteLength])).toEqual([
      [HEADER_BYTES, 1024],
      [HEADER_BYTES + 1024, 1024],
    ]);
    expect(view.words.map((w) => [w.byteOffset, w.length])).toEqual([
      [HEADER_BYTES, 256],
      [HEADER_BYTES + 1024, 256],
    ]);
    expect([SEQ, VERSION, ACTIVE_SLOT].map((cell) => view.header[cell])).toEqual([0, 0, 0]);
  });

  it('defaults to 8 MiB slots', () => {
    expect(openSnapshotBuffer(createSnapshotBuffer()).capacity).toBe(8 * 1024 * 1024);
  });

  it.each([0, -4, 6, 1.5, Number.NaN, 2 * 1024 ** 3])('refuses a slot capacity of %s bytes', (capacity) => {
    expect(() => createSnapshotBuffer(capacity)).toThrow(RangeError);
  });

  it.each<[string, (sab: SharedArrayBuffer) => SharedArrayBuffer, string]>([
    ['a buffer shorter than the header', () => new SharedArrayBuffer(8), 'shorter than the header'],
    ['a buffer of zeros', () => new SharedArrayBuffer(HEADER_BYTES + 64), 'bad magic 0x0'],
    ['a wrong magic', (sab) => poke(sab, MAGIC, 0x12345678), 'bad magic 0x12345678'],
    ['another layout version', (sab) => poke(sab, LAYOUT_VERSION, 2), 'layout version 2'],
    ['a capacity that does not match the size', (sab) => poke(sab, SLOT_CAPACITY, 32), 'slot capacity 32'],
    ['a capacity that is not a multiple of 4', (sab) => poke(sab, SLOT_CAPACITY, 31), 'slot capacity 31'],
  ])('refuses %s', (_name, spoil, messagePart) => {
    const sab = spoil(createSnapshotBuffer(64));
    expectCorrupt(() => openSnapshotBuffer(sab), messagePart);
  });
});

function poke(sab: SharedArrayBuffer, cell: number, value: number): SharedArrayBuffer {
  Atomics.store(new Int32Array(sab), cell, value);
  return sab;
}
