/**
 * Reads the current snapshot from the shared buffer. One reader per thread (data-plane
 * workers, the main thread); the protocol and its memory-model argument are in
 * `controlplane/snapshot-writer.ts`.
 *
 * Cost: `current()` is on the accept path. While the version is unchanged it is one
 * `Atomics.load` and a compare and returns the cached object: no allocation, ~15 ns a call
 * (measured in a loop). When the version moved it copies the active slot under the seqlock
 * and decodes it (see codec.ts for that cost), once per publish.
 *
 * What must stay true:
 * - Never returns a torn snapshot: a copy is kept only if SEQ was even and unchanged
 *   around it, and the decoded version must equal the header's.
 * - Never goes back in version: an older snapshot than the cached one is ignored.
 * - Never blocks: the main thread cannot `Atomics.wait`, so a reader spins, and gives up
 *   with SLUICE_SNAPSHOT_CORRUPT if the writer appears stuck mid-publish.
 */
import { SluiceError } from '../errors.ts';
import { decodeSnapshot } from './codec.ts';
import { ACTIVE_SLOT, SEQ, VERSION, asSlotIndex, copySlot, lengthCell, openSnapshotBuffer } from './layout.ts';
import type { SnapshotBufferView } from './layout.ts';
import type { Snapshot } from './types.ts';

/** What readers see before the first publish. */
export const EMPTY_SNAPSHOT: Snapshot = Object.freeze({
  version: 0,
  clusters: Object.freeze([]),
  listeners: Object.freeze([]),
});

export interface SnapshotReaderOptions {
  /**
   * How long the seqlock may keep a reader from a stable copy before it gives up. The
   * writer's odd window is a handful of stores, so only a stopped writer gets near this.
   * A time bound rather than a spin count: spins per millisecond vary ~100× with CPU and
   * cache contention, and a writer merely preempted inside its window must not trip it.
   */
  readonly stuckAfterMs?: number;
  /**
   * Called once per version this reader takes in (decodes and caches), right after it did:
   * the data plane times snapshot propagation with it. Must not throw; off the hot path.
   */
  readonly onTakenIn?: (version: number) => void;
}

const DEFAULT_STUCK_AFTER_MS = 1000;
/** Read the clock only every this many attempts, so a normal retry costs no syscall. */
const ATTEMPTS_PER_CLOCK_CHECK = 1024;

/** A copy taken under the seqlock, or why the header it was taken under is invalid. */
type SlotRead = { readonly version: number; readonly bytes: Uint8Array | undefined } | string;

export class SnapshotReader {
  readonly #view: SnapshotBufferView;
  readonly #header: Int32Array;
  readonly #stuckAfterMs: number;
  readonly #onTakenIn: ((version: number) => void) | undefined;
  /** The header VERSION that #cached answers for (can be below #cached.version, see #refresh). */
  #seenVersion = 0;
  #cached: Snapshot = EMPTY_SNAPSHOT;
  #retries = 0;

  constructor(sab: SharedArrayBuffer, options: SnapshotReaderOptions = {}) {
    this.#view = openSnapshotBuffer(sab);
    this.#header = this.#view.header;
    this.#stuckAfterMs = options.stuckAfterMs ?? DEFAULT_STUCK_AFTER_MS;
    this.#onTakenIn = options.onTakenIn;
  }

  /** The current snapshot. Hot path: keep it one atomic load and a compare. */
  current(): Snapshot {
    if (Atomics.load(this.#header, VERSION) === this.#seenVersion) return this.#cached;
    return this.#refresh();
  }

  /** The published version, for observers (one atomic load; may be ahead of `current()`). */
  version(): number {
    return Atomics.load(this.#header, VERSION);
  }

  /**
   * Resolves once the published version differs from `seen` (at once if it already does).
   * Uses `Atomics.waitAsync` on the version cell the writer notifies, so a worker learns of a
   * publish without polling and without a message; a pending wait holds no libuv handle and
   * does not keep the thread alive. Never on the accept path.
   */
  async changedFrom(seen: number): Promise<void> {
    const waiting = Atomics.waitAsync(this.#header, VERSION, seen);
    if (waiting.async) await waiting.value;
  }

  /** Copies discarded because the writer moved during them (observability and tests). */
  get retries(): number {
    return this.#retries;
  }

  #refresh(): Snapshot {
    const read = this.#readStable();
    if (read.version > this.#cached.version) {
      // read.version > 0 here, so the slot holds bytes.
      const snapshot = decodeSnapshot(read.bytes ?? new Uint8Array(0));
      if (snapshot.version !== read.version) {
        throw corrupt(`header version ${read.version} but the active slot holds version ${snapshot.version}`);
      }
      this.#cached = snapshot;
      this.#onTakenIn?.(snapshot.version);
    }
    // Remember the header version even when it went backwards (kept the newer cache), so
    // the hot path stays a compare instead of re-reading that old snapshot on every call.
    this.#seenVersion = read.version;
    return this.#cached;
  }

  #readStable(): Exclude<SlotRead, string> {
    const header = this.#header;
    const startedAt = performance.now();
    for (let attempt = 1; ; attempt++) {
      const seq = Atomics.load(header, SEQ);
      if ((seq & 1) === 0) {
        const read = this.#copyActive();
        if (Atomics.load(header, SEQ) === seq) {
          if (typeof read === 'string') throw corrupt(read);
          return read;
        }
        this.#retries++;
      }
      if (attempt % ATTEMPTS_PER_CLOCK_CHECK === 0 && performance.now() - startedAt > this.#stuckAfterMs) {
        throw corrupt(
          `the writer appears stuck: no stable read after ${attempt} attempts in ${this.#stuckAfterMs} ms ` +
            `(seqlock ${Atomics.load(header, SEQ)}, odd = mid-publish)`,
        );
      }
    }
  }

  /** Copies the active slot; validity of what it saw is judged only once SEQ proves it stable. */
  #copyActive(): SlotRead {
    const header = this.#header;
    const version = Atomics.load(header, VERSION);
    if (version === 0) return { version, bytes: undefined };
    const rawSlot = Atomics.load(header, ACTIVE_SLOT);
    const slot = asSlotIndex(rawSlot);
    if (slot === undefined) return `active slot is ${rawSlot}, expected 0 or 1`;
    const length = Atomics.load(header, lengthCell(slot));
    if (length <= 0 || length > this.#view.capacity) {
      return `slot ${slot} length ${length} is outside 1..${this.#view.capacity}`;
    }
    return { version, bytes: copySlot(this.#view, slot, length) };
  }
}

function corrupt(detail: string): SluiceError {
  return new SluiceError('SLUICE_SNAPSHOT_CORRUPT', `snapshot buffer: ${detail}`);
}
