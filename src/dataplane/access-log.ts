/**
 * The data plane's access log: one JSON line per closed connection in pino's format
 * (access-line.ts), written by the worker that proxied it through its own asynchronous,
 * batching destination (batched-destination.ts: a line is encoded into a buffer; the
 * thread pool writes whole buffers), so logging never blocks the event loop and needs no
 * message to another thread.
 *
 * Cost when disabled: `sample()` is a field read; no record is built. When enabled: one
 * random number per accepted connection unless every connection is logged, and for a
 * sampled one a getpeername at accept (the client address is gone once the socket
 * closes), one record object and one line at close.
 *
 * Bounded: at most MAX_BUFFERED_BYTES wait in memory per worker when the destination is
 * slower than the traffic; beyond that lines are dropped and counted
 * (`sluice_access_log_dropped_total`), never queued without limit. A line reaches the
 * file at most FLUSH_INTERVAL_MS after its connection closed.
 *
 * Rotation: the supervisor opens the file anew on SIGUSR1 and hands every worker the new
 * descriptor (`reopen`); a worker answers once its lines for the old one are written, and
 * only then is the old descriptor closed.
 */
import { fstatSync } from 'node:fs';
import { WorkerCounter, type WorkerCounters } from '../shared/counters.ts';
import { ATOMIC_WRITE_BYTES, registerFlushOnExit } from '../shared/logger.ts';
import type { AccessLogSettings } from '../shared/messages.ts';
import { accessLinePrefix, formatAccessLine } from './access-line.ts';
import { BatchedDestination } from './batched-destination.ts';

const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;
const FLUSH_INTERVAL_MS = 1000;
/**
 * One write per this many bytes (~200 lines) to a regular file, whose O_APPEND writes are
 * whole at any size; to a pipe only writes up to PIPE_BUF are, so there ~12 lines a write.
 */
const FILE_BUFFER_BYTES = 64 * 1024;

export type TerminationReason =
  | 'client_close'
  | 'backend_close'
  | 'client_error'
  | 'backend_error'
  | 'idle_timeout'
  | 'connect_failure'
  | 'no_backend'
  | 'at_limit'
  | 'queue_timeout'
  | 'drain'
  | 'backend_drained'
  // Refused by the edge gate before any backend (edge-gate.ts), as refused_total names them.
  | 'acl'
  | 'max_connections'
  | 'per_ip_connections'
  | 'per_ip_rate'
  | 'proxy_header'
  | 'proxy_header_timeout'
  | 'tls_hello'
  | 'tls_hello_timeout'
  | 'sni_no_route'
  // UDP sessions only: ended at `udp.max_replies`, or evicted at `udp.max_sessions`.
  | 'max_replies'
  | 'evicted';

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
  private readonly destination: BatchedDestination | undefined;
  private readonly linePrefix: string;
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
    this.linePrefix = accessLinePrefix(process.pid, context.worker);
    if (!this.enabled) return;
    const destination = new BatchedDestination({
      fd: settings.fd,
      bufferBytes: isRegularFile(settings.fd) ? FILE_BUFFER_BYTES : ATOMIC_WRITE_BYTES,
      flushIntervalMs: FLUSH_INTERVAL_MS,
      maxBufferedBytes: MAX_BUFFERED_BYTES,
      onDrop: () => {
        context.counters.bumpWorker(WorkerCounter.accessLogDropped);
      },
      onError: context.onError,
    });
    registerFlushOnExit(() => {
      destination.flushSync();
    });
    this.destination = destination;
  }

  /** Whether the connection accepted now is logged when it closes. */
  sample(): boolean {
    return this.enabled && (this.sampling >= 1 || this.random() < this.sampling);
  }

  /** Later lines go to `fd`; resolves once every earlier line reached the old descriptor. */
  reopen(fd: number): Promise<void> {
    return this.destination?.reopen(fd) ?? Promise.resolve();
  }

  write(record: AccessRecord): void {
    if (this.destination === undefined) return;
    this.counters.bumpWorker(WorkerCounter.accessLogLines);
    this.destination.write(formatAccessLine(Date.now(), this.linePrefix, record));
  }
}

function isRegularFile(fd: number): boolean {
  try {
    return fstatSync(fd).isFile();
  } catch {
    return false;
  }
}
