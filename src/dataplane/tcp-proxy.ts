/**
 * The TCP data path: for one accepted client, choose the cluster (weighted routes) and a
 * backend (sticky affinity, else the cluster's balancer), reserve a place under the backend's
 * connection limit, connect (bounded by the cluster's connect timeout, retrying the next
 * eligible backend on failure), then copy bytes both ways with back-pressure and forward each
 * direction's FIN on its own, so a client that half-closes still receives the whole reply.
 * A reset (or other error) on one side is passed to the other as a reset, never as a FIN,
 * so neither end takes an aborted exchange for a finished one.
 * When every eligible backend is at its limit, the client waits in the cluster's queue.
 *
 * Invariants:
 * - a session holds at most one reservation (global assigned-connection count) at a time,
 *   from before its connect attempt until the attempt fails or the connection closes;
 * - a session counts in its backend's connection total once, when it connects;
 * - every socket and timer a session creates is gone when both of its sockets closed;
 * - a client is never left open without a backend attempt in flight or a place in a queue.
 *
 * Cost per connection (what the bench measures, docs/data-plane-decisions.md): the event
 * handlers are module-level functions that find their session through a symbol on the
 * socket, so a session allocates no closures; bytes are copied by a hand-written loop
 * (`write`, pause on a full buffer, resume on `drain`) instead of `pipe`, which registers
 * eight listeners per direction; backend reads land in buffers the proxy owns; idle time is
 * judged by one sweep per worker instead of a timer per socket that every chunk refreshes.
 *
 * Observability costs per connection: four `performance.now()` reads (accept, attempt,
 * connect, close) feeding the shared connect-latency and duration histograms; the access
 * log record is built only for a connection the access log sampled at accept.
 */
import net from 'node:net';
import { ClusterCell } from '../shared/cluster-state.ts';
import type { WorkerCounters } from '../shared/counters.ts';
import { BackendCounter, ListenerCounter } from '../shared/counters.ts';
import type { ListenerBinding } from '../shared/messages.ts';
import type { SnapshotBackend } from '../shared/snapshot/types.ts';
import { roundMs, type AccessLog, type TerminationReason } from './access-log.ts';
import { AFFINITY_SEED } from '../shared/balancer/affinity.ts';
import { hashAddress, mixPort } from '../shared/balancer/hash.ts';
import { ConnectionQueue, monotonicMs, waitDeadline, type QueuedConnection } from './connection-queue.ts';
import { AdmissionLease, clientText, EdgeGate, type Admitted, type EdgeGateOptions, type Origin, type SessionStarter } from './edge-gate.ts';
import type { EdgePolicy } from './edge-policy.ts';
import { SWEEP_INTERVAL_MS, sweepIntervalFor, sweepVerdict } from './idle-sweep.ts';
import { encodeProxyHeader } from './proxy-protocol.ts';
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
  /** The shared per-IP table and hooks of the edge gate (limits, acl, PROXY header, SNI). */
  readonly edge?: Omit<EdgeGateOptions, 'counters'>;
  /** Monotonic milliseconds for idle time and queue deadlines; performance.now() unless a test fakes it. */
  readonly now?: () => number;
}

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

export class TcpProxy implements SessionStarter {
  private readonly sessions = new Set<TcpSession>();
  /** Clients still sending their PROXY header or ClientHello (edge-gate.ts). */
  private readonly preludes = new Set<net.Socket>();
  /** Preludes `destroyAll` closed, and why: not the client's protocol error. */
  private readonly cutPreludes = new WeakMap<net.Socket, TerminationReason>();
  private readonly gate: EdgeGate;
  private readonly counters: WorkerCounters;
  private readonly env: ProxyEnv;
  /** @internal read by sessions */
  readonly accessLog: AccessLog;
  private readonly queues = new Map<string, ConnectionQueue>();
  private sweepTimer: NodeJS.Timeout | undefined;
  /** The keep set of the last version that closed connections (closeUnkept), and its version. */
  private sweptKeep: ReadonlyMap<number, string> | undefined;
  private sweptVersion = 0;
  private sweepIntervalMs = SWEEP_INTERVAL_MS;
  private onIdle: (() => void) | undefined;
  private readonly onRefused: RefusalHandler | undefined;
  /** @internal the monotonic clock (ms) of the idle sweep and the queue deadlines. */
  readonly now: () => number;

  constructor(env: ProxyEnv) {
    this.env = env;
    this.now = env.now ?? monotonicMs;
    this.counters = env.counters;
    this.accessLog = env.accessLog;
    this.onRefused = env.onRefused;
    this.gate = new EdgeGate(this, { ...(env.edge ?? { limits: undefined }), counters: env.counters });
  }

  get connections(): number {
    return this.sessions.size + this.preludes.size;
  }

  /** Connections waiting in this worker's queues. */
  get queued(): number {
    let n = 0;
    for (const queue of this.queues.values()) n += queue.length;
    return n;
  }

  /**
   * Route one accepted (paused) client socket. A listener with edge settings (`edge`)
   * passes the gate first: limits, acl, PROXY header, SNI; it chooses the cluster only for
   * a client it admits.
   */
  handle(client: net.Socket, binding: ListenerBinding, listener: ListenerRoute | undefined, edge?: EdgePolicy): void {
    this.counters.bumpListener(binding.slot, ListenerCounter.accepted);
    const logged = this.accessLog.sample();
    if (edge !== undefined) {
      this.gate.accept(client, binding, listener, edge, logged);
      return;
    }
    this.startSession(client, binding, listener === undefined ? undefined : chooseCluster(listener), logged, undefined);
  }

  /** @internal (SessionStarter) open the session of an admitted client. */
  startSession(
    client: net.Socket,
    binding: ListenerBinding,
    route: ClusterRoute | undefined,
    logged: boolean,
    admitted: Admitted | undefined,
  ): void {
    if (route === undefined || route.eligible.length === 0) {
      this.counters.bumpListener(binding.slot, ListenerCounter.refusedNoBackend);
      if (logged) this.logRefused(clientText(client, admitted?.origin), binding, route?.name ?? null, 'no_backend');
      admitted?.lease.release();
      client.on('error', ignoreError);
      client.destroy();
      this.onRefused?.(binding.slot, route);
      return;
    }
    const session = new TcpSession(this, client, binding, route, logged, admitted);
    this.sessions.add(session);
    this.ensureSweep(route.idleTimeoutMs);
    session.start();
  }

  /** @internal (SessionStarter) */
  cutReason(client: net.Socket): TerminationReason | undefined {
    return this.cutPreludes.get(client);
  }

  /** @internal (SessionStarter) */
  preludeStarted(client: net.Socket): void {
    this.preludes.add(client);
  }

  /** @internal (SessionStarter) */
  preludeEnded(client: net.Socket): void {
    this.preludes.delete(client);
    // A refused client leaves without a session: it may have been the last connection.
    if (this.sessions.size === 0 && this.preludes.size === 0) this.notifyIdle();
  }

  /** Resolves when no session is left (at once if there is none). */
  whenIdle(): Promise<void> {
    if (this.connections === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.onIdle = resolve;
    });
  }

  /** Cut every open session; returns how many were cut. */
  destroyAll(reason: TerminationReason): number {
    const count = this.connections;
    for (const session of [...this.sessions]) session.abort(reason);
    // Each one's prelude reader sees the close and ends it (preludeEnded).
    for (const client of [...this.preludes]) {
      this.cutPreludes.set(client, reason);
      client.destroy();
    }
    return count;
  }

  /**
   * Close every connected session whose backend is not in `keep` (slot → id): the backend was
   * removed, or its drain ended. Called once per snapshot version that drops a backend, never
   * per accept. Sessions still connecting check `outlived` when they connect. Returns how
   * many were closed.
   */
  closeUnkept(keep: ReadonlyMap<number, string>, version: number): number {
    this.sweptKeep = keep;
    this.sweptVersion = version;
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
    if (this.preludes.size === 0) this.notifyIdle();
  }

  private notifyIdle(): void {
    const onIdle = this.onIdle;
    this.onIdle = undefined;
    onIdle?.();
  }

  /** @internal */
  get counterWriter(): WorkerCounters {
    return this.counters;
  }

  /** @internal (SessionStarter) a cluster's route in the current snapshot version. */
  currentRoute(name: string): ClusterRoute | undefined {
    return this.env.clusterRoute(name);
  }

  /**
   * @internal True when a version newer than `route` closed the connections to `target`
   * (removed, or its drain ended) while a session was connecting to it by that older route:
   * the connection must not outlive the sweep it missed. Plain reads, no shared memory.
   */
  outlived(route: ClusterRoute, target: SnapshotBackend): boolean {
    return route.version < this.sweptVersion && this.sweptKeep?.get(target.slot) !== target.id;
  }

  /** @internal this worker's queue of a cluster (created on first use). */
  queueOf(route: ClusterRoute): ConnectionQueue | undefined {
    const state = route.state;
    if (state === undefined) return undefined;
    let queue = this.queues.get(route.name);
    if (queue?.state !== state) {
      queue = new ConnectionQueue(state, this.env.worker, this.now);
      this.queues.set(route.name, queue);
    }
    return queue;
  }

  /** @internal (SessionStarter) the access log line of a client refused before any backend. */
  logRefused(client: string, listener: ListenerBinding, cluster: string | null, reason: TerminationReason): void {
    this.accessLog.write({
      listener: listener.name,
      client,
      cluster,
      backend: null,
      attempts: 0,
      bytes_from_client: 0,
      bytes_to_client: 0,
      duration_ms: 0,
      connect_ms: null,
      reason,
    });
  }

  /** One sweep per worker folds byte counts into the shared counters and closes idle sessions (idle-sweep.ts). */
  private ensureSweep(idleTimeoutMs: number): void {
    const wanted = sweepIntervalFor(idleTimeoutMs);
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
    const now = this.now();
    for (const session of this.sessions) session.sweep(now);
  };
}

function ignoreError(): void {
  // The socket is being torn down; its error has nowhere useful to go.
}

/**
 * Close with a reset (SO_LINGER 0) instead of a FIN. `resetAndDestroy` on a socket already
 * closed would raise ERR_SOCKET_CLOSED; such a socket has nothing left to pass on.
 */
function resetSocket(socket: net.Socket): void {
  if (!socket.destroyed) socket.resetAndDestroy();
}


const kSession = Symbol('sluice.session');

/** A client or backend socket that knows its session, so handlers need no closure. */
interface SessionSocket extends net.Socket {
  [kSession]: TcpSession;
}

function sessionOf(socket: net.Socket): TcpSession {
  return (socket as SessionSocket)[kSession];
}

class TcpSession implements QueuedConnection {
  readonly proxy: TcpProxy;
  readonly client: net.Socket;
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
  backend: net.Socket | undefined;
  private target: SnapshotBackend | undefined;
  /** The backend slot this session holds a reservation on, or -1. */
  private reservedSlot = -1;
  /** Where the walk over the eligible backends started, and how far it got. */
  private firstIndex = -1;
  private visited = 0;
  /** Some backend of the walk was at its limit. */
  private sawFull = false;
  /** The last connect attempt failed with a reset from the backend (see `backendFailed`). */
  private lastAttemptReset = false;
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
  /** When the session first queued, the time its wait ends (the proxy's clock); -1 = never queued. */
  private queueDeadline = -1;
  private connected = false;
  private clientClosed = false;
  /** Backend sockets not yet closed, including abandoned attempts still tearing down. */
  private openBackendSockets = 0;
  private finished = false;
  private countedFromClient = 0;
  private countedToClient = 0;
  /** The backend socket's own read buffer while it streams in bulk (see `onBackendRead`). */
  ownReadBuffer: Buffer<ArrayBuffer> | undefined;
  /** When bytes last moved, as seen by the sweep (the proxy's clock at connect, then per sweep). */
  private activeAt = 0;
  reason: TerminationReason | undefined;

  constructor(
    proxy: TcpProxy,
    client: net.Socket,
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
    const client = this.client as SessionSocket;
    client[kSession] = this;
    client.on('error', onClientError);
    client.on('end', onClientEnd);
    client.on('close', onClientClose);
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
    // Behind a balancer that sent a PROXY header, the client is the one it named.
    const source = this.origin?.source;
    const address = source === undefined ? this.client.remoteAddress : source.address;
    if (address === undefined) return;
    const port = source === undefined ? (this.client.remotePort ?? 0) : source.port;
    // Affinity is always by address: a client's port changes with every connection.
    this.ipHash = hashAddress(address);
    this.stickyHash = hashAddress(address, AFFINITY_SEED) || 1;
    this.clientHash = this.route.hashKey === 'source_ip_port' ? mixPort(this.ipHash, port) : this.ipHash;
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
    if (reset) resetSocket(this.client);
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

  backendConnected(backend: net.Socket): void {
    const target = this.target;
    if (backend !== this.backend || target === undefined) return;
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
    // From here idle time is the sweep's business; the connect timer is done.
    backend.setTimeout(0);
    backend.on('end', onBackendEnd);
    if (this.route.sendProxy !== undefined) backend.write(this.proxyHeader(this.route.sendProxy));
    const client = this.client;
    client.on('data', onClientData);
    client.on('drain', onClientDrain);
    backend.on('drain', onBackendDrain);
    client.resume();
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
    }
    this.abandonAttempt();
  }

  backendFailed(error: NodeJS.ErrnoException): void {
    if (this.connected) {
      // Passed on as a reset, so the client cannot mistake a truncated reply for a whole
      // one (what HAProxy does on a server abort). The bytes already written are with the
      // kernel; any still queued here are dropped, as a reset drops the kernel's queue.
      this.noteAbort(error.code === 'ECONNRESET' ? 'backend_reset' : 'backend_error');
      resetSocket(this.client);
      return;
    }
    // The backend accepted and reset before the connect was seen here (it may have written
    // a reply first): a failed attempt, tried elsewhere, but passed on if it was the last.
    this.lastAttemptReset = error.code === 'ECONNRESET';
    const target = this.target;
    if (target !== undefined) this.proxy.counterWriter.bumpBackend(target.slot, BackendCounter.connectFailures, 1);
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
    backend.removeAllListeners();
    backend.on('error', ignoreError);
    backend.once('close', onAbandonedClose);
    backend.destroy();
    this.backend = undefined;
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
    forwardFin(this.client);
  }

  clientEnded(): void {
    this.reason ??= 'client_close';
    const backend = this.backend;
    if (this.connected && backend !== undefined) forwardFin(backend);
  }

  /** The same for the backend: an aborted request must not look like a finished one. */
  clientFailed(error: NodeJS.ErrnoException): void {
    this.noteAbort(error.code === 'ECONNRESET' ? 'client_reset' : 'client_error');
    const backend = this.backend;
    if (this.connected && backend !== undefined) resetSocket(backend);
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

// Event handlers: `this` is the socket that emitted the event; each hands over to its session.

function onBackendConnect(this: net.Socket): void {
  sessionOf(this).backendConnected(this);
}

function onBackendTimeout(this: net.Socket): void {
  sessionOf(this).backendTimedOut();
}

function onBackendError(this: net.Socket, error: NodeJS.ErrnoException): void {
  sessionOf(this).backendFailed(error);
}

function onAbandonedClose(this: net.Socket): void {
  sessionOf(this).abandonedClosed();
}

function onBackendClose(this: net.Socket, hadError: boolean): void {
  sessionOf(this).backendClosed(hadError);
}

function onBackendEnd(this: net.Socket): void {
  sessionOf(this).backendEnded();
}

function onClientEnd(this: net.Socket): void {
  sessionOf(this).clientEnded();
}

function onClientError(this: net.Socket, error: NodeJS.ErrnoException): void {
  sessionOf(this).clientFailed(error);
}

function onClientClose(this: net.Socket, hadError: boolean): void {
  sessionOf(this).clientSocketClosed(hadError);
}

function onClientData(this: net.Socket, chunk: Buffer): void {
  const backend = sessionOf(this).backend;
  if (backend !== undefined && !backend.write(chunk)) this.pause();
}

function onClientDrain(this: net.Socket): void {
  sessionOf(this).backend?.resume();
}

function onBackendDrain(this: net.Socket): void {
  sessionOf(this).client.resume();
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
