/**
 * The only code that writes the snapshot SharedArrayBuffer (single writer, control-plane
 * worker). Readers are `shared/snapshot/reader.ts`, in every data-plane worker and the main
 * thread; they never write and never wait.
 *
 * Protocol (double slot + seqlock, header layout in `shared/snapshot/layout.ts`):
 *
 *   1. encode version N+1 into the INACTIVE slot          (SEQ still even: readers use the other slot)
 *   2. SEQ += 1                                            (odd: "switching")
 *   3. LENGTH[inactive] = n; ACTIVE_SLOT = inactive; VERSION = N+1
 *   4. SEQ += 1                                            (even again)
 *   5. Atomics.notify(VERSION)
 *
 * A reader loads SEQ (s, retrying while odd), loads VERSION, ACTIVE_SLOT and the length,
 * copies the slot, and loads SEQ again; it keeps the copy only if SEQ is still s.
 *
 * Memory model. Every header cell and every slot word is accessed through Atomics, which
 * are sequentially consistent; an Atomics load that reads the value of an Atomics store
 * synchronizes with it, so everything before the store (in the writer) happens-before
 * everything after the load (in the reader). That is the only ordering we rely on.
 *
 * Why the copy is never torn, including the case where the reader copies slot A while the
 * writer fills slot B and then comes back to overwrite A:
 * - The writer never touches the active slot. To write into A again it must first have made
 *   B active, i.e. finished a whole publish, whose SEQ stores (s+1, s+2) come before its
 *   first store into A in the writer's program order. A reader that read SEQ = s while A was
 *   active is therefore racing only with stores that follow a SEQ store newer than s.
 * - If any word the reader copied came from such a store, its load synchronized with that
 *   store, so the newer SEQ store happens-before the reader's second SEQ load, which then
 *   cannot return s (SEQ only moves forward): the reader retries.
 * - If no copied word came from such a store, every word is the one published when A became
 *   active: those stores happen-before the SEQ store the reader's first load saw, so the
 *   reader cannot see anything older either. The copy is exactly what was active at SEQ = s.
 * - The same argument covers the header loads (VERSION, ACTIVE_SLOT, LENGTH): a value from a
 *   later publish implies a later SEQ store happened-before the second SEQ load.
 * This is why slot bytes go through Atomics word by word instead of a plain memcpy: a plain
 * read that happens to observe a racing plain write creates no happens-before edge in the
 * ECMAScript memory model (and on weakly ordered CPUs the copy's loads may be satisfied
 * after the acquire load of SEQ), so the second SEQ check would prove nothing. The cost is
 * one SeqCst store per 4 bytes per publish and one SeqCst load per 4 bytes per reader per
 * version change (each ~4 ms for a 1.4 MB, 10,000-backend snapshot; measured x86-64), paid
 * once per publish, never per accepted connection.
 *
 * What must stay true:
 * - One writer at a time. A restarted control-plane worker may construct a new writer over
 *   the same buffer only after the old one has stopped (it then finishes any publish the old
 *   one was interrupted in and continues from the stored version, never from 1).
 * - Versions strictly increase by one per publish; VERSION always names the active slot's
 *   content outside the odd window.
 */
import { SluiceError } from '../shared/errors.ts';
import { decodeSnapshot, SnapshotEncoder } from '../shared/snapshot/codec.ts';
import {
  ACTIVE_SLOT,
  SEQ,
  VERSION,
  asSlotIndex,
  copySlot,
  lengthCell,
  openSnapshotBuffer,
} from '../shared/snapshot/layout.ts';
import type { SlotIndex, SnapshotBufferView } from '../shared/snapshot/layout.ts';
import type { Snapshot } from '../shared/snapshot/types.ts';

/** VERSION is an Int32 cell. At 100 publishes per second this lasts ~8 months of uptime. */
const MAX_VERSION = 0x7fffffff;

export class SnapshotWriter {
  readonly #view: SnapshotBufferView;
  /** Keeps unchanged clusters' bytes between publishes (codec.ts). */
  readonly #encoder = new SnapshotEncoder();
  /** What this writer last stored in each slot (the encoder's buffers, never changed after). */
  readonly #held: [Int32Array | undefined, Int32Array | undefined] = [undefined, undefined];

  /** Opens `sab` (created by `createSnapshotBuffer`), finishing a publish a previous writer left half done. */
  constructor(sab: SharedArrayBuffer) {
    this.#view = openSnapshotBuffer(sab);
    this.#finishInterruptedPublish();
  }

  /** Bytes one slot holds: the largest encoded snapshot this writer can publish. */
  capacity(): number {
    return this.#view.capacity;
  }

  /**
   * Bytes `content` would encode to (the version counted at its widest), through the
   * publishing encoder: clusters the last publish holds cost nothing to measure, and the
   * ones measured here are not encoded again when they are published.
   */
  encodedLength(content: Omit<Snapshot, 'version'>): number {
    return this.#encoder.byteLength({ version: MAX_VERSION, clusters: content.clusters, listeners: content.listeners });
  }

  /** The last published version (0 = nothing published yet). */
  version(): number {
    return Atomics.load(this.#view.header, VERSION);
  }

  /**
   * Publishes `content` as the next version and returns that version. Throws (and changes
   * nothing) when the content is malformed (SLUICE_SNAPSHOT_CORRUPT) or its encoding does
   * not fit a slot (SLUICE_SNAPSHOT_TOO_LARGE).
   */
  publish(content: Omit<Snapshot, 'version'>): number {
    const header = this.#view.header;
    const version = this.version() + 1;
    if (version > MAX_VERSION) {
      throw new RangeError(`snapshot version space exhausted at ${MAX_VERSION}`);
    }
    const bytes = this.#encoder.encode({ version, clusters: content.clusters, listeners: content.listeners });
    if (bytes.length > this.#view.capacity) {
      throw new SluiceError(
        'SLUICE_SNAPSHOT_TOO_LARGE',
        `snapshot version ${version} encodes to ${bytes.length} bytes but a slot holds ${this.#view.capacity} bytes`,
      );
    }
    const target: SlotIndex = this.#activeSlot() === 0 ? 1 : 0;
    this.#held[target] = writeWords(this.#view.words[target], bytes, this.#held[target]).words;

    Atomics.add(header, SEQ, 1);
    Atomics.store(header, lengthCell(target), bytes.length);
    Atomics.store(header, ACTIVE_SLOT, target);
    Atomics.store(header, VERSION, version);
    Atomics.add(header, SEQ, 1);

    Atomics.notify(header, VERSION);
    return version;
  }

  #activeSlot(): SlotIndex {
    const raw = Atomics.load(this.#view.header, ACTIVE_SLOT);
    const slot = asSlotIndex(raw);
    if (slot === undefined) {
      throw new SluiceError('SLUICE_SNAPSHOT_CORRUPT', `snapshot buffer: active slot is ${raw}, expected 0 or 1`);
    }
    return slot;
  }

  /**
   * A writer stopped inside the odd window (e.g. its worker was terminated) leaves SEQ odd
   * and readers spinning. Its slot bytes and LENGTH were complete before SEQ went odd, and
   * ACTIVE_SLOT flips before VERSION is stored, so the active slot always holds a whole
   * snapshot: make VERSION name it and close the window.
   */
  #finishInterruptedPublish(): void {
    const header = this.#view.header;
    if ((Atomics.load(header, SEQ) & 1) === 0) return;
    const slot = this.#activeSlot();
    const length = Atomics.load(header, lengthCell(slot));
    if (length < 0 || length > this.#view.capacity) {
      throw new SluiceError('SLUICE_SNAPSHOT_CORRUPT', `snapshot buffer: slot ${slot} length ${length} is out of range`);
    }
    // An empty active slot means the interrupted publish was the first one.
    const version = length === 0 ? 0 : decodeSnapshot(copySlot(this.#view, slot, length)).version;
    Atomics.store(header, VERSION, version);
    Atomics.add(header, SEQ, 1);
    Atomics.notify(header, VERSION);
  }
}

/**
 * Stores `bytes` into a slot one SeqCst word at a time (why: see the file comment), skipping
 * each word the slot already holds. This writer is the slot's only writer, so a word it loads
 * is the one it stored there last (two publishes ago); a word left alone is, for a reader,
 * exactly a word of that older publish, which is what the torn-copy argument above assumes
 * of every word no newer store reached. Why skip: a SeqCst store costs an exclusive cache
 * line and a full fence, a load on x86-64 a plain read; when a publish changes a few bytes
 * of a large snapshot (a weight of equal width) almost every store goes. Returns the words
 * stored.
 */
export function writeWords(target: Int32Array, bytes: Uint8Array, held?: Int32Array): { words: Int32Array; stored: number } {
  const wordCount = Math.ceil(bytes.length / Int32Array.BYTES_PER_ELEMENT);
  const aligned = bytes.byteOffset === 0 && bytes.buffer.byteLength >= wordCount * Int32Array.BYTES_PER_ELEMENT;
  const source = aligned ? bytes : copyPadded(bytes, wordCount);
  const words = new Int32Array(source.buffer, 0, wordCount);
  // `held`: a private copy of what this writer stored in the slot last, compared with plain
  // reads (~10× cheaper than a word-wise Atomics.load at 100,000 backends); without one (a
  // new writer over a used buffer) the slot itself is read.
  const known = held ?? target;
  const knownWords = Math.min(known.length, wordCount);
  let stored = 0;
  for (let i = 0; i < wordCount; i++) {
    const word = words[i] as number;
    if (i < knownWords && (held === undefined ? Atomics.load(target, i) : known[i]) === word) continue;
    Atomics.store(target, i, word);
    stored++;
  }
  return { words, stored };
}

function copyPadded(bytes: Uint8Array, wordCount: number): Uint8Array {
  const out = new Uint8Array(wordCount * Int32Array.BYTES_PER_ELEMENT);
  out.set(bytes);
  return out;
}
