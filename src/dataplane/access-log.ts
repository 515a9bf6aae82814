/**
 * The data plane's access log: one JSON line per closed connection, written by the worker
 * that proxied it through its own asynchronous pino destination (a log call appends to a
 * buffer; libuv writes it out), so logging never blocks the event loop and needs no
 * message to another thread.
 *
 * Cost when disabled: `sample()` is a field read; no record is built. When enabled: one
 * random number per accepted connection, and for a sampled one a getpeername at accept
 * (the client address is gone once the socket closes) and one record object at close.
 *
 * Bounded: at most MAX_BUFFERED_BYTES wait in memory per worker when the destination is
 * slower than the traffic; beyond that lines are dropped and counted
 * (`sluice_access_log_dropped_total`), never queued without limit.
 */
import { pino, type Logger } from 'pino';
import { WorkerCounter, type WorkerCounters } from '../shared/counters.ts';
import { asyncDestination } from '../shared/logger.ts';
import type { AccessLogSettings } from '../shared/messages.ts';

const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;

export type TerminationReason =
  | 'client_close'
  | 'backend_close'
  | 'client_error'
  | 'backend_error'
  | 'idle_timeout'
  | 'connect_failure'
  | 'no_backend'
  | 'drain';

/** One closed connection, as its line shows it (field names are the line's keys). */
export interface AccessRecord {
  readonly listener: string;
  /** `host:port` of the client. */
  readonly client: string;
  readonly cluster: string | null;
  /** Address of the backend the connection was proxied to; null if none was reached. */
  readonly backend: string | null;
  /** Connect attempts made (a failed attempt moves on to the next backend). */
  readonly attempts: number;
  readonly bytes_from_client: number;
  readonly bytes_to_client: number;
  /** Accept to close, milliseconds (microsecond resolution). */
  readonly duration_ms: number;
  /** Accept until the backend connection was established; null if it never was. */
  readonly connect_ms: number | null;
  readonly reason: TerminationReason;
}

/** Milliseconds rounded to microseconds, so a line does not carry float noise. */
export function roundMs(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

export class AccessLog {
  readonly enabled: boolean;
  private readonly sampling: number;
  private readonly random: () => number;
  private readonly logger: Logger | undefined;
  private readonly counters: WorkerCounters;

  constructor(
    settings: AccessLogSettings,
    context: { readonly worker: number; readonly counters: WorkerCounters; readonly onError: (error: Error) => void },
    random: () => number = Math.random,
  ) {
    this.enabled = settings.enabled && settings.sampling > 0;
    this.sampling = settings.sampling;
    this.random = random;
    this.counters = context.counters;
    if (!this.enabled) return;
    const destination = asyncDestination(settings.fd, {
      maxBufferedBytes: MAX_BUFFERED_BYTES,
      onDrop: () => {
        context.counters.bumpWorker(WorkerCounter.accessLogDropped);
      },
      onError: context.onError,
    });
    this.logger = pino({ level: 'info', base: { pid: process.pid, worker: context.worker, log: 'access' } }, destination);
  }

  /** Whether the connection accepted now is logged when it closes. */
  sample(): boolean {
    return this.enabled && (this.sampling >= 1 || this.random() < this.sampling);
  }

  write(record: AccessRecord): void {
    if (this.logger === undefined) return;
    this.counters.bumpWorker(WorkerCounter.accessLogLines);
    this.logger.info(record, 'access');
  }
}
