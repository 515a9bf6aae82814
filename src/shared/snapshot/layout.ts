/**
 * Layout of the snapshot SharedArrayBuffer: an Int32 header followed by two data slots.
 *
 *   byte 0                    HEADER_BYTES          HEADER_BYTES + capacity
 *   | header (8 × Int32)      | slot 0 (capacity)   | slot 1 (capacity) |
 *
 * What must stay true:
 * - Every header cell is read and written only through `Atomics` (the seqlock protocol in
 *   `controlplane/snapshot-writer.ts` and `reader.ts` relies on their sequential consistency).
 * - Slot bytes are accessed as Int32 words through `Atomics` too (see the writer's comment
 *   for why), so the capacity is a multiple of 4 and each slot starts 4-byte aligned.
 * - SEQ is even when no publish is in progress. VERSION is 0 until the first publish, and
 *   then the version of the snapshot encoded in slot ACTIVE_SLOT (LENGTH_<slot> bytes).
 * - Changing any offset, the magic or the meaning of a cell means bumping
 *   SNAPSHOT_LAYOUT_VERSION, so a mismatched reader refuses the buffer instead of misreading it.
 */
import { SluiceError } from '../errors.ts';

/** Header cell indexes (Int32Array indexes, not byte offsets). */
export const MAGIC = 0;
export const LAYOUT_VERSION = 1;
/** Seqlock counter: odd while the writer is switching slots. Wraps at 2^32; only parity and equality matter. */
export const SEQ = 2;
/** Version of the snapshot in the active slot; 0 = nothing published yet. */
export const VERSION = 3;
/** 0 or 1: the slot readers should copy. */
export const ACTIVE_SLOT = 4;
/** Encoded byte length of slot 0 / slot 1. */
export const LENGTH_0 = 5;
export const LENGTH_1 = 6;
/** Bytes per slot, fixed at creation. */
export const SLOT_CAPACITY = 7;

export const HEADER_CELLS = 8;
export const HEADER_BYTES = HEADER_CELLS * Int32Array.BYTES_PER_ELEMENT;

/** 'SLCE' in ASCII: tells a snapshot buffer from any other SharedArrayBuffer handed over by mistake. */
export const SNAPSHOT_MAGIC = 0x534c4345;
export const SNAPSHOT_LAYOUT_VERSION = 1;

export const DEFAULT_SLOT_CAPACITY = 8 * 1024 * 1024;
/** LENGTH cells are Int32; 1 GiB per slot keeps every byte count well inside that range. */
export const MAX_SLOT_CAPACITY = 1024 * 1024 * 1024;
/**
 * Slot bytes set aside per backend slot. Measured encoded sizes (codec.ts, a 1,000-backend
 * cluster): 261 bytes a backend addressed by IP without checks, 299 with a first-probe
 * failure reason, 344 with a 31-character SRV host name; 512 leaves room for longer names
 * and reasons, and 16,384 × 512 is the 8 MiB default.
 */
export const SNAPSHOT_BYTES_PER_BACKEND = 512;

/**
 * The slot capacity for `backendSlots` backends (`capacity.backends`): never below the
 * default, which also holds listeners' acls. Sized once at start-up rather than handing a
 * larger buffer over later (docs/reload.md): a slot's pages are touched only as far as
 * snapshots reach, so the headroom costs address space, not memory.
 */
export function slotCapacityFor(backendSlots: number): number {
  return Math.min(MAX_SLOT_CAPACITY, Math.max(DEFAULT_SLOT_CAPACITY, backendSlots * SNAPSHOT_BYTES_PER_BACKEND));
}

export type SlotIndex = 0 | 1;

export interface SnapshotBufferView {
  readonly header: Int32Array;
  /** Byte views of the two slots (for inspection; the protocol goes through `words`). */
  readonly slots: readonly [Uint8Array, Uint8Array];
  /** Int32 views of the same two slots, for word-wise `Atomics` access. */
  readonly words: readonly [Int32Array, Int32Array];
  /** Bytes per slot. */
  readonly capacity: number;
}

/** Allocates and initialises a buffer with nothing published (version 0, slot 0 active, empty). */
export function createSnapshotBuffer(slotCapacityBytes: number = DEFAULT_SLOT_CAPACITY): SharedArrayBuffer {
  if (!isValidCapacity(slotCapacityBytes)) {
    throw new RangeError(
      `snapshot slot capacity must be a positive multiple of 4 up to ${MAX_SLOT_CAPACITY} bytes, got ${slotCapacityBytes}`,
    );
  }
  const sab = new SharedArrayBuffer(HEADER_BYTES + 2 * slotCapacityBytes);
  const header = new Int32Array(sab, 0, HEADER_CELLS);
  // Not shared with anyone yet, but the header is Atomics-only everywhere, so here too.
  Atomics.store(header, MAGIC, SNAPSHOT_MAGIC);
  Atomics.store(header, LAYOUT_VERSION, SNAPSHOT_LAYOUT_VERSION);
  Atomics.store(header, SLOT_CAPACITY, slotCapacityBytes);
  return sab;
}

/** Validates the buffer's identity and geometry and returns typed views over it. */
export function openSnapshotBuffer(sab: SharedArrayBuffer): SnapshotBufferView {
  if (!(sab instanceof SharedArrayBuffer) || sab.byteLength < HEADER_BYTES) {
    throw corrupt('not a snapshot buffer (not a SharedArrayBuffer or shorter than the header)');
  }
  const header = new Int32Array(sab, 0, HEADER_CELLS);
  const magic = Atomics.load(header, MAGIC);
  if (magic !== SNAPSHOT_MAGIC) {
    throw corrupt(`bad magic 0x${(magic >>> 0).toString(16)} (expected 0x${SNAPSHOT_MAGIC.toString(16)})`);
  }
  const layout = Atomics.load(header, LAYOUT_VERSION);
  if (layout !== SNAPSHOT_LAYOUT_VERSION) {
    throw corrupt(`layout version ${layout}, this build reads ${SNAPSHOT_LAYOUT_VERSION}`);
  }
  const capacity = Atomics.load(header, SLOT_CAPACITY);
  if (!isValidCapacity(capacity) || sab.byteLength !== HEADER_BYTES + 2 * capacity) {
    throw corrupt(`slot capacity ${capacity} does not match a buffer of ${sab.byteLength} bytes`);
  }
  const offsets = [HEADER_BYTES, HEADER_BYTES + capacity] as const;
  const wordCount = capacity / Int32Array.BYTES_PER_ELEMENT;
  return {
    header,
    slots: [new Uint8Array(sab, offsets[0], capacity), new Uint8Array(sab, offsets[1], capacity)],
    words: [new Int32Array(sab, offsets[0], wordCount), new Int32Array(sab, offsets[1], wordCount)],
    capacity,
  };
}

/** The header cell holding the byte length of `slot`. */
export function lengthCell(slot: SlotIndex): number {
  return slot === 0 ? LENGTH_0 : LENGTH_1;
}

/** Narrows a value loaded from ACTIVE_SLOT; anything but 0 or 1 means a corrupt header. */
export function asSlotIndex(value: number): SlotIndex | undefined {
  return value === 0 || value === 1 ? value : undefined;
}

/**
 * Copies the first `byteLength` bytes of a slot out, one `Atomics.load` per Int32 word.
 * Word-wise SeqCst loads are what let the seqlock check that follows be trusted (see
 * `controlplane/snapshot-writer.ts`). Cost: one pass over ⌈byteLength / 4⌉ words, paid only
 * when the snapshot version moved. The returned bytes are private (not shared) memory.
 */
export function copySlot(view: SnapshotBufferView, slot: SlotIndex, byteLength: number): Uint8Array {
  const source = view.words[slot];
  const out = new Int32Array(Math.ceil(byteLength / Int32Array.BYTES_PER_ELEMENT));
  for (let i = 0; i < out.length; i++) {
    out[i] = Atomics.load(source, i);
  }
  return new Uint8Array(out.buffer, 0, byteLength);
}

function isValidCapacity(bytes: number): boolean {
  return Number.isInteger(bytes) && bytes > 0 && bytes <= MAX_SLOT_CAPACITY && bytes % 4 === 0;
}

function corrupt(detail: string): SluiceError {
  return new SluiceError('SLUICE_SNAPSHOT_CORRUPT', `snapshot buffer: ${detail}`);
}
