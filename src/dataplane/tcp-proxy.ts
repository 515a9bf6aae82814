/**
 * The TCP data path: for one accepted client, choose the cluster (weighted routes) and a
 * backend (sticky affinity, else the cluster's balancer), reserve a place under the backend's
 * connection limit, connect (bounded by the cluster's connect timeout, retrying the next
 * eligible backend on failure), then copy bytes both ways with back-pressure and forward each
 * direction's FIN on its own, so a client that half-closes still receives the whole reply.
 * When every eligible backend is at its limit, the client waits in the cluster's queue.
 *
 * Invariants:
 * - a session holds at most one reservation (global assigned-connection count) at a time,
 *   from before its connect attempt until the attempt fails or the connection closes;
 * - a session counts in its backend's connection total once, when it connects;
 * - every socket and timer a session creates is gone when both of its sockets closed;
 * - a client is never left open without a backend attempt in flight or a place in a queue.
 *
 * Observability costs per connection: four `performance.now()` reads (accept, attempt,
 * connect, close) feeding the shared connect-latency and duration histograms; the access
 * log record is built only for a connection the access log sampled at accept.
 */
import net from 'node:net';
import { formatHostPort } from '../shared/address.ts';
import { ClusterCell } from '../shared/cluster-state.ts';
import type { WorkerCounters } from '../shared/counters.ts';
import { BackendCounter, ListenerCounter } from '../shared/counters.ts';
import type { ListenerBinding } from '../shared/messages.ts';
import type { SnapshotBackend } from '../shared/snapshot/types.ts';
import { roundMs, type AccessLog, type TerminationReason } from './access-log.ts';
import { AFFINITY_SEED } from './balancer/affinity.ts';
import { hashAddress, mixPort } from './balancer/hash.ts';
import { ConnectionQueue, type QueuedConnection } from './connection-queue.ts';
import { chooseCluster, type ClusterRoute, type ListenerRoute } from './routing-table.ts';

export type { TerminationReason };

/** Called when a client is refused for want of an eligible backend (counted before the call). */
export type RefusalHandler = (listenerSlot: number, route: ClusterRoute | undefined) => void;


export interface ProxyEnv {
  readonly counters: WorkerCounters;
  readonly worker: number;
  readonly accessLog: AccessLog;
  /** A cluster's route in the current snapshot (a queued connection re-resolves on retry). */
  readonly clusterRoute: (name: string) => ClusterRoute | undefined;
  readonly onRefused?: RefusalHandler;
}

/** How often byte counts of long-lived connections are folded into the shared counters. */
const BYTE_FLUSH_INTERVAL_MS = 1000;

export class TcpProxy {
  private readonly sessions = new Set<TcpSession>();
  private readonly counters: WorkerCounters;
  private readonly env: ProxyEnv;
  /** @internal read by sessions */
  readonly accessLog: AccessLog;
  private readonly queues = new Map<string, ConnectionQueue>();
  private byteFlushTimer: NodeJS.Timeout | undefined;
  private onIdle: (() => void) | undefined;
  private readonly onRefused: RefusalHandler | undefined;

  constructor(env: ProxyEnv) {
    this.env = env;
    this.counters = env.counters;
    this.accessLog = env.accessLog;
    this.onRefused = env.onRefused;
  }

  get connections(): number {
    return this.sessions.size;
  }

  /** Connections waiting in this worker's queues. */
  get queued(): number {
    let n = 0;
    for (const queue of this.queues.values()) n += queue.length;
    return n;
  }

  /** Route one accepted (paused) client socket. */
  handle(client: net.Socket, binding: ListenerBinding, listener: ListenerRoute | undefined): void {
    this.counters.bumpListener(binding.slot, ListenerCounter.accepted);
    const logged = this.accessLog.sample();
    const route = listener === undefined ? undefined : chooseCluster(listener);
    if (route === undefined || route.eligible.length === 0) {
      this.counters.bumpListener(binding.slot, ListenerCounter.refusedNoBackend);
      if (logged) this.logRefused(client, binding, route);
      client.on('error', ignoreError);
      client.destroy();
      this.onRefused?.(binding.slot, route);
      return;
    }
    const session = new TcpSession(this, client, binding, route, logged);
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

  /** @internal */
  currentRoute(name: string): ClusterRoute | undefined {
    return this.env.clusterRoute(name);
  }

  /** @internal this worker's queue of a cluster (created on first use). */
  queueOf(route: ClusterRoute): ConnectionQueue | undefined {
    const state = route.state;
    if (state === undefined) return undefined;
    let queue = this.queues.get(route.name);
    if (queue?.state !== state) {
      queue = new ConnectionQueue(state, this.env.worker);
      this.queues.set(route.name, queue);
    }
    return queue;
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

class TcpSession implements QueuedConnection {
  private readonly proxy: TcpProxy;
  private readonly client: net.Socket;
  private readonly listener: ListenerBinding;
  private route: ClusterRoute;
  /** performance.now() at accept, at the current attempt, and at connect (-1 = not connected). */
  private readonly acceptedAt: number;
  private attemptStartedAt = 0;
  private connectedAt = -1;
  /** Set at accept only for a connection the access log sampled. */
  private readonly loggedClient: string | undefined;
  /** Connect attempts made (for the access log). */
  private attempts = 0;
  private backend: net.Socket | undefined;
  private target: SnapshotBackend | undefined;
  /** The backend slot this session holds a reservation on, or -1. */
  private reservedSlot = -1;
  /** Where the walk over the eligible backends started, and how far it got. */
  private firstIndex = -1;
  private visited = 0;
  /** Some backend of the walk was at its limit. */
  private sawFull = false;
  /** Hash of the client's address (affinity key, part one; consistent_hash on source_ip). */
  private ipHash = 0;
  /** An independent second hash of the address (affinity key, part two); 0 = unknown client. */
  private stickyHash = 0;
  /** What consistent_hash looks up: the address hash, with the port mixed in for source_ip_port. */
  private clientHash = 0;
  /** The client's remembered backend slot and its expiry (table seconds), or -1. */
  private stickySlot = -1;
  private stickyExpires = 0;
  private hashed = false;
  private queue: ConnectionQueue | undefined;
  /** When the session first queued, the time its wait ends (ms since the epoch); 0 = never queued. */
  private queueDeadline = 0;
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

  /** QueuedConnection: a backend may have room now (called by the queue, in arrival order). */
  retry(): boolean {
    if (this.clientClosed) return true;
    this.route = this.proxy.currentRoute(this.route.name) ?? this.route;
    this.beginWalk();
    const target = this.reserveNext();
    if (target === undefined) return false;
    this.queue = undefined;
    this.connect(target);
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
    this.visited = 0;
    this.sawFull = false;
    this.firstIndex = this.route.eligible.length === 0 ? -1 : Math.max(0, this.preferredIndex());
  }

  /** Sticky affinity first (while its backend is eligible), else the cluster's balancer. */
  private preferredIndex(): number {
    const route = this.route;
    if (route.hashKey === undefined && route.sticky === undefined) return route.balancer.pick(0);
    this.hashClient();
    const sticky = route.sticky;
    if (sticky !== undefined && this.stickyHash !== 0) {
      const slot = sticky.table.lookup(this.ipHash, this.stickyHash, sticky.table.now(Date.now()));
      const index = slot < 0 ? undefined : sticky.indexBySlot.get(slot);
      if (index !== undefined) {
        this.stickySlot = slot;
        this.stickyExpires = sticky.table.foundExpires;
        return index;
      }
    }
    return route.balancer.pick(this.clientHash);
  }

  private hashClient(): void {
    if (this.hashed) return;
    this.hashed = true;
    const address = this.client.remoteAddress;
    if (address === undefined) return;
    // Affinity is always by address: a client's port changes with every connection.
    this.ipHash = hashAddress(address);
    this.stickyHash = hashAddress(address, AFFINITY_SEED) || 1;
    this.clientHash = this.route.hashKey === 'source_ip_port' ? mixPort(this.ipHash, this.client.remotePort ?? 0) : this.ipHash;
  }

  /**
   * Walk on from the preferred backend, reserving the first one below its limit; one accept
   * tries each eligible backend at most once. Undefined when the walk is over.
   */
  private reserveNext(): SnapshotBackend | undefined {
    const { eligible, limits } = this.route;
    const n = eligible.length;
    const counters = this.proxy.counterWriter;
    while (this.visited < n) {
      const index = (this.firstIndex + this.visited) % n;
      this.visited++;
      const target = eligible[index];
      if (target === undefined) continue;
      if (counters.reserve(target.slot, limits[index] ?? 0)) {
        this.reservedSlot = target.slot;
        return target;
      }
      this.sawFull = true;
    }
    return undefined;
  }

  private tryNextBackend(): void {
    if (this.clientClosed) return;
    const target = this.reserveNext();
    if (target !== undefined) {
      this.connect(target);
      return;
    }
    if (this.sawFull) this.waitForRoom();
    else if (this.route.eligible.length === 0) this.refuse(ListenerCounter.refusedNoBackend, 'no_backend');
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
    const firstWait = this.queueDeadline === 0;
    const now = Date.now();
    if (firstWait) this.queueDeadline = now + policy.timeoutMs;
    const remaining = this.queueDeadline - now;
    if (remaining <= 0) {
      this.timedOut();
      return;
    }
    this.queue = queue;
    // The queue may serve this session at once (a slot freed meanwhile): set state first.
    if (!queue.enqueue(this, policy.size, remaining)) {
      this.queue = undefined;
      this.route.state?.bump(ClusterCell.overflowTotal);
      this.refuse(ListenerCounter.refusedAtLimit, 'at_limit');
      return;
    }
    if (firstWait) this.route.state?.bump(ClusterCell.queuedTotal);
  }

  private refuse(counter: ListenerCounter, reason: TerminationReason): void {
    this.proxy.counterWriter.bumpListener(this.listener.slot, counter);
    this.reason ??= reason;
    this.client.destroy();
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
    // Remembered as soon as it is chosen (not when connected), so the client's next
    // connections, in any worker, follow it even while this one is still connecting; a
    // failed attempt is overwritten by the next backend tried.
    const sticky = this.route.sticky;
    if (sticky !== undefined && this.stickyHash !== 0) {
      const now = sticky.table.now(Date.now());
      const expires = now + sticky.ttlSeconds;
      // An entry already naming this backend is rewritten only to move its expiry on, at
      // most once a second: few writes, so other workers rarely find it mid-write.
      if (target.slot !== this.stickySlot || this.stickyExpires < expires) {
        sticky.table.remember(this.ipHash, this.stickyHash, target.slot, expires, now);
        this.stickySlot = target.slot;
        this.stickyExpires = expires;
      }
    }
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
    if (this.queueDeadline !== 0) this.route.state?.bump(ClusterCell.servedAfterWaitTotal);
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
    this.releaseReservation();
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
    if (this.queue?.remove(this) === true) this.route.state?.bump(ClusterCell.abandonedTotal);
    this.queue = undefined;
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
      this.proxy.counterWriter.observeConnectionDuration(this.target.slot, durationMs);
    }
    this.releaseReservation();
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
