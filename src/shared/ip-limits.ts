/**
 * Per-source-IP connection counts and rate buckets, plus per-listener connection totals,
 * in one SharedArrayBuffer that every data-plane worker updates with Atomics. Because the
 * counts are global, a client cannot multiply its allowance by landing on several workers.
 *
 * Table: open addressing, linear probing over at most PROBE_LIMIT slots from a seeded hash
 * of (listener slot, address). Entry (8 × Int32):
 *
 *   STATE    EMPTY (never used) | LIVE | BUSY (being rewritten by the lock holder)
 *   PINS     connections holding this entry (+ transient pins of lookups in progress)
 *   TAT      rate bucket as GCRA "theoretical arrival time", in ticks (see below)
 *   LISTENER listener counter slot of the key (-1 = a key no lookup can match)
 *   A0..A3   the client address as four words (ip-address.ts; IPv4 mapped)
 *
 * Protocol (every cell through Atomics, which are sequentially consistent):
 * - Lookups take no lock. A lookup that finds its key pins the entry (PINS += 1), then
 *   re-reads STATE and the key: if the entry was rewritten in between it unpins and moves
 *   on. A pinned entry is never rewritten, so the key it checked stays its key.
 * - Only the holder of the table lock (a CAS on one header cell) inserts or rewrites keys,
 *   and it re-runs the lookup first, so a key is never in the table twice. To reuse a LIVE
 *   entry it stores BUSY, then checks PINS: a lookup that pinned before that check makes it
 *   back off; one that pins after it sees BUSY or the new key and unpins. Entries never
 *   return to EMPTY, so EMPTY ends every probe sequence.
 * - An entry is reusable ("expired") when nothing pins it and its bucket is full again: it
 *   then holds no information a fresh entry would not, so expiry loses no accuracy. Expiry
 *   is lazy: entries are reused by inserts that need the slot, never swept.
 * - Each worker also counts the pins it holds per entry (and connections per listener) in
 *   its own row, so when a worker dies the supervisor subtracts what it held
 *   (`releaseWorker`): the dead worker's sockets died with it, and so must their counts.
 *
 * Waiting for the lock or a BUSY slot spins briefly, then sleeps (`Atomics.wait`, woken by
 * the holder's notify) for at most DEFAULT_WAIT_LIMIT_MS. Why sleep rather than give up
 * after the spins: on a loaded machine the holder can be preempted inside its few
 * instructions for a whole scheduler slice (milliseconds), and giving up admitted the
 * connection untracked, so a client's first connections racing over two workers could pass
 * its limit (seen in CI).
 *
 * When the table is full (every slot of the probe window pinned or refilling) or the lock
 * stays taken past the wait limit (its holder died), the connection is admitted untracked:
 * FAIL OPEN. Why: the table fills only when more distinct clients are active than it has
 * slots, and that is what a botnet or one IPv6 /64 can produce at will. Failing closed would
 * let such an attacker lock every new legitimate client out by filling the table; failing
 * open only suspends per-IP fairness for the overflow, while `max_connections` (a
 * per-listener total, not stored in the table) keeps bounding what reaches the backends. The
 * table-full outcome is counted, so an operator sees it. The hash is seeded at random per
 * process, so an attacker cannot aim addresses at one probe window of a victim.
 *
 * Time is in ticks of 10 µs held in Int32 and compared with wrapping arithmetic
 * (`(a - b) | 0`), so it works across the 2^32 wrap (every ~11.9 h). A bucket's TAT is never
 * legitimately more than burst × interval (bounded by MAX_TOLERANCE_TICKS) ahead of now; a
 * TAT that looks further ahead, or behind, is stale and reads as a full bucket.
 */

export const TICKS_PER_SECOND = 100_000;
/** The longest burst tolerance a rate may have: 1 hour, so TAT stays far from the wrap. */
export const MAX_TOLERANCE_TICKS = 3600 * TICKS_PER_SECOND;

export const DEFAULT_IP_TABLE_CAPACITY = 65_536;
/** Slots a lookup or insert walks from its hash position. */
const PROBE_LIMIT = 32;
/** Checks of a contended cell before a waiter starts sleeping. */
const SPIN_LIMIT = 1_000;
/**
 * The longest wait for the lock or a BUSY slot before failing open: well past a scheduler
 * slice, so only a holder that died (until the supervisor frees what it held) outlasts it.
 */
export const DEFAULT_WAIT_LIMIT_MS = 50;
/** Re-checks of a slot whose key was rewritten between a lookup's pin and its re-read. */
const REWRITE_RETRIES = 64;
/** Tries for a rate CAS under contention before refusing (the client is hammering). */
const CAS_LIMIT = 64;

// Header cells.
const LOCK = 0;
const SEED = 1;
const CAPACITY = 2;
const WORKERS = 3;
const LISTENER_SLOTS = 4;
const HEADER_WORDS = 8;

// Entry cells.
const STATE = 0;
const PINS = 1;
const TAT = 2;
const LISTENER = 3;
const ADDRESS = 4;
const ENTRY_WORDS = 8;

const EMPTY = 0;
const LIVE = 1;
const BUSY = 2;
const NO_LISTENER = -1;

/** `admitIp` outcomes below 0 (0 and above: an entry the connection now holds). */
export const Admission = {
  /** Admitted; nothing to release for the per-IP table. */
  admitted: -1,
  refusedPerIpConnections: -2,
  refusedPerIpRate: -3,
  /** Admitted untracked: the table had no free slot or its lock stayed taken (fail open). */
  admittedTableFull: -4,
} as const;

export interface IpLimitDimensions {
  readonly workers: number;
  readonly listenerSlots: number;
  /** A power of two. */
  readonly capacity: number;
}

/** What a listener's `limits` turn into (0 = that limit is off). */
export interface IpLimitPolicy {
  readonly perIpConnections: number;
  /** Ticks between connections at the steady rate; 0 = no rate limit. */
  readonly intervalTicks: number;
  /** How far ahead of now the bucket may run: (burst - 1) × interval. */
  readonly toleranceTicks: number;
}

interface Regions {
  readonly entries: number;
  readonly workerPins: number;
  readonly listenerActive: number;
  readonly workerListener: number;
  readonly words: number;
}

function regions(d: IpLimitDimensions): Regions {
  const entries = HEADER_WORDS;
  const workerPins = entries + d.capacity * ENTRY_WORDS;
  const listenerActive = workerPins + d.workers * d.capacity;
  const workerListener = listenerActive + d.listenerSlots;
  return { entries, workerPins, listenerActive, workerListener, words: workerListener + d.workers * d.listenerSlots };
}

/** A zeroed table; `seed` should be random (it keys the hash). */
export function createIpLimitBuffer(d: IpLimitDimensions, seed: number): SharedArrayBuffer {
  if (d.capacity < PROBE_LIMIT || (d.capacity & (d.capacity - 1)) !== 0) {
    throw new RangeError(`ip limit table capacity must be a power of two >= ${PROBE_LIMIT}, got ${d.capacity}`);
  }
  const buffer = new SharedArrayBuffer(regions(d).words * Int32Array.BYTES_PER_ELEMENT);
  const cells = new Int32Array(buffer);
  cells[SEED] = seed | 0;
  cells[CAPACITY] = d.capacity;
  cells[WORKERS] = d.workers;
  cells[LISTENER_SLOTS] = d.listenerSlots;
  return buffer;
}

/** Ticks for a rate of `perSecond` connections with bursts of `burst`. */
export function ratePolicy(perSecond: number, burst: number): { intervalTicks: number; toleranceTicks: number } {
  const intervalTicks = Math.max(1, Math.round(TICKS_PER_SECOND / perSecond));
  return { intervalTicks, toleranceTicks: Math.min(MAX_TOLERANCE_TICKS, (burst - 1) * intervalTicks) };
}

function mix(h: number, value: number): number {
  h = Math.imul(h ^ value, 0xcc9e2d51);
  h = (h << 15) | (h >>> 17);
  return Math.imul(h, 0x1b873593);
}

function finish(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/**
 * One thread's view of the table. Data-plane worker `worker` writes its own row of the
 * per-worker tallies; the supervisor uses a view with any worker index only for
 * `releaseWorker` and the totals.
 */
export class IpLimitTable {
  private readonly cells: Int32Array;
  private readonly capacity: number;
  private readonly mask: number;
  private readonly seed: number;
  private readonly workers: number;
  private readonly listenerSlots: number;
  private readonly regions: Regions;
  private readonly worker: number;
  private readonly owner: number;
  private readonly waitLimitMs: number;

  constructor(buffer: SharedArrayBuffer, worker: number, waitLimitMs = DEFAULT_WAIT_LIMIT_MS) {
    this.cells = new Int32Array(buffer);
    this.capacity = this.cells[CAPACITY] ?? 0;
    this.mask = this.capacity - 1;
    this.seed = this.cells[SEED] ?? 0;
    this.workers = this.cells[WORKERS] ?? 0;
    this.listenerSlots = this.cells[LISTENER_SLOTS] ?? 0;
    this.regions = regions({ workers: this.workers, listenerSlots: this.listenerSlots, capacity: this.capacity });
    if (this.cells.length < this.regions.words || worker < 0 || worker >= this.workers) {
      throw new RangeError(`not an ip limit table for worker ${worker}`);
    }
    this.worker = worker;
    this.owner = worker + 1;
    this.waitLimitMs = waitLimitMs;
  }

  // ── per-listener totals (max_connections) ──────────────────────────────────

  /** Count one more connection on a listener unless that would exceed `max`. */
  acquireListener(listenerSlot: number, max: number): boolean {
    const total = this.regions.listenerActive + listenerSlot;
    if (Atomics.add(this.cells, total, 1) >= max) {
      Atomics.sub(this.cells, total, 1);
      return false;
    }
    Atomics.add(this.cells, this.regions.workerListener + this.worker * this.listenerSlots + listenerSlot, 1);
    return true;
  }

  releaseListener(listenerSlot: number): void {
    Atomics.sub(this.cells, this.regions.listenerActive + listenerSlot, 1);
    Atomics.sub(this.cells, this.regions.workerListener + this.worker * this.listenerSlots + listenerSlot, 1);
  }

  listenerConnections(listenerSlot: number): number {
    return Atomics.load(this.cells, this.regions.listenerActive + listenerSlot);
  }

  // ── per-IP admission ───────────────────────────────────────────────────────

  /**
   * The per-IP checks for one new connection: its count against `perIpConnections`, then
   * a token from its rate bucket. Returns an entry index the connection holds (release it
   * with `releaseIp` when the connection ends) or an `Admission` code.
   */
  admitIp(listenerSlot: number, address: Int32Array, now: number, policy: IpLimitPolicy): number {
    const entry = this.pin(listenerSlot, address, now);
    if (entry < 0) return Admission.admittedTableFull;
    const base = this.entryBase(entry);
    if (policy.perIpConnections > 0 && Atomics.load(this.cells, base + PINS) > policy.perIpConnections) {
      this.unpin(entry);
      return Admission.refusedPerIpConnections;
    }
    if (policy.intervalTicks > 0 && !this.takeToken(base, now, policy.intervalTicks, policy.toleranceTicks)) {
      this.unpin(entry);
      return Admission.refusedPerIpRate;
    }
    if (policy.perIpConnections > 0) return entry;
    this.unpin(entry);
    return Admission.admitted;
  }

  releaseIp(entry: number): void {
    this.unpin(entry);
  }

  /** Connections holding the entry of (listener, address), for tests and the admin API. */
  connectionsOf(listenerSlot: number, address: Int32Array): number {
    const entry = this.find(listenerSlot, address);
    if (entry < 0) return 0;
    const pins = Atomics.load(this.cells, this.entryBase(entry) + PINS) - 1;
    this.unpin(entry);
    return pins;
  }

  /** Entries holding this key: 0 or 1 if the table is right. O(capacity); for tests and diagnostics. */
  copiesOf(listenerSlot: number, address: Int32Array): number {
    let copies = 0;
    for (let entry = 0; entry < this.capacity; entry++) {
      const base = this.entryBase(entry);
      if (Atomics.load(this.cells, base + STATE) === LIVE && this.keyMatches(base, listenerSlot, address)) copies++;
    }
    return copies;
  }

  /**
   * After worker `dead` exited: give back every pin and listener count it held, and undo a
   * rewrite it was interrupted in. Only the supervisor calls this, once the thread is gone.
   */
  releaseWorker(dead: number): void {
    const c = this.cells;
    const pinsRow = this.regions.workerPins + dead * this.capacity;
    for (let entry = 0; entry < this.capacity; entry++) {
      const held = Atomics.exchange(c, pinsRow + entry, 0);
      if (held !== 0) Atomics.sub(c, this.entryBase(entry) + PINS, held);
    }
    const listenerRow = this.regions.workerListener + dead * this.listenerSlots;
    for (let slot = 0; slot < this.listenerSlots; slot++) {
      const held = Atomics.exchange(c, listenerRow + slot, 0);
      if (held !== 0) Atomics.sub(c, this.regions.listenerActive + slot, held);
    }
    if (Atomics.load(c, LOCK) !== dead + 1) return;
    // It died holding the lock: any BUSY entry is its half-written key. Make it a key no
    // lookup matches, reusable at once, and free the lock.
    for (let entry = 0; entry < this.capacity; entry++) {
      const base = this.entryBase(entry);
      if (Atomics.load(c, base + STATE) !== BUSY) continue;
      Atomics.store(c, base + LISTENER, NO_LISTENER);
      Atomics.store(c, base + TAT, 0);
      this.storeLive(base);
    }
    Atomics.compareExchange(c, LOCK, dead + 1, 0);
    Atomics.notify(c, LOCK);
  }

  // ── internals ──────────────────────────────────────────────────────────────

  private entryBase(entry: number): number {
    return this.regions.entries + entry * ENTRY_WORDS;
  }

  private hash(listenerSlot: number, a: Int32Array): number {
    let h = mix(this.seed, listenerSlot);
    h = mix(h, a[0] ?? 0);
    h = mix(h, a[1] ?? 0);
    h = mix(h, a[2] ?? 0);
    h = mix(h, a[3] ?? 0);
    return finish(h) & this.mask;
  }

  private keyMatches(base: number, listenerSlot: number, a: Int32Array): boolean {
    const c = this.cells;
    return (
      Atomics.load(c, base + LISTENER) === listenerSlot &&
      Atomics.load(c, base + ADDRESS) === a[0] &&
      Atomics.load(c, base + ADDRESS + 1) === a[1] &&
      Atomics.load(c, base + ADDRESS + 2) === a[2] &&
      Atomics.load(c, base + ADDRESS + 3) === a[3]
    );
  }

  private addPin(entry: number, by: number): void {
    Atomics.add(this.cells, this.entryBase(entry) + PINS, by);
    Atomics.add(this.cells, this.regions.workerPins + this.worker * this.capacity + entry, by);
  }

  private unpin(entry: number): void {
    this.addPin(entry, -1);
  }

  /** The entry of the key, pinned; -1 when absent (or only BUSY slots stood in the way too long). */
  private find(listenerSlot: number, a: Int32Array): number {
    const c = this.cells;
    const start = this.hash(listenerSlot, a);
    for (let probe = 0; probe < PROBE_LIMIT; probe++) {
      const entry = (start + probe) & this.mask;
      const base = this.entryBase(entry);
      for (let retry = 0; retry < REWRITE_RETRIES; retry++) {
        const state = Atomics.load(c, base + STATE);
        if (state === EMPTY) return -1;
        if (state === BUSY) {
          if (this.waitWhile(base + STATE, BUSY)) continue;
          break;
        }
        if (!this.keyMatches(base, listenerSlot, a)) break;
        this.addPin(entry, 1);
        if (Atomics.load(c, base + STATE) === LIVE && this.keyMatches(base, listenerSlot, a)) return entry;
        this.unpin(entry); // rewritten under us: look at this slot again
      }
    }
    return -1;
  }

  /** Find or insert the key; the entry comes back pinned. -1 = no slot (fail open). */
  private pin(listenerSlot: number, a: Int32Array, now: number): number {
    const found = this.find(listenerSlot, a);
    if (found >= 0) return found;
    if (!this.lock()) return -1;
    try {
      const again = this.find(listenerSlot, a);
      if (again >= 0) return again;
      return this.insert(listenerSlot, a, now);
    } finally {
      Atomics.store(this.cells, LOCK, 0);
      Atomics.notify(this.cells, LOCK);
    }
  }

  private lock(): boolean {
    let holder = Atomics.compareExchange(this.cells, LOCK, 0, this.owner);
    if (holder === 0) return true;
    const deadline = performance.now() + this.waitLimitMs;
    do {
      if (!this.waitWhile(LOCK, holder, deadline)) return false;
      holder = Atomics.compareExchange(this.cells, LOCK, 0, this.owner);
    } while (holder !== 0);
    return true;
  }

  /**
   * Wait while `cells[index]` holds `value`: spin, then sleep until notified or the
   * deadline (the wait limit after the spins when none is given). False when it still held
   * `value` at the deadline. Every store that ends a wait (unlock, `storeLive`,
   * `releaseWorker`) notifies, and `Atomics.wait` checks the value before it sleeps, so no
   * wake-up is missed and one sleep to the deadline is enough.
   */
  private waitWhile(index: number, value: number, deadline?: number): boolean {
    const c = this.cells;
    for (let spin = 0; spin < SPIN_LIMIT; spin++) if (Atomics.load(c, index) !== value) return true;
    const until = deadline ?? performance.now() + this.waitLimitMs;
    for (let left = until - performance.now(); left > 0; left = until - performance.now()) {
      if (Atomics.wait(c, index, value, left) !== 'timed-out') return true;
    }
    return Atomics.load(c, index) !== value;
  }

  /** Under the lock: the first EMPTY or expired slot of the probe window gets the key. */
  private insert(listenerSlot: number, a: Int32Array, now: number): number {
    const c = this.cells;
    const start = this.hash(listenerSlot, a);
    for (let probe = 0; probe < PROBE_LIMIT; probe++) {
      const entry = (start + probe) & this.mask;
      const base = this.entryBase(entry);
      const state = Atomics.load(c, base + STATE);
      if (state === LIVE) {
        if (Atomics.load(c, base + PINS) !== 0 || !bucketFull(Atomics.load(c, base + TAT), now)) continue;
        Atomics.store(c, base + STATE, BUSY);
        if (Atomics.load(c, base + PINS) !== 0) {
          this.storeLive(base);
          continue;
        }
      } else {
        // EMPTY (BUSY is impossible here: only the lock holder sets it).
        Atomics.store(c, base + STATE, BUSY);
      }
      Atomics.store(c, base + LISTENER, listenerSlot);
      for (let w = 0; w < 4; w++) Atomics.store(c, base + ADDRESS + w, a[w] ?? 0);
      Atomics.store(c, base + TAT, now);
      this.addPin(entry, 1);
      this.storeLive(base);
      return entry;
    }
    return -1;
  }

  /** End a BUSY rewrite and wake the lookups waiting on it. */
  private storeLive(base: number): void {
    Atomics.store(this.cells, base + STATE, LIVE);
    Atomics.notify(this.cells, base + STATE);
  }

  /** GCRA: one connection is allowed while the bucket runs at most `tolerance` ahead of now. */
  private takeToken(base: number, now: number, interval: number, tolerance: number): boolean {
    const c = this.cells;
    for (let attempt = 0; attempt < CAS_LIMIT; attempt++) {
      const tat = Atomics.load(c, base + TAT);
      let ahead = (tat - now) | 0;
      if (ahead < 0 || ahead > MAX_TOLERANCE_TICKS + interval) ahead = 0; // idle or stale: full bucket
      if (ahead > tolerance) return false;
      if (Atomics.compareExchange(c, base + TAT, tat, (now + ahead + interval) | 0) === tat) return true;
    }
    return false;
  }
}

/** Whether a bucket with this TAT is full at `now` (see the wrap note in the header). */
function bucketFull(tat: number, now: number): boolean {
  const ahead = (tat - now) | 0;
  return ahead <= 0 || ahead > MAX_TOLERANCE_TICKS * 2;
}
