import { pino, type DestinationStream, type Logger } from 'pino';

/**
 * Largest write the kernel keeps whole on a pipe (PIPE_BUF on Linux). Every thread has its
 * own destination on the same stdout; a destination writes whole lines in chunks of at
 * most this size, so lines from different threads interleave by line, never inside one,
 * even when stdout is a pipe. (Appends to a regular file are whole at any size.)
 */
export const ATOMIC_WRITE_BYTES = 4096;

/**
 * pino's asynchronous destination on a file descriptor: a log call only appends to an
 * in-memory buffer, and the buffer is written out by libuv, so logging never blocks the
 * event loop on a slow terminal, pipe or disk. Lines still buffered are written out by
 * `flushLogs()` before the thread ends.
 */
export function asyncDestination(fd: number): DestinationStream {
  const destination = pino.destination({ dest: fd, sync: false, minLength: 0, maxWrite: ATOMIC_WRITE_BYTES });
  registerFlushOnExit(() => {
    destination.flushSync();
  });
  return destination;
}

/**
 * One root logger per thread, writing JSON lines to stdout through an asynchronous
 * destination (see `asyncDestination`).
 */
export function createLogger(level: string, bindings: Record<string, unknown> = {}): Logger {
  return pino({ level, base: { pid: process.pid, ...bindings } }, asyncDestination(1));
}

const flushOnExit: (() => void)[] = [];

/** Have `flushLogs()` also write out this destination's buffered lines. */
export function registerFlushOnExit(flush: () => void): void {
  flushOnExit.push(flush);
}

/** Write out buffered log lines before the thread or process ends. */
export function flushLogs(): void {
  for (const flush of flushOnExit) {
    try {
      flush();
    } catch {
      // A destination that is not ready yet has nothing buffered to lose.
    }
  }
}

export type { Logger };
