/**
 * One TCP session: an accepted client and its backend attempts. Chooses a backend (sticky or
 * the balancer, then a walk under the limits: backend-choice.ts), reserves its place, connects
 * (bounded by the cluster's connect timeout, retrying the next eligible backend on failure,
 * queueing when all are full), then copies bytes both ways with back-pressure and forwards
 * each direction's FIN on its own, so a client that half-closes still receives the whole
 * reply. A reset (or other error) on one side is passed to the other as a reset, never as a
 * FIN. The backend connection is a `BackendLink` (backend-link.ts): net.Socket or a libuv
 * stream handle, by the worker's data path; the client is a `ClientLink` (client-link.ts): a
 * stream handle for a plain listener on the handles path, else a net.Socket.
 *
 * Invariants:
 * - a session holds at most one reservation (global assigned-connection count) at a time,
 *   from before its connect attempt until the attempt fails or the connection closes;
 * - a session counts in its backend's connection total once, when it connects;
 * - every socket and timer a session creates is gone when both of its sides closed;
 * - a client is never left open without a backend attempt in flight or a place in a queue.
 *
 * Observability costs per connection: four `performance.now()` reads (accept, attempt,
 * connect, close) feeding the shared connect-latency and duration histograms; the access
 * log record is built only for a connection the access log sampled at accept.
 */
import { ClusterCell } from '../shared/cluster-state.ts';
import { BackendCounter, ListenerCounter } from '../shared/counters.ts';
import type { ListenerBinding } from '../shared/messages.ts';
import type { SnapshotBackend } from '../shared/snapshot/types.ts';
import { roundMs, type TerminationReason } from './access-log.ts';
import { BackendWalk } from './backend-choice.ts';
import { connectBackend, type BackendLink, type LinkOwner } from './backend-link.ts';
import type { ClientLink, ClientOwner } from './client-link.ts';
import { waitDeadline, type ConnectionQueue, type QueuedConnection } from './connection-queue.ts';
import { clientText, type AdmissionLease, type Admitted, type Origin } from './edge-gate.ts';
import { sweepVerdict } from './idle-sweep.ts';
import { encodeProxyHeader } from './proxy-protocol.ts';
import type { ClusterRoute } from './routing-table.ts';
import type { TcpProxy } from './tcp-proxy.ts';
import { sharedMonotonicMs } from '../shared/shared-clock.ts';

export class TcpSession implements QueuedConnection, LinkOwner, ClientOwner {
  readonly proxy: TcpProxy;
  readonly client: ClientLink;
  private readonly listener: ListenerBinding;
  private route: ClusterRoute;
  /** Counts held in the shared limit table (edge listeners), given back at close. */
  private readonly lease: AdmissionLease | undefined;
  /** The client as a PROXY header in front of Sluice described it (accept_proxy). */
  private readonly origin: Origin | undefined;
  private readonly headerBytes: number;
  /** performance.now() at accept, at the current attempt, and at connect (-1 = not connected). */
  private readonly acceptedAt: number;
  private attemptStartedAt = 0;
  private connectedAt = -1;
  /** Set at accept only for a connection the access log sampled. */
  private readonly loggedClient: string | undefined;
  /** Connect attempts made (for the access log). */
  private attempts = 0;
  backend: BackendLink | undefined;
  private target: SnapshotBackend | undefined;
  /** The backend slot this session holds a reservation on, or -1. */
  private reservedSlot = -1;
  /** The walk over the eligible backends (sticky, balancer, limits). */
  private readonly walk = new BackendWalk();
  private hashed = false;
  /** The last connect attempt failed with a reset from the backend (see `backendFailed`). */
  private lastAttemptReset = false;
  private queue: ConnectionQueue | undefined;
  /** When the session first queued, the time its wait ends (the proxy's clock); -1 = never queued. */
  private queueDeadline = -1;
  private connected = false;
  private clientClosed = false;
  /** Backend sockets not yet closed, including abandoned attempts still tearing down. */
  private openBackendSockets = 0;
  private finished = false;
  private countedFromClient = 0;
  private countedToClient = 0;
  /** When bytes last moved, as seen by the sweep (the proxy's clock at connect, then per sweep). */
  private activeAt = 0;
  reason: TerminationReason | undefined;

  constructor(
    proxy: TcpProxy,
    client: ClientLink,
    listener: ListenerBinding,
    route: ClusterRoute,
    logged: boolean,
    admitted: Admitted | undefined,
  ) {
    this.proxy = proxy;
    this.client = client;
    this.listener = listener;
    this.route = route;
    this.lease = admitted?.lease;
    this.origin = admitted?.origin;
    // The PROXY header was read from the client but is no byte of its traffic.
    this.headerBytes = admitted?.headerBytes ?? 0;
    this.countedFromClient = this.headerBytes;
    this.acceptedAt = performance.now();
    this.loggedClient = logged ? clientText(client, this.origin) : undefined;
  }

  start(): void {
    this.client.attach(this);
    // Connections already waiting for this cluster go first.
    if (this.route.queue !== undefined && this.route.state?.anyoneWaiting === true) {
      this.waitForRoom();
      return;
    }
    this.beginWalk();
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
    if (!this.connected) return;
    switch (sweepVerdict(this.flushBytes(), this.activeAt, now, this.route.idleTimeoutMs)) {
      case 'active':
        this.activeAt = now;
        return;
      case 'idle':
        this.idleTimeout();
        return;
      case 'open':
        return;
    }
  }

  /** QueuedConnection: a backend may have room now (called by the queue, in arrival order). */
  retry(): boolean {
    if (this.clientClosed) return true;
    this.route = this.proxy.currentRoute(this.route.name) ?? this.route;
    this.beginWalk();
    const target = this.reserveNext();
    if (target === undefined && this.walk.sawFull) return false;
    this.queue = undefined;
    if (target === undefined) this.refuseWithoutBackend(); // none full is left to wait for
    else this.connect(target);
    return true;
  }

  /** QueuedConnection: no backend had room before the queue timeout. */
  timedOut(): void {
    this.queue = undefined;
    this.route.state?.bump(ClusterCell.timedOutTotal);
    this.refuse(ListenerCounter.refusedAtLimit, 'queue_timeout');
  }

  /** Start a walk over the eligible backends at the preferred one. */
  private beginWalk(): void {
    if (this.route.hashKey !== undefined || this.route.sticky !== undefined) this.hashClient();
    this.walk.begin(this.route, sharedMonotonicMs());
  }

  private hashClient(): void {
    if (this.hashed) return;
    this.hashed = true;
    // Behind a balancer that sent a PROXY header, the client is the one it named.
    const source = this.origin?.source;
    const address = source === undefined ? this.client.remoteAddress : source.address;
    const port = source === undefined ? (this.client.remotePort ?? 0) : source.port;
    this.walk.setClient(address, port);
  }

  /** The next backend of the walk with room, reserved for this session; undefined when the walk is over. */
  private reserveNext(): SnapshotBackend | undefined {
    const target = this.walk.next(this.route, this.proxy.counterWriter);
    if (target !== undefined) this.reservedSlot = target.slot;
    return target;
  }

  private tryNextBackend(): void {
    if (this.clientClosed) return;
    const target = this.reserveNext();
    if (target !== undefined) {
      this.connect(target);
      return;
    }
    if (this.walk.sawFull) this.waitForRoom();
    else this.refuseWithoutBackend();
  }

  /** No backend is left for this client: none is eligible, or those that are failed it. */
  private refuseWithoutBackend(): void {
    if (this.route.eligible.length === 0) this.refuse(ListenerCounter.refusedNoBackend, 'no_backend');
    else if (this.lastAttemptReset) this.refuse(ListenerCounter.refusedAllFailed, 'backend_reset', true);
    else this.refuse(ListenerCounter.refusedAllFailed, 'connect_failure');
  }

  /** Every backend with room failed or none had room: wait in the queue if there is one. */
  private waitForRoom(): void {
    const policy = this.route.queue;
    const queue = policy === undefined ? undefined : this.proxy.queueOf(this.route);
    if (policy === undefined || queue === undefined) {
      this.refuse(ListenerCounter.refusedAtLimit, 'at_limit');
      return;
    }
    const firstWait = this.queueDeadline < 0;
    const now = this.proxy.now();
    this.queueDeadline = waitDeadline(this.queueDeadline, now, policy.timeoutMs);
    if (now >= this.queueDeadline) {
      this.timedOut();
      return;
    }
    this.queue = queue;
    // The queue may serve this session at once (a slot freed meanwhile): set state first.
    if (!queue.enqueue(this, policy.size, this.queueDeadline - now)) {
      this.queue = undefined;
      this.route.state?.bump(ClusterCell.overflowTotal);
      this.refuse(ListenerCounter.refusedAtLimit, 'at_limit');
      return;
    }
    if (firstWait) this.route.state?.bump(ClusterCell.queuedTotal);
  }

  /** `reset`: close the client with a reset, as the backend closed on us; else a FIN. */
  private refuse(counter: ListenerCounter, reason: TerminationReason, reset = false): void {
    this.proxy.counterWriter.bumpListener(this.listener.slot, counter);
    this.reason ??= reason;
    if (reset) this.client.reset();
    else this.client.destroy();
  }

  /** Give back this session's place under its backend's limit, waking waiters if any. */
  private releaseReservation(): void {
    const slot = this.reservedSlot;
    if (slot < 0) return;
    this.reservedSlot = -1;
    this.proxy.counterWriter.release(slot);
    const state = this.route.state;
    if (state?.anyoneWaiting === true) state.wakeWaiters();
  }

  private connect(target: SnapshotBackend): void {
    this.target = target;
    this.attempts++;
    this.attemptStartedAt = performance.now();
    this.walk.remember(this.route, target, sharedMonotonicMs());
    this.openBackendSockets++;
    this.backend = connectBackend(this.proxy.dataPath, target.host, target.port, this.route.connectTimeoutMs, this);
  }

  backendConnected(): void {
    const target = this.target;
    const backend = this.backend;
    if (backend === undefined || target === undefined) return;
    if (this.proxy.outlived(this.route, target)) {
      this.restartOnCurrentRoute();
      return;
    }
    this.connected = true;
    this.connectedAt = performance.now();
    this.activeAt = this.proxy.now();
    const counters = this.proxy.counterWriter;
    counters.observeConnectLatency(target.slot, this.connectedAt - this.attemptStartedAt);
    counters.bumpBackend(target.slot, BackendCounter.connectSuccesses, 1);
    counters.connectionOpened(target.slot);
    if (this.queueDeadline >= 0) this.route.state?.bump(ClusterCell.servedAfterWaitTotal);
    if (this.route.sendProxy !== undefined) backend.write(this.proxyHeader(this.route.sendProxy));
    this.client.startRelay();
  }

  /** send_proxy: the real client (or the one a PROXY header in front of us named). */
  private proxyHeader(version: 'v1' | 'v2'): Buffer {
    const origin = this.origin;
    if (origin !== undefined) return encodeProxyHeader(version, origin.source, origin.destination);
    const client = this.client;
    return encodeProxyHeader(
      version,
      { address: client.remoteAddress ?? '', port: client.remotePort ?? 0 },
      { address: client.localAddress ?? '', port: client.localPort ?? 0 },
    );
  }

  /** The connect timer: the attempt did not complete within the cluster's connect_timeout. */
  backendTimedOut(): void {
    // The timer is cleared at connect; a late event from before that changes nothing.
    if (this.connected) return;
    const target = this.target;
    this.lastAttemptReset = false;
    if (target !== undefined) {
      this.proxy.counterWriter.bumpBackend(target.slot, BackendCounter.connectTimeouts, 1);
      this.proxy.counterWriter.bumpBackend(target.slot, BackendCounter.connectFailures, 1);
      this.walk.failed(target.slot);
    }
    this.abandonAttempt();
  }

  backendFailed(code: string | undefined): void {
    if (this.connected) {
      // Passed on as a reset, so the client cannot mistake a truncated reply for a whole
      // one (what HAProxy does on a server abort). The bytes already written are with the
      // kernel; any still queued here are dropped, as a reset drops the kernel's queue.
      this.noteAbort(code === 'ECONNRESET' ? 'backend_reset' : 'backend_error');
      this.client.reset();
      return;
    }
    // The backend accepted and reset before the connect was seen here (it may have written
    // a reply first): a failed attempt, tried elsewhere, but passed on if it was the last.
    this.lastAttemptReset = code === 'ECONNRESET';
    const target = this.target;
    if (target !== undefined) {
      this.proxy.counterWriter.bumpBackend(target.slot, BackendCounter.connectFailures, 1);
      this.walk.failed(target.slot);
    }
    this.abandonAttempt();
  }

  /** Give up on the current backend attempt and try the next eligible backend. */
  private abandonAttempt(): void {
    if (!this.dropAttempt()) return;
    this.tryNextBackend();
  }

  /**
   * The backend was removed, or its drain ended, while this session connected to it by an
   * older version's route: drop that connection and start over on the current version's
   * backends (none left: refused as no_backend). Not a failure of the backend.
   */
  private restartOnCurrentRoute(): void {
    if (!this.dropAttempt()) return;
    const current = this.proxy.currentRoute(this.route.name);
    if (current === undefined) {
      this.refuse(ListenerCounter.refusedNoBackend, 'no_backend');
      return;
    }
    this.route = current;
    this.beginWalk();
    this.tryNextBackend();
  }

  /** Close the current attempt's socket (left only to finish closing) and its reservation. */
  private dropAttempt(): boolean {
    const backend = this.backend;
    if (backend === undefined) return false;
    this.backend = undefined;
    backend.abandon();
    this.releaseReservation();
    return true;
  }

  abandonedClosed(): void {
    this.openBackendSockets--;
    this.maybeFinish();
  }

  backendClosed(hadError: boolean): void {
    this.openBackendSockets--;
    // A clean close means both directions ended; the client's write side was already ended
    // and its buffered bytes must still flush, so only an error cuts the client.
    if (hadError && !this.clientClosed) this.client.destroy();
    this.maybeFinish();
  }

  backendEnded(): void {
    this.reason ??= 'backend_close';
    this.client.forwardFin();
  }

  clientEnded(): void {
    this.reason ??= 'client_close';
    const backend = this.backend;
    if (this.connected && backend !== undefined) backend.forwardFin();
  }

  /** The same for the backend: an aborted request must not look like a finished one. */
  clientFailed(code: string | undefined): void {
    this.noteAbort(code === 'ECONNRESET' ? 'client_reset' : 'client_error');
    const backend = this.backend;
    if (this.connected && backend !== undefined) backend.reset();
  }

  /**
   * An error ends the connection abnormally: it names the end even when one side had already
   * sent its FIN (a reply cut after the request was half-closed is still cut), but not when
   * Sluice itself was already closing the connection (idle, drain).
   */
  private noteAbort(reason: TerminationReason): void {
    if (this.reason === undefined || this.reason === 'client_close' || this.reason === 'backend_close') this.reason = reason;
  }

  idleTimeout(): void {
    this.reason ??= 'idle_timeout';
    this.client.destroy();
    this.backend?.destroy();
  }

  clientSocketClosed(hadError: boolean): void {
    this.clientClosed = true;
    this.reason ??= 'client_close';
    if (this.queue?.remove(this) === true) this.route.state?.bump(ClusterCell.abandonedTotal);
    this.queue = undefined;
    // Before the backend is connected there is nothing to finish; after, a clean client
    // close means both directions ended and the backend socket closes by itself.
    if (hadError || !this.connected) this.backend?.destroy();
    this.maybeFinish();
  }

  private maybeFinish(): void {
    if (this.finished || !this.clientClosed || this.openBackendSockets > 0) return;
    this.finished = true;
    const durationMs = performance.now() - this.acceptedAt;
    if (this.connected && this.target !== undefined) {
      this.flushBytes();
      this.proxy.counterWriter.observeConnectionDuration(this.target.slot, durationMs);
    }
    this.releaseReservation();
    if (this.loggedClient !== undefined) this.writeAccessLog(this.loggedClient, durationMs);
    this.lease?.release();
    this.proxy.ended(this);
  }

  private writeAccessLog(client: string, durationMs: number): void {
    this.proxy.accessLog.write({
      listener: this.listener.name,
      client,
      cluster: this.route.name,
      backend: this.connected ? (this.target?.address ?? null) : null,
      attempts: this.attempts,
      bytes_from_client: this.client.bytesRead - this.headerBytes,
      bytes_to_client: this.client.bytesWritten,
      duration_ms: roundMs(durationMs),
      connect_ms: this.connectedAt < 0 ? null : roundMs(this.connectedAt - this.acceptedAt),
      reason: this.reason ?? 'client_close',
    });
  }
}
