/**
 * Fixed-bucket histograms in shared memory, written on the hot path without messages and
 * summed at scrape time (the /metrics collectors turn them into Prometheus histograms).
 *
 * Layout: Float64 cells [row][key][cell], where a row is one writer (a data-plane worker,
 * or the control plane), a key is what the histogram is labelled by (a backend slot), and
 * the cells are one count per bucket (NOT cumulative: an observation bumps exactly one
 * cell), one overflow count for values above the last bound, and the sum of observed
 * values. Count = sum of the bucket and overflow cells, so it cannot disagree with them.
 *
 * What must stay true:
 * - Every cell has one writer (its row's thread), so `observe` is two plain stores.
 * - Cells only grow, except `resetKey`, which the control plane calls only for a key no
 *   published snapshot names (a backend slot about to be reused).
 * - Bounds are strictly increasing and identical for writer and reader: both take them
 *   from the constants below, never from a message.
 *
 * Cost: `observe` is a linear scan over at most ~16 bounds (cheaper than a binary search
 * at that size) and two stores; no allocation. Memory: rows × keys × (bounds + 2) × 8
 * bytes of address space, committed by the OS only for the pages a writer touches (slots
 * are handed out from 0 upwards, so a table with few backends touches few pages).
 */

/** Connect latency of one successful attempt to a backend, in milliseconds. */
export const CONNECT_LATENCY_BOUNDS_MS: readonly number[] = [0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000];

/** Lifetime of a proxied connection, accept to close, in milliseconds. */
export const CONNECTION_DURATION_BOUNDS_MS: readonly number[] = [
  1, 10, 100, 1000, 5000, 10_000, 30_000, 60_000, 300_000, 900_000, 3_600_000,
];

/** Duration of one active health probe, in milliseconds. */
export const HEALTH_CHECK_DURATION_BOUNDS_MS: readonly number[] = [1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000];

/**
 * From the control plane starting a publish to one data-plane worker taking that version in,
 * in milliseconds. A publish normally reaches a waiting worker within a wake-up (tens of µs);
 * the upper buckets catch a worker busy in a long turn of its event loop.
 */
export const SNAPSHOT_PROPAGATION_BOUNDS_MS: readonly number[] = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 1000];

export interface HistogramShape {
  readonly rows: number;
  readonly keys: number;
  readonly bounds: readonly number[];
}

/** Cells per key: one per bound, the overflow count, the sum. */
function stride(bounds: readonly number[]): number {
  return bounds.length + 2;
}

export function histogramByteLength(shape: HistogramShape): number {
  return shape.rows * shape.keys * stride(shape.bounds) * Float64Array.BYTES_PER_ELEMENT;
}

/** One histogram family as read at scrape time: cumulative counts per bound, like Prometheus. */
export interface HistogramReading {
  readonly bounds: readonly number[];
  /** cumulative[i] = observations <= bounds[i]. */
  readonly cumulative: readonly number[];
  readonly count: number;
  readonly sum: number;
}

export class SharedHistogram {
  readonly shape: HistogramShape;
  private readonly cells: Float64Array;
  private readonly stride: number;
  private readonly rowLength: number;

  /** `byteOffset` must be a multiple of 8. */
  constructor(buffer: SharedArrayBuffer, byteOffset: number, shape: HistogramShape) {
    for (let i = 1; i < shape.bounds.length; i++) {
      if ((shape.bounds[i] ?? 0) <= (shape.bounds[i - 1] ?? 0)) throw new RangeError('histogram bounds must increase');
    }
    this.shape = shape;
    this.stride = stride(shape.bounds);
    this.rowLength = shape.keys * this.stride;
    this.cells = new Float64Array(buffer, byteOffset, shape.rows * this.rowLength);
  }

  /** Record `value` for `key` in `row`. Only row's own thread may call this. */
  observe(row: number, key: number, value: number): void {
    const bounds = this.shape.bounds;
    let bucket = 0;
    while (bucket < bounds.length && value > (bounds[bucket] as number)) bucket++;
    const base = row * this.rowLength + key * this.stride;
    const cells = this.cells;
    cells[base + bucket] = (cells[base + bucket] as number) + 1;
    const sumCell = base + this.stride - 1;
    cells[sumCell] = (cells[sumCell] as number) + value;
  }

  /** Sum of every row for `key`, with cumulative bucket counts. */
  read(key: number): HistogramReading {
    const bounds = this.shape.bounds;
    const perBucket = new Array<number>(bounds.length + 1).fill(0);
    let sum = 0;
    for (let row = 0; row < this.shape.rows; row++) {
      const base = row * this.rowLength + key * this.stride;
      for (let b = 0; b <= bounds.length; b++) perBucket[b] = (perBucket[b] ?? 0) + (this.cells[base + b] ?? 0);
      sum += this.cells[base + this.stride - 1] ?? 0;
    }
    const cumulative: number[] = [];
    let running = 0;
    for (let b = 0; b < bounds.length; b++) {
      running += perBucket[b] ?? 0;
      cumulative.push(running);
    }
    return { bounds, cumulative, count: running + (perBucket[bounds.length] ?? 0), sum };
  }

  /** Zero `key` in every row (slot reuse; see the file comment). */
  resetKey(key: number): void {
    for (let row = 0; row < this.shape.rows; row++) {
      const base = row * this.rowLength + key * this.stride;
      this.cells.fill(0, base, base + this.stride);
    }
  }
}
