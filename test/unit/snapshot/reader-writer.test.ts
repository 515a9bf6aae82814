import { describe, expect, it } from 'vitest';
import { SnapshotWriter } from '../../../src/controlplane/snapshot-writer.ts';
import { SluiceError } from '../../../src/shared/errors.ts';
import type { SluiceErrorCode } from '../../../src/shared/errors.ts';
import { encodeSnapshot } from '../../../src/shared/snapshot/codec.ts';
import {
  ACTIVE_SLOT,
  LENGTH_0,
  SEQ,
  VERSION,
  createSnapshotBuffer,
  openSnapshotBuffer,
} from '../../../src/shared/snapshot/layout.ts';
import { EMPTY_SNAPSHOT, SnapshotReader } from '../../../src/shared/snapshot/reader.ts';
import type { Snapshot } from '../../../src/shared/snapshot/types.ts';
import { testBackend, testCluster, testListener } from '../../helpers/snapshot.ts';

type Content = Omit<Snapshot, 'version'>;

/** A cluster named `name` with `count` backends; `count` controls the encoded size. */
function content(name: string, count: number): Content {
  const backends = Array.from({ length: count }, (_, i) => testBackend(`10.0.0.${i}:8080`, { cluster: name, slot: i }));
  return { clusters: [testCluster({ name, backends })], listeners: [testListener({ name: `${name}-listener`, cluster: name })] };
}

function setup(capacity = 64 * 1024): { sab: SharedArrayBuffer; writer: SnapshotWriter; reader: SnapshotReader } {
  const sab = createSnapshotBuffer(capacity);
  return { sab, writer: new SnapshotWriter(sab), reader: new SnapshotReader(sab, { stuckAfterMs: 50 }) };
}

function thrown(run: () => unknown): SluiceError {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(SluiceError);
    return err as SluiceError;
  }
  throw new Error('expected a SluiceError, nothing was thrown');
}

function expectError(run: () => unknown, code: SluiceErrorCode, messagePart: string): void {
  const err = thrown(run);
  expect(err.code).toBe(code);
  expect(err.message).toContain(messagePart);
}

describe('snapshot reader and writer in one thread', () => {
  it('before any publish, current() is the frozen empty snapshot at version 0', () => {
    const { reader } = setup();
    expect(reader.current()).toBe(EMPTY_SNAPSHOT);
    expect(reader.current()).toEqual({ version: 0, clusters: [], listeners: [] });
    expect(Object.isFrozen(EMPTY_SNAPSHOT) && Object.isFrozen(EMPTY_SNAPSHOT.clusters)).toBe(true);
    expect(reader.version()).toBe(0);
  });

  it('a publish becomes the current snapshot under the next version', () => {
    const { writer, reader } = setup();
    expect(writer.publish(content('web', 3))).toBe(1);
    expect(reader.version()).toBe(1);
    expect(reader.current()).toEqual({ version: 1, ...content('web', 3) });
    expect(writer.publish(content('api', 1))).toBe(2);
    expect(reader.current()).toEqual({ version: 2, ...content('api', 1) });
  });

  it('current() returns the very same object while the version is unchanged', () => {
    const { writer, reader } = setup();
    writer.publish(content('web', 2));
    const first = reader.current();
    expect(reader.current()).toBe(first);
    expect(reader.current()).toBe(first);
    writer.publish(content('web', 2));
    const second = reader.current();
    expect(second).not.toBe(first);
    expect(second.version).toBe(2);
    expect(reader.current()).toBe(second);
  });

  it('a reader that missed several publishes jumps straight to the newest', () => {
    const { writer, reader } = setup();
    for (let n = 1; n <= 5; n++) writer.publish(content(`v${n}`, n));
    expect(reader.current()).toEqual({ version: 5, ...content('v5', 5) });
  });

  it('a slot overwritten by a shorter encoding decodes only its own bytes', () => {
    const { writer, reader } = setup();
    const sizes = [40, 3, 1, 40, 0, 25];
    sizes.forEach((count, i) => {
      writer.publish(content(`size-${count}`, count));
      expect(reader.current()).toEqual({ version: i + 1, ...content(`size-${count}`, count) });
    });
  });

  it('a writer over a buffer that already holds snapshots continues from its version', () => {
    const { sab, writer } = setup();
    writer.publish(content('a', 1));
    writer.publish(content('b', 2));
    writer.publish(content('c', 3));

    const restarted = new SnapshotWriter(sab);
    expect(restarted.version()).toBe(3);
    expect(restarted.publish(content('d', 4))).toBe(4);
    expect(new SnapshotReader(sab).current()).toEqual({ version: 4, ...content('d', 4) });
  });

  it('an encoding larger than a slot is refused, naming its size and the capacity, and nothing changes', () => {
    const { writer, reader } = setup(4096);
    writer.publish(content('small', 1));
    const before = reader.current();
    const big = content('big', 100);
    const size = encodeSnapshot({ version: 2, ...big }).length;
    expect(size).toBeGreaterThan(4096);

    expectError(() => writer.publish(big), 'SLUICE_SNAPSHOT_TOO_LARGE', `encodes to ${size} bytes but a slot holds 4096 bytes`);
    expect(writer.version()).toBe(1);
    expect(reader.current()).toBe(before);
    expect(writer.publish(content('small', 2))).toBe(2);
  });

  it('malformed content is refused before anything is published', () => {
    const { writer, reader } = setup();
    const bad = content('web', 1);
    const broken: Content = { ...bad, clusters: [{ ...bad.clusters[0]!, connectTimeoutMs: -5 }] };
    expectError(() => writer.publish(broken), 'SLUICE_SNAPSHOT_CORRUPT', 'cannot encode snapshot');
    expect(reader.version()).toBe(0);
    expect(reader.current()).toBe(EMPTY_SNAPSHOT);
  });

  it('a reader never goes back to an older version than the one it holds', () => {
    const { sab, writer, reader } = setup();
    writer.publish(content('old', 1));
    const rolledBack = new Uint8Array(sab).slice();
    writer.publish(content('new', 2));
    const newest = reader.current();
    expect(newest.version).toBe(2);

    new Uint8Array(sab).set(rolledBack); // the whole buffer as it was at version 1
    expect(reader.version()).toBe(1);
    expect(reader.current()).toBe(newest);
    expect(reader.current()).toBe(newest);
  });

  it('a reader gives up with a clear error when the writer stalls mid-publish', () => {
    const { sab, writer, reader } = setup();
    writer.publish(content('web', 1));
    Atomics.add(openSnapshotBuffer(sab).header, SEQ, 1); // odd: "switching", forever
    Atomics.store(openSnapshotBuffer(sab).header, VERSION, 2);
    const startedAt = performance.now();
    expectError(() => reader.current(), 'SLUICE_SNAPSHOT_CORRUPT', 'the writer appears stuck');
    expect(performance.now() - startedAt).toBeGreaterThanOrEqual(50);
  });

  it('a header naming an impossible slot is reported as corrupt', () => {
    const { sab, writer, reader } = setup();
    writer.publish(content('web', 1));
    Atomics.store(openSnapshotBuffer(sab).header, ACTIVE_SLOT, 7);
    expectError(() => reader.current(), 'SLUICE_SNAPSHOT_CORRUPT', 'active slot is 7');
  });

  // A writer stopped inside its odd window (worker terminated) leaves SEQ odd. Each row
  // stops it after a different step of the window; the next writer must close it so that
  // VERSION names what the active slot really holds, then continue after that version.
  it.each<[string, { flip: boolean; storeVersion: boolean }, number]>([
    ['before flipping the active slot', { flip: false, storeVersion: false }, 1],
    ['after flipping the active slot', { flip: true, storeVersion: false }, 2],
    ['after storing the version', { flip: true, storeVersion: true }, 2],
  ])('a writer interrupted %s is finished by the next writer', (_name, stop, expectedVersion) => {
    const { sab, writer } = setup();
    writer.publish(content('v1', 1)); // lands in slot 1; slot 0 is next
    const view = openSnapshotBuffer(sab);
    const bytes = encodeSnapshot({ version: 2, ...content('v2', 2) });
    view.slots[0].set(bytes);
    Atomics.add(view.header, SEQ, 1);
    Atomics.store(view.header, LENGTH_0, bytes.length);
    if (stop.flip) Atomics.store(view.header, ACTIVE_SLOT, 0);
    if (stop.storeVersion) Atomics.store(view.header, VERSION, 2);

    const restarted = new SnapshotWriter(sab);
    expect(Atomics.load(view.header, SEQ) % 2).toBe(0);
    expect(restarted.version()).toBe(expectedVersion);
    expect(new SnapshotReader(sab).current()).toEqual({ version: expectedVersion, ...content(`v${expectedVersion}`, expectedVersion) });
    expect(restarted.publish(content('next', 1))).toBe(expectedVersion + 1);
  });

  it('a writer interrupted during the very first publish leaves version 0', () => {
    const sab = createSnapshotBuffer(4096);
    Atomics.add(openSnapshotBuffer(sab).header, SEQ, 1);
    expect(new SnapshotWriter(sab).version()).toBe(0);
    expect(new SnapshotReader(sab).current()).toBe(EMPTY_SNAPSHOT);
  });

  it('refuses a buffer that is not a snapshot buffer', () => {
    expectError(() => new SnapshotReader(new SharedArrayBuffer(64)), 'SLUICE_SNAPSHOT_CORRUPT', 'bad magic');
    expectError(() => new SnapshotWriter(new SharedArrayBuffer(64)), 'SLUICE_SNAPSHOT_CORRUPT', 'bad magic');
  });
});
