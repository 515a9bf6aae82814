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

/** How often byte counts of long-lived connections are folded into the shared counters. */
const BYTE_FLUSH_INTERVAL_MS = 1000;

export class TcpProxy {
  private readonly sessions = new Set<TcpSession>();
  private readonly counters: WorkerCounters;
  /** @internal read by sessions */
  readonly accessLog: AccessLog;
  private byteFlushTimer: NodeJS.Timeout | undefined;
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
    if (this.byteFlushTimer === undefined) this.startByteFlush();
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
    this.stopByteFlush();
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

  private startByteFlush(): void {
    this.byteFlushTimer = setInterval(() => {
      for (const session of this.sessions) session.flushBytes();
    }, BYTE_FLUSH_INTERVAL_MS);
    this.byteFlushTimer.unref();
  }

  private stopByteFlush(): void {
    if (this.byteFlushTimer !== undefined) clearInterval(this.byteFlushTimer);
    this.byteFlushTimer = undefined;
  }
}

function ignoreError(): void {
  // The socket is being torn down; its error has nowhere useful to go.
}

function clientAddress(client: net.Socket): string {
  const host = client.remoteAddress;
  return host === undefined ? 'unknown' : formatHostPort(host, client.remotePort ?? 0);
}

class TcpSession {
  private readonly proxy: TcpProxy;
  private readonly client: net.Socket;
  private readonly listener: ListenerBinding;
  private readonly route: ClusterRoute;
  /** performance.now() at accept, at the current attempt, and at connect (-1 = not connected). */
  private readonly acceptedAt: number;
  private attemptStartedAt = 0;
  private connectedAt = -1;
  /** Set at accept only for a connection the access log sampled. */
  private readonly loggedClient: string | undefined;
  private backend: net.Socket | undefined;
  private target: SnapshotBackend | undefined;
  private attempts = 0;
  private firstIndex = -1;
  private connected = false;
  private clientClosed = false;
  /** Backend sockets not yet closed, including abandoned attempts still tearing down. */
  private openBackendSockets = 0;
  private finished = false;
  private countedFromClient = 0;
  private countedToClient = 0;
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
    this.client.on('error', this.onClientError);
    this.client.on('end', this.onClientEnd);
    this.client.on('close', this.onClientClose);
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

  flushBytes(): void {
    if (!this.connected || this.target === undefined) return;
    const counters = this.proxy.counterWriter;
    const fromClient = this.client.bytesRead;
    const toClient = this.client.bytesWritten;
    counters.bumpBackend(this.target.slot, BackendCounter.bytesFromClient, fromClient - this.countedFromClient);
    counters.bumpBackend(this.target.slot, BackendCounter.bytesToClient, toClient - this.countedToClient);
    this.countedFromClient = fromClient;
    this.countedToClient = toClient;
  }

  private tryNextBackend(): void {
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
    const backend = net.connect({ host: target.host, port: target.port, allowHalfOpen: true, noDelay: true });
    this.backend = backend;
    this.openBackendSockets++;
    backend.setTimeout(this.route.connectTimeoutMs);
    backend.once('connect', this.onBackendConnect);
    backend.on('timeout', this.onBackendTimeout);
    backend.on('error', this.onBackendError);
    backend.on('close', this.onBackendClose);
  }

  private readonly onBackendConnect = (): void => {
    const backend = this.backend;
    const target = this.target;
    if (backend === undefined || target === undefined) return;
    this.connected = true;
    this.connectedAt = performance.now();
    const counters = this.proxy.counterWriter;
    counters.observeConnectLatency(target.slot, this.connectedAt - this.attemptStartedAt);
    counters.bumpBackend(target.slot, BackendCounter.connectSuccesses, 1);
    counters.connectionOpened(target.slot);
    // Idle time is measured on both sockets: the client socket sees activity in both
    // directions, and the backend timer bounds a backend left finishing after the client.
    backend.setTimeout(this.route.idleTimeoutMs);
    backend.on('end', this.onBackendEnd);
    this.client.setTimeout(this.route.idleTimeoutMs);
    this.client.on('timeout', this.onIdleTimeout);
    this.client.pipe(backend);
    backend.pipe(this.client);
  };

  private readonly onBackendTimeout = (): void => {
    if (this.connected) {
      this.onIdleTimeout();
      return;
    }
    const target = this.target;
    if (target !== undefined) {
      this.proxy.counterWriter.bumpBackend(target.slot, BackendCounter.connectTimeouts, 1);
      this.proxy.counterWriter.bumpBackend(target.slot, BackendCounter.connectFailures, 1);
    }
    this.abandonAttempt();
  };

  private readonly onBackendError = (): void => {
    if (this.connected) {
      // A reset from the backend is passed on: the client must not mistake it for a clean end.
      this.reason ??= 'backend_error';
      this.client.destroy();
      return;
    }
    const target = this.target;
    if (target !== undefined) this.proxy.counterWriter.bumpBackend(target.slot, BackendCounter.connectFailures, 1);
    this.abandonAttempt();
  };

  /** Give up on the current backend attempt; its socket is only left to finish closing. */
  private abandonAttempt(): void {
    const backend = this.backend;
    if (backend === undefined) return;
    backend.removeAllListeners();
    backend.on('error', ignoreError);
    backend.once('close', this.onAbandonedClose);
    backend.destroy();
    this.backend = undefined;
    this.tryNextBackend();
  }

  private readonly onAbandonedClose = (): void => {
    this.openBackendSockets--;
    this.maybeFinish();
  };

  private readonly onBackendClose = (hadError: boolean): void => {
    this.openBackendSockets--;
    // A clean close means both directions ended; the pipe already ended the client's
    // write side and its buffered bytes must still flush, so only an error cuts the client.
    if (hadError && !this.clientClosed) this.client.destroy();
    this.maybeFinish();
  };

  private readonly onBackendEnd = (): void => {
    this.reason ??= 'backend_close';
  };

  private readonly onClientEnd = (): void => {
    this.reason ??= 'client_close';
  };

  private readonly onClientError = (): void => {
    this.reason ??= 'client_error';
  };

  private readonly onIdleTimeout = (): void => {
    this.reason ??= 'idle_timeout';
    this.client.destroy();
    this.backend?.destroy();
  };

  private readonly onClientClose = (hadError: boolean): void => {
    this.clientClosed = true;
    this.reason ??= 'client_close';
    // Before the backend is connected there is nothing to finish; after, a clean client
    // close means both directions ended and the backend socket closes by itself.
    if (hadError || !this.connected) this.backend?.destroy();
    this.maybeFinish();
  };

  private maybeFinish(): void {
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
