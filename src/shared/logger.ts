import { pino, type Logger } from 'pino';

/**
 * One root logger per thread, writing JSON lines to stdout through pino's asynchronous
 * destination so a log call never blocks the event loop on a slow terminal or pipe.
 * Each thread gets its own destination; lines are written whole, so threads interleave
 * by line, never inside one.
 */
export function createLogger(level: string, bindings: Record<string, unknown> = {}): Logger {
  const destination = pino.destination({ dest: 1, sync: false, minLength: 0 });
  const logger = pino({ level, base: { pid: process.pid, ...bindings } }, destination);
  flushOnExit.push(() => {
    destination.flushSync();
  });
  return logger;
}

const flushOnExit: (() => void)[] = [];

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
