/**
 * The TCP data path: for one accepted client, connect to a backend (bounded by the
 * cluster's connect timeout, retrying the next eligible backend on failure), then copy
 * bytes both ways with back-pressure and forward each direction's FIN on its own, so a
 * client that half-closes still receives the whole reply.
 *
 * Invariants:
 * - a session counts as an open connection of its backend from connect to close, once;
 * - every socket and timer a session creates is gone when both of its sockets closed;
 * - a client is never left open without a backend attempt in flight.
 *
 * Cost per connection (what the bench measures): the event handlers are module-level
 * functions that find their session through a symbol on the socket, so a session
 * allocates no closures; bytes are copied by a hand-written loop (`write`, pause on a full
 * buffer, resume on `drain`) instead of `pipe`, which registers eight listeners per
 * direction; idle time is judged by one sweep per worker instead of a timer per socket
 * that every chunk would refresh.
 *
 * Observability costs per connection: four `performance.now()` reads (accept, attempt,
 * connect, close) feeding the shared connect-latency and duration histograms; the access
 * log record is built only for a connection the access log sampled at accept.
 */
import net from 'node:net';
import { formatHostPort } from '../shared/address.ts';
import type { WorkerCounters } from '../shared/counters.ts';
import { BackendCounter, ListenerCounter } from '../shared/counters.ts';
import type { ListenerBinding } from '../shared/messages.ts';
import type { SnapshotBackend } from '../shared/snapshot/types.ts';
import { roundMs, type AccessLog, type TerminationReason } from './access-log.ts';
import { pickRoundRobin } from './balancer/round-robin.ts';
import type { ClusterRoute } from './routing-table.ts';

export type { TerminationReason };

/** Called when a client is refused for want of an eligible backend (counted before the call). */
export type RefusalHandler = (listenerSlot: number, route: ClusterRoute | undefined) => void;

/**
 * Backend sockets read into buffers the proxy owns (net.connect's `onread`) instead of a
 * fresh 64 KiB allocation per read that the stream layer would make, shrink and leave to
 * the garbage collector.
 *
 * - Every backend socket of a worker reads into one shared buffer, which is never handed
 *   to a write: a read that did not fill it (requests, answers, the tail of a transfer)
 *   is written as a copy of just its bytes (small copies come from Node's buffer pool).
 *   A write keeps a reference to its bytes until the kernel takes them, and each socket
 *   holds on to the buffer it will read into next, so a shared buffer handed to a write
 *   could be overwritten by another socket's read before that write completes.
 * - A read that filled its buffer means a bulk transfer: the socket switches to a buffer
 *   of its own, whose reads are written without a copy. If such a write has to wait, the
 *   buffer stays with the write and the socket gets a new one; once a read no longer
 *   fills it, the socket goes back to the shared buffer, so idle connections own none.
 *
 * The callback picks the buffer for its socket's next read in `nextReadBuffer`; Node asks
 * for it (calls `takeNextReadBuffer`) right after the callback, on the same socket.
 */
const READ_BUFFER_BYTES = 64 * 1024;
const sharedReadBuffer = Buffer.allocUnsafeSlow(READ_BUFFER_BYTES);
let nextReadBuffer: Buffer<ArrayBuffer> = sharedReadBuffer;

function takeNextReadBuffer(): Buffer<ArrayBuffer> {
  const buffer = nextReadBuffer;
  nextReadBuffer = sharedReadBuffer;
  return buffer;
}

/**
 * Forward a FIN to `socket`. When its peer already sent its own FIN and every byte we
 * wrote is with the kernel, closing the socket sends the FIN and frees it in one step
 * (close() on a socket with nothing unread is a graceful FIN, not a reset); otherwise
 * `end()` shuts down our direction after the queued bytes and keeps reading.
 */
function forwardFin(socket: net.Socket): void {
  if (socket.readableEnded && socket.writableLength === 0) socket.destroy();
  else socket.end();
}

/**
 * How often the sweep folds byte counts into the shared counters and looks for idle
 * sessions. An idle session is closed between `idle_timeout` and `idle_timeout` plus one
 * period after its last byte; clusters with short idle timeouts shorten the period.
 */
const SWEEP_INTERVAL_MS = 1000;
const MIN_SWEEP_INTERVAL_MS = 25;
/** Sweeps per idle timeout at least, so a short timeout is still judged to within a quarter. */
const SWEEPS_PER_IDLE_TIMEOUT = 4;

export class TcpProxy {
  private readonly sessions = new Set<TcpSession>();
  private readonly counters: WorkerCounters;
  /** @internal read by sessions */
  readonly accessLog: AccessLog;
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweepIntervalMs = SWEEP_INTERVAL_MS;
  private onIdle: (() => void) | undefined;
  private readonly onRefused: RefusalHandler | undefined;

  constructor(counters: WorkerCounters, accessLog: AccessLog, onRefused?: RefusalHandler) {
    this.counters = counters;
    this.accessLog = accessLog;
    this.onRefused = onRefused;
  }

  get connections(): number {
    return this.sessions.size;
  }

  /** Route one accepted (paused) client socket. */
  handle(client: net.Socket, listener: ListenerBinding, route: ClusterRoute | undefined): void {
    this.counters.bumpListener(listener.slot, ListenerCounter.accepted);
    const logged = this.accessLog.sample();
    if (route === undefined || route.eligible.length === 0) {
      this.counters.bumpListener(listener.slot, ListenerCounter.refusedNoBackend);
      if (logged) this.logRefused(client, listener, route);
      client.on('error', ignoreError);
      client.destroy();
      this.onRefused?.(listener.slot, route);
      return;
    }
    const session = new TcpSession(this, client, listener, route, logged);
    this.sessions.add(session);
    this.ensureSweep(route.idleTimeoutMs);
    session.start();
  }

  /** Resolves when no session is left (at once if there is none). */
  whenIdle(): Promise<void> {
    if (this.sessions.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.onIdle = resolve;
    });
  }

  /** Cut every open session; returns how many were cut. */
  destroyAll(reason: TerminationReason): number {
    const count = this.sessions.size;
    for (const session of [...this.sessions]) session.abort(reason);
    return count;
  }

  /**
   * Close every connected session whose backend is not in `keep` (slot → id): the backend was
   * removed, or its drain ended. Called once per snapshot version that drops a backend, never
   * per accept. Sessions still connecting finish their attempt. Returns how many were closed.
   */
  closeUnkept(keep: ReadonlyMap<number, string>): number {
    let closed = 0;
    for (const session of [...this.sessions]) {
      const target = session.connectedTarget;
      if (target === undefined || keep.get(target.slot) === target.id) continue;
      session.abort('backend_drained');
      closed++;
    }
    return closed;
  }

  /** @internal called by a session once both of its sockets are closed. */
  ended(session: TcpSession): void {
    this.sessions.delete(session);
    if (this.sessions.size > 0) return;
    this.stopSweep();
    const onIdle = this.onIdle;
    this.onIdle = undefined;
    onIdle?.();
  }

  /** @internal */
  get counterWriter(): WorkerCounters {
    return this.counters;
  }

  private logRefused(client: net.Socket, listener: ListenerBinding, route: ClusterRoute | undefined): void {
    this.accessLog.write({
      listener: listener.name,
      client: clientAddress(client),
      cluster: route?.name ?? null,
      backend: null,
      attempts: 0,
      bytes_from_client: 0,
      bytes_to_client: 0,
      duration_ms: 0,
      connect_ms: null,
      reason: 'no_backend',
    });
  }

  private ensureSweep(idleTimeoutMs: number): void {
    const wanted = Math.max(MIN_SWEEP_INTERVAL_MS, Math.min(SWEEP_INTERVAL_MS, Math.floor(idleTimeoutMs / SWEEPS_PER_IDLE_TIMEOUT)));
    if (this.sweepTimer !== undefined && wanted >= this.sweepIntervalMs) return;
    this.stopSweep();
    this.sweepIntervalMs = wanted;
    this.sweepTimer = setInterval(this.sweep, wanted);
    this.sweepTimer.unref();
  }

  private stopSweep(): void {
    if (this.sweepTimer !== undefined) clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
    this.sweepIntervalMs = SWEEP_INTERVAL_MS;
  }

  private readonly sweep = (): void => {
    const now = Date.now();
    for (const session of this.sessions) session.sweep(now);
  };
}

function ignoreError(): void {
  // The socket is being torn down; its error has nowhere useful to go.
}

function clientAddress(client: net.Socket): string {
  const host = client.remoteAddress;
  return host === undefined ? 'unknown' : formatHostPort(host, client.remotePort ?? 0);
}

const kSession = Symbol('sluice.session');

/** A client or backend socket that knows its session, so handlers need no closure. */
interface SessionSocket extends net.Socket {
  [kSession]: TcpSession;
}

function sessionOf(socket: net.Socket): TcpSession {
  return (socket as SessionSocket)[kSession];
}

class TcpSession {
  readonly proxy: TcpProxy;
  readonly client: net.Socket;
  private readonly listener: ListenerBinding;
  readonly route: ClusterRoute;
  /** performance.now() at accept, at the current attempt, and at connect (-1 = not connected). */
  private readonly acceptedAt: number;
  private attemptStartedAt = 0;
  private connectedAt = -1;
  /** Set at accept only for a connection the access log sampled. */
  private readonly loggedClient: string | undefined;
  backend: net.Socket | undefined;
  target: SnapshotBackend | undefined;
  private attempts = 0;
  private firstIndex = -1;
  connected = false;
  clientClosed = false;
  /** Backend sockets not yet closed, including abandoned attempts still tearing down. */
  openBackendSockets = 0;
  private finished = false;
  private countedFromClient = 0;
  private countedToClient = 0;
  /** The backend socket's own read buffer while it streams in bulk (see `onBackendRead`). */
  ownReadBuffer: Buffer<ArrayBuffer> | undefined;
  /** When bytes last moved, as seen by the sweep (Date.now() at connect, then per sweep). */
  private activeAt = 0;
  reason: TerminationReason | undefined;

  constructor(proxy: TcpProxy, client: net.Socket, listener: ListenerBinding, route: ClusterRoute, logged: boolean) {
    this.proxy = proxy;
    this.client = client;
    this.listener = listener;
    this.route = route;
    this.acceptedAt = performance.now();
    this.loggedClient = logged ? clientAddress(client) : undefined;
  }

  start(): void {
    const client = this.client as SessionSocket;
    client[kSession] = this;
    client.on('error', onClientError);
    client.on('end', onClientEnd);
    client.on('close', onClientClose);
    this.tryNextBackend();
  }

  /** The backend this session is connected to (undefined while connecting). */
  get connectedTarget(): SnapshotBackend | undefined {
    return this.connected ? this.target : undefined;
  }

  abort(reason: TerminationReason): void {
    this.reason ??= reason;
    this.client.destroy();
    this.backend?.destroy();
  }

  /** Fold the byte counts into the shared counters; true when bytes moved since last time. */
  flushBytes(): boolean {
    if (!this.connected || this.target === undefined) return false;
    const counters = this.proxy.counterWriter;
    const fromClient = this.client.bytesRead;
    const toClient = this.client.bytesWritten;
    if (fromClient === this.countedFromClient && toClient === this.countedToClient) return false;
    counters.bumpBackend(this.target.slot, BackendCounter.bytesFromClient, fromClient - this.countedFromClient);
    counters.bumpBackend(this.target.slot, BackendCounter.bytesToClient, toClient - this.countedToClient);
    this.countedFromClient = fromClient;
    this.countedToClient = toClient;
    return true;
  }

  /** Called by the proxy's sweep: count bytes, and end the session once idle too long. */
  sweep(now: number): void {
    if (this.flushBytes()) {
      this.activeAt = now;
      return;
    }
    if (this.connected && now - this.activeAt >= this.route.idleTimeoutMs) this.idleTimeout();
  }

  tryNextBackend(): void {
    if (this.clientClosed) return;
    const eligible = this.route.eligible;
    if (this.attempts >= eligible.length) {
      this.proxy.counterWriter.bumpListener(this.listener.slot, ListenerCounter.refusedAllFailed);
      this.reason = 'connect_failure';
      this.client.destroy();
      return;
    }
    // The first attempt follows the balancer; retries walk on from it, so one accept
    // tries each eligible backend at most once.
    const index =
      this.attempts === 0 ? pickRoundRobin(eligible, this.route.cursor) : (this.firstIndex + this.attempts) % eligible.length;
    if (this.attempts === 0) this.firstIndex = index;
    this.attempts++;
    const target = eligible[index];
    if (target === undefined) {
      this.tryNextBackend();
      return;
    }
    this.connect(target);
  }

  private connect(target: SnapshotBackend): void {
    this.target = target;
    this.attemptStartedAt = performance.now();
    const backend = net.connect({
      host: target.host,
      port: target.port,
      allowHalfOpen: true,
      noDelay: true,
      onread: BACKEND_ONREAD,
    }) as SessionSocket;
    backend[kSession] = this;
    this.backend = backend;
    this.openBackendSockets++;
    backend.setTimeout(this.route.connectTimeoutMs);
    backend.once('connect', onBackendConnect);
    backend.on('timeout', onBackendTimeout);
    backend.on('error', onBackendError);
    backend.on('close', onBackendClose);
  }

  connectedTo(backend: net.Socket, target: SnapshotBackend): void {
    this.connected = true;
    this.activeAt = Date.now();
    this.connectedAt = performance.now();
    const counters = this.proxy.counterWriter;
    counters.bumpBackend(target.slot, BackendCounter.connectSuccesses, 1);
    counters.connectionOpened(target.slot);
    counters.observeConnectLatency(target.slot, this.connectedAt - this.attemptStartedAt);
    const client = this.client;
    // From here idle time is the sweep's business; the connect timer is done.
    backend.setTimeout(0);
    backend.on('end', onBackendEnd);
    client.on('data', onClientData);
    client.on('drain', onClientDrain);
    backend.on('drain', onBackendDrain);
    client.resume();
  }

  /** Give up on the current backend attempt; its socket is only left to finish closing. */
  abandonAttempt(): void {
    const backend = this.backend;
    if (backend === undefined) return;
    backend.removeAllListeners();
    backend.on('error', ignoreError);
    backend.once('close', onAbandonedClose);
    backend.destroy();
    this.backend = undefined;
    this.tryNextBackend();
  }

  idleTimeout(): void {
    this.reason ??= 'idle_timeout';
    this.client.destroy();
    this.backend?.destroy();
  }

  maybeFinish(): void {
    if (this.finished || !this.clientClosed || this.openBackendSockets > 0) return;
    this.finished = true;
    const durationMs = performance.now() - this.acceptedAt;
    if (this.connected && this.target !== undefined) {
      this.flushBytes();
      const counters = this.proxy.counterWriter;
      counters.connectionClosed(this.target.slot);
      counters.observeConnectionDuration(this.target.slot, durationMs);
    }
    if (this.loggedClient !== undefined) this.writeAccessLog(this.loggedClient, durationMs);
    this.proxy.ended(this);
  }

  private writeAccessLog(client: string, durationMs: number): void {
    this.proxy.accessLog.write({
      listener: this.listener.name,
      client,
      cluster: this.route.name,
      backend: this.connected ? (this.target?.address ?? null) : null,
      attempts: this.attempts,
      bytes_from_client: this.client.bytesRead,
      bytes_to_client: this.client.bytesWritten,
      duration_ms: roundMs(durationMs),
      connect_ms: this.connectedAt < 0 ? null : roundMs(this.connectedAt - this.acceptedAt),
      reason: this.reason ?? 'client_close',
    });
  }
}

// Event handlers: `this` is the socket that emitted the event.

function onBackendConnect(this: net.Socket): void {
  const session = sessionOf(this);
  if (session.backend !== this || session.target === undefined) return;
  session.connectedTo(this, session.target);
}

function onClientData(this: net.Socket, chunk: Buffer): void {
  const backend = sessionOf(this).backend;
  if (backend !== undefined && !backend.write(chunk)) this.pause();
}

const BACKEND_ONREAD = { buffer: takeNextReadBuffer, callback: onBackendRead };

/** `onread` callback of a backend socket; returning false pauses it until the client drains. */
function onBackendRead(this: net.Socket, bytes: number, buffer: Uint8Array): boolean {
  const session = sessionOf(this);
  const client = session.client;
  let flowing: boolean;
  if (buffer === sharedReadBuffer) {
    flowing = client.write(Buffer.copyBytesFrom(buffer, 0, bytes));
  } else {
    flowing = client.write(buffer.subarray(0, bytes));
    // The write holds on to the buffer until the kernel took every byte of it.
    if (client.writableLength > 0) session.ownReadBuffer = undefined;
  }
  if (bytes === buffer.length) {
    session.ownReadBuffer ??= Buffer.allocUnsafeSlow(READ_BUFFER_BYTES);
    nextReadBuffer = session.ownReadBuffer;
  } else {
    session.ownReadBuffer = undefined;
  }
  return flowing;
}

function onClientDrain(this: net.Socket): void {
  sessionOf(this).backend?.resume();
}

function onBackendDrain(this: net.Socket): void {
  sessionOf(this).client.resume();
}

function onClientEnd(this: net.Socket): void {
  const session = sessionOf(this);
  session.reason ??= 'client_close';
  const backend = session.backend;
  if (session.connected && backend !== undefined) forwardFin(backend);
}

function onBackendEnd(this: net.Socket): void {
  const session = sessionOf(this);
  session.reason ??= 'backend_close';
  forwardFin(session.client);
}

function onClientError(this: net.Socket): void {
  sessionOf(this).reason ??= 'client_error';
}

/** The connect timer: the attempt did not complete within the cluster's connect_timeout. */
function onBackendTimeout(this: net.Socket): void {
  const session = sessionOf(this);
  // The timer is cleared at connect; a late event from before that changes nothing.
  if (session.connected) return;
  const target = session.target;
  if (target !== undefined) {
    session.proxy.counterWriter.bumpBackend(target.slot, BackendCounter.connectTimeouts, 1);
    session.proxy.counterWriter.bumpBackend(target.slot, BackendCounter.connectFailures, 1);
  }
  session.abandonAttempt();
}

function onBackendError(this: net.Socket): void {
  const session = sessionOf(this);
  if (session.connected) {
    // A reset from the backend is passed on: the client must not mistake it for a clean end.
    session.reason ??= 'backend_error';
    session.client.destroy();
    return;
  }
  const target = session.target;
  if (target !== undefined) session.proxy.counterWriter.bumpBackend(target.slot, BackendCounter.connectFailures, 1);
  session.abandonAttempt();
}

function onAbandonedClose(this: net.Socket): void {
  const session = sessionOf(this);
  session.openBackendSockets--;
  session.maybeFinish();
}

function onBackendClose(this: net.Socket, hadError: boolean): void {
  const session = sessionOf(this);
  session.openBackendSockets--;
  // A clean close means both directions ended; the client's write side was already ended
  // and its buffered bytes must still flush, so only an error cuts the client.
  if (hadError && !session.clientClosed) session.client.destroy();
  session.maybeFinish();
}

function onClientClose(this: net.Socket, hadError: boolean): void {
  const session = sessionOf(this);
  session.clientClosed = true;
  session.reason ??= 'client_close';
  // Before the backend is connected there is nothing to finish; after, a clean client
  // close means both directions ended and the backend socket closes by itself.
  if (hadError || !session.connected) session.backend?.destroy();
  session.maybeFinish();
}
