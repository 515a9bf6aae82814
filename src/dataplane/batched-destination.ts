/**
 * An asynchronous pino destination built for one line per connection: each line is
 * encoded straight into a preallocated buffer, and a buffer is written out (by libuv's
 * thread pool, one write in flight at a time) when it is full or `flushIntervalMs` after
 * its first line, whichever comes first.
 *
 * Why not pino.destination (sonic-boom): it starts a write as soon as none is in flight, so
 * at a few thousand connections per second nearly every line costs its own thread-pool
 * round trip, and it re-measures its string buffer on every line. Here a line costs one
 * `Buffer.write` (which also flattens pino's concatenated string without an extra copy);
 * bench/access-log-cost.ts measures the whole.
 *
 * Bounds: at most about `maxBufferedBytes` wait (counted in UTF-16 code units, which are
 * bytes for the ASCII lines of the access log; beyond, lines are dropped and `onDrop` is
 * called); a line waits at most `flushIntervalMs` (a worker that crashes loses what waits,
 * like any buffered logger). The flush timer is armed only while lines wait, and unref'd,
 * so an idle worker has no timer.
 *
 * Lines are whole in the output: each write holds whole lines, at most `bufferBytes` (for
 * a pipe shared with other threads keep that at PIPE_BUF, 4096, so writes stay atomic). A
 * single line longer than a buffer is written on its own.
 *
 * Reopen (log rotation): `reopen(fd)` sends every later line to `fd`; lines taken before it
 * still go to the old descriptor, in order, and the returned promise resolves once the last
 * of them is written, so the caller knows when the old descriptor may be closed. Each
 * buffer carries its descriptor, so no line is written twice or to the wrong file.
 */
import fs from 'node:fs';

export interface BatchedDestinationOptions {
  readonly fd: number;
  /** Size of one write buffer: a buffer is written when the next line would not fit. */
  readonly bufferBytes: number;
  readonly flushIntervalMs: number;
  readonly maxBufferedBytes: number;
  readonly onDrop: () => void;
  readonly onError: (error: Error) => void;
}

/** UTF-8 needs at most 3 bytes per UTF-16 code unit. */
const MAX_UTF8_BYTES_PER_UNIT = 3;
/** Emptied buffers kept for reuse, so steady logging allocates no new buffers. */
const SPARE_BUFFERS = 2;

interface Filled {
  readonly fd: number;
  readonly bytes: Buffer;
  readonly length: number;
}

/** Resolved once `last` (the old descriptor's final buffer) has been written or given up. */
interface ReopenBarrier {
  readonly last: Filled;
  readonly done: () => void;
}

export class BatchedDestination {
  private readonly options: BatchedDestinationOptions;
  private fd: number;
  private readonly barriers: ReopenBarrier[] = [];
  private current: Buffer | undefined;
  private used = 0;
  /** Filled buffers waiting for the write in flight (which is `queue[0]` while writing). */
  private readonly queue: Filled[] = [];
  private queuedBytes = 0;
  private readonly spares: Buffer[] = [];
  private writing = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(options: BatchedDestinationOptions) {
    if (options.bufferBytes > options.maxBufferedBytes) throw new RangeError('bufferBytes must not exceed maxBufferedBytes');
    this.options = options;
    this.fd = options.fd;
  }

  /** pino's destination interface: one serialized line, newline included. */
  write(line: string): void {
    if (this.used + this.queuedBytes + line.length > this.options.maxBufferedBytes) {
      this.options.onDrop();
      return;
    }
    // Fast path: the line fits even if every code unit took 3 bytes. Otherwise measure it.
    const free = this.current === undefined ? 0 : this.current.length - this.used;
    const size = line.length * MAX_UTF8_BYTES_PER_UNIT <= free ? 0 : Buffer.byteLength(line);
    if (size > this.options.bufferBytes) {
      this.seal();
      const bytes = Buffer.from(line);
      this.enqueue({ fd: this.fd, bytes, length: bytes.length });
      return;
    }
    if (size > free) this.takeCurrent();
    this.current ??= this.spares.pop() ?? Buffer.allocUnsafe(this.options.bufferBytes);
    this.used += this.current.write(line, this.used);
    if (this.queue.length > 0) this.writeNext();
    if (this.timer === undefined) {
      this.timer = setTimeout(this.onTimer, this.options.flushIntervalMs);
      this.timer.unref();
    }
  }

  /** Start writing everything that waits (asynchronously). */
  flush(): void {
    this.seal();
  }

  /**
   * Send every later line to `fd`. Resolves once everything taken before the call has been
   * written to the old descriptor (at once when nothing waits).
   */
  reopen(fd: number): Promise<void> {
    this.seal();
    this.fd = fd;
    const last = this.queue.at(-1);
    if (last === undefined) return Promise.resolve();
    return new Promise((done) => this.barriers.push({ last, done }));
  }

  /** Write everything that waits now, blocking: for a thread about to end. */
  flushSync(): void {
    this.clearTimer();
    this.takeCurrent();
    // A write in flight keeps its buffer; only what waits behind it is written here.
    const from = this.writing ? 1 : 0;
    for (const filled of this.queue.splice(from)) {
      this.queuedBytes -= filled.length;
      try {
        let offset = 0;
        while (offset < filled.length) offset += fs.writeSync(filled.fd, filled.bytes, offset, filled.length - offset);
      } catch (error) {
        this.options.onError(error as Error);
      }
      this.passed(filled);
    }
  }

  /** Bytes waiting, including a write in flight. */
  get buffered(): number {
    return this.used + this.queuedBytes;
  }

  private readonly onTimer = (): void => {
    this.timer = undefined;
    this.seal();
  };

  private clearTimer(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Move the current buffer (if it holds anything) to the write queue. */
  private takeCurrent(): void {
    if (this.current === undefined || this.used === 0) return;
    this.queue.push({ fd: this.fd, bytes: this.current, length: this.used });
    this.queuedBytes += this.used;
    this.current = undefined;
    this.used = 0;
  }

  private seal(): void {
    this.clearTimer();
    this.takeCurrent();
    this.writeNext();
  }

  private enqueue(filled: Filled): void {
    this.queue.push(filled);
    this.queuedBytes += filled.length;
    this.writeNext();
  }

  private writeNext(): void {
    const next = this.queue[0];
    if (this.writing || next === undefined) return;
    this.writing = true;
    this.writeFrom(next, 0);
  }

  private writeFrom(filled: Filled, offset: number): void {
    fs.write(filled.fd, filled.bytes, offset, filled.length - offset, null, (error, written) => {
      if (error === null && offset + written < filled.length) {
        this.writeFrom(filled, offset + written);
        return;
      }
      // On an error the buffer is given up: retrying a full disk line by line helps no one.
      if (error !== null) this.options.onError(error);
      this.queue.shift();
      this.queuedBytes -= filled.length;
      if (filled.bytes.length === this.options.bufferBytes && this.spares.length < SPARE_BUFFERS) this.spares.push(filled.bytes);
      this.writing = false;
      this.passed(filled);
      this.writeNext();
    });
  }

  /** `filled` left the queue: release the reopens waiting for it (two in a row may share it). */
  private passed(filled: Filled): void {
    for (let i = this.barriers.length - 1; i >= 0; i--) {
      const barrier = this.barriers[i];
      if (barrier?.last !== filled) continue;
      this.barriers.splice(i, 1);
      barrier.done();
    }
  }
}
