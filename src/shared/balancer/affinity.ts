/**
 * Sticky sessions: a bounded client → backend table in shared memory, read and written by
 * every data-plane worker without a lock, so a client keeps its backend whichever worker
 * accepts its next connection.
 *
 * An entry is five Int32 cells: seq, hash₁, hash₂, backend slot, expiry (seconds after the
 * table's epoch). A client is identified by two independent 32-bit hashes of its address
 * (a 64-bit key: two clients collide with probability ~n²/2⁶⁵, about 3 × 10⁻¹⁰ for 100,000).
 * An entry lives at hash₁ mod capacity or one of the PROBES positions after it.
 *
 * Concurrency: each entry carries a sequence number, even when stable. A writer claims an
 * entry with compareExchange(seq, even → odd), writes the fields and stores seq + 2; a reader
 * copies the fields between two loads of seq and keeps the copy only if seq was even and
 * unchanged. A writer that loses the compare-and-swap gives up (affinity is best effort under
 * contention; the connection is still balanced normally), so nothing ever waits. A reader
 * that finds an entry mid-write re-reads it a bounded number of times. A worker stopped
 * between claim and release leaves one entry unusable (bounded by worker crashes). Callers
 * refresh an entry at most about once a second per client, which keeps writes rare.
 *
 * Guarantees: a remembered client maps to its backend until the entry expires (ttl after its
 * last connection) or is evicted; the table never holds more than `capacity` entries (the
 * configured max_entries), and when a client's probe window is full the entry closest to
 * expiry makes room. Two workers remembering the same new client at the same instant may
 * write two entries; lookups then agree on the first in probe order.
 * Cost: lookup and remember read at most PROBES entries (5 atomic loads each); no allocation.
 * Memory: 20 bytes per entry (2 MB for 100,000), shared by all workers.
 */
import { AFFINITY_OFFSET, AFFINITY_STRIDE } from '../cluster-state.ts';

export const PROBES = 8;
/**
 * Seed of the second client hash (hash₂) that, with the plain address hash (hash₁), keys the
 * table. Shared by the TCP and UDP paths, so a client keeps one backend over both protocols.
 */
export const AFFINITY_SEED = 0x5bd1e995;
/** Re-reads of an entry caught mid-write before it counts as a miss. */
const READ_ATTEMPTS = 64;

const SEQ = 0;
const HASH1 = 1;
const HASH2 = 2;
const SLOT = 3;
const EXPIRES = 4;

export class AffinityTable {
  private readonly cells: Int32Array;
  readonly capacity: number;
  private readonly epochSeconds: number;
  /** Expiry of the entry the last successful lookup found. */
  foundExpires = 0;

  constructor(cells: Int32Array, capacity: number, epochSeconds: number) {
    if (cells.length < AFFINITY_OFFSET + capacity * AFFINITY_STRIDE) throw new RangeError('affinity table outgrows its buffer');
    this.cells = cells;
    this.capacity = capacity;
    this.epochSeconds = epochSeconds;
  }

  /** The table's clock: whole seconds after its epoch. */
  now(nowMs: number): number {
    return Math.floor(nowMs / 1000) - this.epochSeconds;
  }

  /**
   * The backend slot remembered for the client, or -1. On a hit, `foundExpires` holds the
   * entry's expiry (so the caller refreshes it only when it is worth a write).
   */
  lookup(hash1: number, hash2: number, now: number): number {
    const cells = this.cells;
    const h1 = hash1 | 0;
    const h2 = hash2 | 0;
    for (let probe = 0; probe < PROBES && probe < this.capacity; probe++) {
      const base = this.entry(hash1, probe);
      // A write takes a handful of stores: re-read a few times rather than miss the client
      // because another worker is refreshing its entry at this instant. Bounded: a writer
      // stopped mid-write costs a miss, never a wait.
      for (let attempt = 0; attempt < READ_ATTEMPTS; attempt++) {
        const seq = Atomics.load(cells, base + SEQ);
        if ((seq & 1) !== 0) continue;
        const k1 = Atomics.load(cells, base + HASH1);
        const k2 = Atomics.load(cells, base + HASH2);
        const slot = Atomics.load(cells, base + SLOT);
        const expires = Atomics.load(cells, base + EXPIRES);
        if (Atomics.load(cells, base + SEQ) !== seq) continue;
        if (k1 === h1 && k2 === h2 && expires > now) {
          this.foundExpires = expires;
          return slot;
        }
        break;
      }
    }
    return -1;
  }

  /**
   * Remember (or refresh) the client's backend until `expires`. Returns false when every
   * candidate entry was being written by another worker at that instant.
   */
  remember(hash1: number, hash2: number, slot: number, expires: number, now: number): boolean {
    const cells = this.cells;
    const h1 = hash1 | 0;
    const h2 = hash2 | 0;
    // Prefer the client's own entry, then a free or expired one, then the one closest to expiry.
    let own = -1;
    let free = -1;
    let oldest = -1;
    let oldestExpiry = Infinity;
    for (let probe = 0; probe < PROBES && probe < this.capacity; probe++) {
      const base = this.entry(hash1, probe);
      if ((Atomics.load(cells, base + SEQ) & 1) !== 0) continue;
      const expiry = Atomics.load(cells, base + EXPIRES);
      if (Atomics.load(cells, base + HASH1) === h1 && Atomics.load(cells, base + HASH2) === h2) {
        own = base;
        break;
      }
      if (expiry <= now) {
        if (free < 0) free = base;
      } else if (expiry < oldestExpiry) {
        oldest = base;
        oldestExpiry = expiry;
      }
    }
    const target = own >= 0 ? own : free >= 0 ? free : oldest;
    if (target < 0) return false;
    const seq = Atomics.load(cells, target + SEQ);
    if ((seq & 1) !== 0 || Atomics.compareExchange(cells, target + SEQ, seq, seq + 1) !== seq) return false;
    Atomics.store(cells, target + HASH1, h1);
    Atomics.store(cells, target + HASH2, h2);
    Atomics.store(cells, target + SLOT, slot);
    Atomics.store(cells, target + EXPIRES, expires);
    Atomics.store(cells, target + SEQ, seq + 2);
    return true;
  }

  /** Live entries (a full scan: for the admin API and tests, not the hot path). */
  size(now: number): number {
    let live = 0;
    for (let i = 0; i < this.capacity; i++) {
      const base = AFFINITY_OFFSET + i * AFFINITY_STRIDE;
      if (Atomics.load(this.cells, base + EXPIRES) > now) live++;
    }
    return live;
  }

  private entry(hash1: number, probe: number): number {
    return AFFINITY_OFFSET + (((hash1 >>> 0) + probe) % this.capacity) * AFFINITY_STRIDE;
  }
}
