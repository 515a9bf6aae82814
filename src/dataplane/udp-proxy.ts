/**
 * The UDP data path of one listener in one data-plane worker. Every worker binds the
 * listener's address with SO_REUSEPORT, so the kernel hashes each client (its address and
 * port) to one worker; datagrams never cross threads.
 *
 * A client's first datagram creates a session: a backend picked once (round robin) and a
 * socket connected to it (udp-backend-socket.ts). The client's datagrams go out on that
 * socket; the backend's replies come back to the client from the listener's socket (so
 * from the address the client sent to). A session ends after `sessionTimeoutMs` without traffic either way,
 * after `maxReplies` replies, when evicted (least recently active first) to stay within
 * the worker's share of `maxSessions`, or when the listener closes.
 *
 * Socket reuse: a session that ends at its `maxReplies`-th reply gives its socket to the
 * listener's pool (udp-socket-pool.ts, at most POOL_PER_BACKEND per backend), and the next
 * session to that backend takes it instead of creating one. A socket whose client sent more
 * than was answered waits in the pool until the owed replies arrived (they are dropped and
 * counted in udp_datagrams_dropped, never passed on) or it idled out. Pooled sockets close
 * after POOL_IDLE_MAX_MS (or session_timeout, if shorter) unused, when their backend leaves
 * the snapshot's keep set, and when the listener retires or closes. Every other end closes
 * the session's socket: a long session has one socket for its life.
 *
 * Routing: one Atomics.load of the snapshot version per client datagram (through the
 * router), which is what lets a session whose backend left the routable set (its drain
 * ended, it is unhealthy, or it was removed) be re-picked at its very next datagram; a
 * draining or weight-0 backend keeps its sessions until they go idle. An ICMP port-unreachable from a backend (ECONNREFUSED on the
 * connected socket) counts as a connect failure of that backend (the passive health
 * signal), and the session's next datagram goes to another backend.
 *
 * Handover (udp-handover.ts): the old process exports its sessions (client -> backend) and
 * closes at once (`handOver`); the new one holds the datagrams it receives until it has them
 * (`hold`, `seed`), and a handed-over client's next session starts on the same backend.
 *
 * Per datagram: no message passing, no logging, no timer; counters are plain stores into
 * this worker's row. Every socket buffer is bounded: kernel buffers by recv/send buffer
 * settings, Node's user-space send queue by the send buffer size (over it, drop).
 *
 * What must stay true:
 * - a session holds a socket exactly while it is in the table; a socket is held by at most
 *   one session, and a datagram reaches only the session holding it;
 * - every open session counts once in the active and UDP-session gauges, and its end
 *   subtracts it once;
 * - the idle-sweep timer is armed exactly while the table or the pool is not empty.
 */
import dgram from 'node:dgram';
import { formatHostPort } from '../shared/address.ts';
import { roundMs, type AccessLog, type TerminationReason } from './access-log.ts';
import { BackendCounter, ListenerCounter, type WorkerCounters } from '../shared/counters.ts';
import type { ListenerBinding, UdpListenerSettings } from '../shared/messages.ts';
import type { ListenFailure } from './listeners.ts';
import { chooseCluster, type ClusterRoute, type ListenerRoute } from './routing-table.ts';
import { BackendSocket, type IdleSocketEvents } from './udp-backend-socket.ts';
import { literalLookup, socketType } from './udp-lookup.ts';
import { HandedOverAffinities, handoverSessions, HELD_DATAGRAMS_MAX, HeldDatagrams } from './udp-handover.ts';
import type { UdpHandoverSession } from '../shared/messages.ts';
import { reserveSessionBackend } from './backend-choice.ts';
import { UdpSession, type SessionOwner } from './udp-session.ts';
import { SessionTable } from './udp-session-table.ts';
import { clientId, type ClientId } from './udp-client-id.ts';
import { SocketPool } from './udp-socket-pool.ts';
import { sharedMonotonicMs } from '../shared/shared-clock.ts';

export type UdpSessionEnd = 'idle_timeout' | 'max_replies' | 'evicted' | 'backend_gone' | 'refused' | 'socket_error' | 'drain' | 'closed';

export interface UdpProxyDeps {
  /** The router's per-listener route (one Atomics.load of the snapshot version). */
  readonly routeFor: (listener: string) => ListenerRoute | undefined;
  /** A cluster's route in the current version (a session re-checks its backend after a publish). */
  readonly clusterRoute: (name: string) => ClusterRoute | undefined;
  readonly counters: WorkerCounters;
  /** Data-plane workers sharing the listener: each holds maxSessions / workers sessions. */
  readonly workers: number;
  /** Monotonic milliseconds. */
  readonly now: () => number;
  readonly warn: (message: string, details: Record<string, unknown>) => void;
  /** A datagram found no backend to start a session with (the worker logs it once per version). */
  readonly onRefused?: (listenerSlot: number, route: ClusterRoute | undefined) => void;
  /** Whether this worker reports what every worker would find the same (capped buffers): worker 0 only. */
  readonly reportsSharedFindings: boolean;
  /** One line per ended session (sampled at creation), as TCP connections get; none when absent. */
  readonly accessLog?: AccessLog;
}

/** How an ended session reads in the access log (the TCP proxy's reasons, plus two of UDP's own). */
const ACCESS_REASON: Record<UdpSessionEnd, TerminationReason> = {
  idle_timeout: 'idle_timeout',
  max_replies: 'max_replies',
  evicted: 'evicted',
  backend_gone: 'backend_drained',
  refused: 'backend_error',
  socket_error: 'backend_error',
  drain: 'drain',
  closed: 'drain',
};

/** Idle sweeps run at most this often per listener, so a table of staggered sessions does not wake the loop per session. */
const MIN_SWEEP_STEP_MS = 5;
const MAX_SWEEP_STEP_MS = 1000;

/**
 * Sockets kept per backend for reuse, per listener and worker: enough for the concurrency of
 * one-reply traffic a worker sustains (each lent socket serves one request at a time), few
 * enough that idle ones cost little (one fd and its kernel buffers each).
 */
export const POOL_PER_BACKEND = 64;
/** An unused pooled socket closes after this long (or session_timeout, if shorter). */
export const POOL_IDLE_MAX_MS = 10_000;

export function workerShare(maxSessions: number, workers: number): number {
  return Math.max(1, Math.floor(maxSessions / Math.max(1, workers)));
}

export class UdpProxy implements SessionOwner, IdleSocketEvents {
  readonly binding: ListenerBinding;
  private settings: UdpListenerSettings;
  private readonly deps: UdpProxyDeps;
  private readonly table: SessionTable<UdpSession>;
  private readonly pool = new SocketPool<BackendSocket>(POOL_PER_BACKEND);
  private socket: dgram.Socket | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private accepting = true;
  /** Retiring (drain, or removed by a reload): the address is released once the last session ended. */
  private closeWhenIdle = false;
  private idleWaiters: (() => void)[] = [];
  /** Handover, new side: datagrams wait here until the old process's sessions arrived. */
  private held: HeldDatagrams | undefined;
  /** Handover, new side: the old process's client -> backend, each used once. */
  private affinities: HandedOverAffinities | undefined;
  /** Handover, old side: sessions are exported; the socket closes once every worker's are. */
  private handingOver = false;

  constructor(binding: ListenerBinding, settings: UdpListenerSettings, deps: UdpProxyDeps) {
    this.binding = binding;
    this.settings = settings;
    this.deps = deps;
    this.table = new SessionTable(workerShare(settings.maxSessions, deps.workers));
  }

  get sessions(): number {
    return this.table.size;
  }

  /** Bind the listener's address; resolves with the failure, if any, in the TCP listeners' shape. */
  bind(): Promise<ListenFailure | undefined> {
    const { host, port } = this.binding;
    const socket = dgram.createSocket({
      type: socketType(host),
      // reusePort alone: every worker joins one group. reuseAddr is left off on purpose,
      // since on Linux it would let another process's socket bind the port and take its traffic.
      reusePort: true,
      lookup: literalLookup,
      recvBufferSize: this.settings.recvBufferBytes,
      sendBufferSize: this.settings.sendBufferBytes,
    });
    return new Promise((resolve) => {
      const onBindError = (error: NodeJS.ErrnoException): void => {
        socket.close();
        resolve({
          listener: this.binding.name,
          address: `${formatHostPort(host, port)} (udp)`,
          code: error.code ?? 'UNKNOWN',
          message: error.message,
        });
      };
      socket.once('error', onBindError);
      socket.bind({ address: host, port }, () => {
        socket.removeListener('error', onBindError);
        socket.on('error', this.onListenerError);
        socket.on('message', this.onClientDatagram);
        this.socket = socket;
        if (this.deps.reportsSharedFindings) this.checkBufferSizes(socket);
        resolve(undefined);
      });
    });
  }

  /** Handover, new side: hold client datagrams until `seed` (bounded by the receive buffer size). */
  hold(): void {
    this.held ??= new HeldDatagrams(HELD_DATAGRAMS_MAX, this.settings.recvBufferBytes);
  }

  /**
   * Sessions of this listener elsewhere (the old process's, or on the old side the other
   * workers'): a client among them starts its next session here on the same backend.
   */
  learn(sessions: readonly UdpHandoverSession[]): void {
    const affinities = new HandedOverAffinities(sessions, this.deps.now(), this.settings.sessionTimeoutMs, this.settings.maxSessions);
    this.affinities = affinities.size > 0 ? affinities : undefined;
  }

  /** Handover, new side: take the old process's sessions for this listener, then serve what was held. */
  seed(sessions: readonly UdpHandoverSession[]): void {
    this.learn(sessions);
    const held = this.held;
    this.held = undefined;
    if (held === undefined) return;
    for (const { datagram, client } of held.take()) this.onClientDatagram(datagram, client);
  }

  /**
   * Handover, old side: start no session from now on and export the ones there are (most
   * recent first). The caller closes the listener once every worker has exported: closing one
   * socket of the port's SO_REUSEPORT group rehashes clients over the others, and a client
   * moved to another old worker must not start a session there on a new backend.
   */
  handOver(stop: boolean): UdpHandoverSession[] {
    if (stop) {
      this.accepting = false;
      this.handingOver = true;
    }
    return handoverSessions(this.table.sessions(), this.deps.now(), this.settings.maxSessions);
  }

  /** Apply changed limits to the running listener (a reload that kept its address). */
  update(settings: UdpListenerSettings): void {
    this.settings = settings;
    this.table.capacity = workerShare(settings.maxSessions, this.deps.workers);
    for (let victim = this.overCapacity(); victim !== undefined; victim = this.overCapacity()) this.end(victim, 'evicted');
    try {
      this.socket?.setRecvBufferSize(settings.recvBufferBytes);
      this.socket?.setSendBufferSize(settings.sendBufferBytes);
    } catch (error) {
      this.deps.warn('udp listener: could not resize its socket buffers; keeping the old sizes', { listener: this.binding.name, err: error });
    }
    this.rearmSweep();
  }

  /**
   * Draining, or removed by a reload: existing sessions keep flowing (their replies must leave
   * from this address), datagrams that would start one are dropped, and the socket closes as
   * soon as the last session ended, so the port's other sockets (a successor's, on handover)
   * get all of its traffic as early as possible.
   */
  retire(): void {
    this.accepting = false;
    this.closeWhenIdle = true;
    this.pool.closeAll();
    if (this.table.size === 0) this.close();
  }

  /** The bound port (the kernel's pick when the binding asked for port 0), or 0 when not bound. */
  boundPort(): number {
    return this.socket?.address().port ?? 0;
  }

  /** Whether the listening socket is closed (or never bound). */
  get closed(): boolean {
    return this.socket === undefined;
  }

  /** Resolves once no session is open (at once if none is). */
  whenIdle(): Promise<void> {
    if (this.table.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** End the sessions whose backend is not in `keep` (drained or removed); returns how many. O(table), per such snapshot. */
  endUnkept(keep: ReadonlyMap<number, string>): number {
    this.pool.closeUnkept(keep);
    let ended = 0;
    for (const session of this.table.sessions()) {
      if (keep.get(session.backend.slot) === session.backend.id) continue;
      this.end(session, 'backend_gone');
      ended++;
    }
    return ended;
  }

  /** End every session; returns how many were open. */
  endAll(reason: UdpSessionEnd): number {
    const sessions = this.table.sessions();
    for (const session of sessions) this.end(session, reason);
    return sessions.length;
  }

  /** End every session and release the listener's address. */
  close(): void {
    this.accepting = false;
    const socket = this.socket;
    this.socket = undefined;
    this.held = undefined;
    this.endAll('closed');
    this.pool.closeAll();
    if (this.sweepTimer !== undefined) clearTimeout(this.sweepTimer);
    this.sweepTimer = undefined;
    socket?.close();
  }

  // ── client side ────────────────────────────────────────────────────────────────

  private readonly onClientDatagram = (datagram: Buffer, client: dgram.RemoteInfo): void => {
    if (this.held !== undefined) {
      if (!this.held.push(datagram, client)) this.deps.counters.bumpListener(this.binding.slot, ListenerCounter.udpDatagramsDropped);
      return;
    }
    const listener = this.deps.routeFor(this.binding.name);
    const now = this.deps.now();
    const id = clientId(client.address, client.port);
    let session = this.table.get(id);
    let avoidSlot = -1;
    if (session !== undefined && !this.keeps(session, listener)) {
      if (session.refused) avoidSlot = session.backend.slot;
      this.end(session, session.refused ? 'refused' : 'backend_gone');
      session = undefined;
    }
    if (session === undefined) {
      session = this.open(id, client, listener, now, avoidSlot);
      if (session === undefined) return;
    } else {
      this.table.touch(session, now);
    }
    this.forward(session, datagram);
  };

  /** Whether a session may go on with its backend in the current version. */
  private keeps(session: UdpSession, listener: ListenerRoute | undefined): boolean {
    if (session.refused) return false;
    // The listener's route is rebuilt with every version: the same object, nothing moved.
    if (session.seen === listener) return true;
    // A listener removed by a reload has no route any more; while it retires, its sessions finish.
    if (listener === undefined) return !this.accepting;
    const cluster = this.deps.clusterRoute(session.route.name);
    if (cluster?.retaining.get(session.backend.slot) !== session.backend.id) return false;
    // Checked once per session per snapshot version.
    session.route = cluster;
    session.seen = listener;
    return true;
  }

  private open(
    id: ClientId,
    client: dgram.RemoteInfo,
    listener: ListenerRoute | undefined,
    now: number,
    avoidSlot: number,
  ): UdpSession | undefined {
    const counters = this.deps.counters;
    const listenerSlot = this.binding.slot;
    const key = `${client.address}:${client.port}`;
    const handed = listener === undefined ? undefined : this.handedOver(key, listener, now, avoidSlot);
    if (!this.accepting && handed === undefined && !this.oneReplyHandover()) {
      counters.bumpListener(listenerSlot, ListenerCounter.refusedDraining);
      return undefined;
    }
    const route = handed?.route ?? (listener === undefined ? undefined : chooseCluster(listener));
    if (route === undefined || route.eligible.length === 0) {
      counters.bumpListener(listenerSlot, ListenerCounter.refusedNoBackend);
      this.deps.onRefused?.(listenerSlot, route);
      return undefined;
    }
    // Holds a place under the backend's max_connections until the session ends.
    const backend = reserveSessionBackend(route, client.address, client.port, avoidSlot, counters, sharedMonotonicMs(), handed?.index ?? -1);
    if (backend === undefined) {
      counters.bumpListener(listenerSlot, ListenerCounter.refusedAtLimit);
      return undefined;
    }
    if (this.table.full) {
      const victim = this.table.oldest();
      if (victim !== undefined) this.end(victim, 'evicted');
    }
    const session = new UdpSession(this, id, key, client.address, client.port, route, backend);
    session.seen = listener;
    session.createdAt = now;
    session.logged = this.deps.accessLog?.sample() === true;
    this.table.add(session, now);
    counters.udpSessionOpened(backend.slot, listenerSlot);
    const pooled = this.pool.take(backend.slot, backend.id);
    const socket = pooled ?? new BackendSocket(backend, this);
    session.attach(socket);
    if (pooled === undefined) socket.open(this.settings);
    if (session.closed) return undefined;
    if (this.sweepTimer === undefined) this.armSweep();
    return session;
  }

  /**
   * Handing over, sessions that end at their first reply still start: such a session has no
   * backend to keep (the client's next query is a new session anyway), so it need not be
   * exported, and refusing it would lose the query.
   */
  private oneReplyHandover(): boolean {
    return this.handingOver && this.settings.maxReplies === 1;
  }

  /** The client's backend in the previous process, if it was handed over and is still eligible. */
  private handedOver(key: string, listener: ListenerRoute, now: number, avoidSlot: number): { route: ClusterRoute; index: number } | undefined {
    const affinity = this.affinities?.take(key, now);
    if (affinity === undefined) return undefined;
    // Only a cluster this listener still routes to (a new config may have moved it).
    const route = listener.clusters.find((c) => c.name === affinity.cluster);
    const index = route?.eligible.findIndex((b) => b.id === affinity.backend) ?? -1;
    if (route === undefined || index < 0 || route.eligible[index]?.slot === avoidSlot) return undefined;
    return { route, index };
  }

  private forward(session: UdpSession, datagram: Buffer): void {
    const counters = this.deps.counters;
    if (!session.send(datagram, this.settings.sendBufferBytes)) {
      counters.bumpListener(this.binding.slot, ListenerCounter.udpDatagramsDropped);
      return;
    }
    const slot = session.backend.slot;
    session.bytesFromClient += datagram.length;
    counters.bumpBackend(slot, BackendCounter.udpDatagramsFromClient, 1);
    counters.bumpBackend(slot, BackendCounter.bytesFromClient, datagram.length);
    counters.bumpListener(this.binding.slot, ListenerCounter.udpDatagramsFromClient);
  }

  // ── backend side (called by sessions) ──────────────────────────────────────────

  /** A datagram from the session's backend: pass it to the client. */
  reply(session: UdpSession, datagram: Buffer): void {
    const socket = this.socket;
    if (socket === undefined || session.closed) return;
    const counters = this.deps.counters;
    const slot = session.backend.slot;
    if (!session.answered) {
      session.answered = true;
      counters.bumpBackend(slot, BackendCounter.connectSuccesses, 1);
    }
    if (socket.getSendQueueSize() + datagram.length > this.settings.sendBufferBytes) {
      counters.bumpListener(this.binding.slot, ListenerCounter.udpDatagramsDropped);
    } else {
      // Counted first: once sent, the client may look at the counters before this thread runs on.
      session.bytesToClient += datagram.length;
      counters.bumpBackend(slot, BackendCounter.udpDatagramsToClient, 1);
      counters.bumpBackend(slot, BackendCounter.bytesToClient, datagram.length);
      counters.bumpListener(this.binding.slot, ListenerCounter.udpDatagramsToClient);
      socket.send(datagram, session.clientPort, session.clientAddress);
    }
    session.replies++;
    const { maxReplies } = this.settings;
    if (maxReplies > 0 && session.replies >= maxReplies) this.end(session, 'max_replies');
    else this.table.touch(session, this.deps.now());
  }

  /** The backend's port was unreachable: a passive failure; the next datagram re-picks. */
  refused(session: UdpSession): void {
    this.deps.counters.bumpBackend(session.backend.slot, BackendCounter.connectFailures, 1);
    session.refused = true;
  }

  /** The session's socket could not be set up or resolve its backend. */
  failed(session: UdpSession, backendAtFault: boolean): void {
    if (backendAtFault) this.deps.counters.bumpBackend(session.backend.slot, BackendCounter.connectFailures, 1);
    this.deps.counters.bumpListener(this.binding.slot, ListenerCounter.udpDatagramsDropped);
    this.end(session, 'socket_error');
  }

  private end(session: UdpSession, reason: UdpSessionEnd): void {
    if (session.closed) return;
    session.closed = true;
    this.table.remove(session);
    const counters = this.deps.counters;
    // Why it ended is counted before the gauge drops, so a reader that sees the drop sees why.
    if (reason === 'evicted') counters.bumpListener(this.binding.slot, ListenerCounter.udpSessionsEvicted);
    else if (reason === 'idle_timeout') counters.bumpListener(this.binding.slot, ListenerCounter.udpSessionsExpired);
    counters.udpSessionClosed(session.backend.slot, this.binding.slot);
    counters.release(session.backend.slot);
    // A TCP connection of the same cluster may be queued for this backend's place.
    const state = session.route.state;
    if (state?.anyoneWaiting === true) state.wakeWaiters();
    const durationMs = this.deps.now() - session.createdAt;
    counters.observeConnectionDuration(session.backend.slot, durationMs);
    if (session.logged) this.writeAccessLog(session, reason, durationMs);
    this.recycle(session, reason);
    if (this.table.size === 0) this.becameIdle();
  }

  /** Only a session that ended at its last reply leaves a socket fit for another client. */
  private recycle(session: UdpSession, reason: UdpSessionEnd): void {
    const socket = session.detach();
    if (socket === undefined) return;
    if (reason !== 'max_replies' || !this.accepting || !socket.ready || socket.broken) {
      socket.close();
      return;
    }
    this.pool.give(socket, this.deps.now());
  }

  // ── pooled sockets (called by the sockets) ─────────────────────────────────────

  /** A datagram for a session that had ended: never passed on. */
  stray(): void {
    this.deps.counters.bumpListener(this.binding.slot, ListenerCounter.udpDatagramsDropped);
  }

  settled(socket: BackendSocket): void {
    this.pool.settle(socket, this.deps.now());
  }

  private poolIdleMs(): number {
    return Math.min(POOL_IDLE_MAX_MS, this.settings.sessionTimeoutMs);
  }

  private writeAccessLog(session: UdpSession, reason: UdpSessionEnd, durationMs: number): void {
    this.deps.accessLog?.write({
      listener: this.binding.name,
      client: formatHostPort(session.clientAddress, session.clientPort),
      cluster: session.route.name,
      backend: session.backend.address,
      attempts: 1,
      bytes_from_client: session.bytesFromClient,
      bytes_to_client: session.bytesToClient,
      duration_ms: roundMs(durationMs),
      // UDP has no connect.
      connect_ms: null,
      reason: ACCESS_REASON[reason],
    });
  }

  // ── idle sweep ─────────────────────────────────────────────────────────────────

  private armSweep(): void {
    const timeoutMs = this.settings.sessionTimeoutMs;
    const sessionAt = this.table.nextExpiry(timeoutMs);
    const poolAt = this.pool.nextExpiry(this.poolIdleMs());
    const at = sessionAt === undefined ? poolAt : poolAt === undefined ? sessionAt : Math.min(sessionAt, poolAt);
    if (at === undefined) return;
    const step = Math.min(MAX_SWEEP_STEP_MS, Math.max(MIN_SWEEP_STEP_MS, timeoutMs / 20));
    this.sweepTimer = setTimeout(this.sweep, Math.max(step, at - this.deps.now()));
    this.sweepTimer.unref();
  }

  private rearmSweep(): void {
    if (this.sweepTimer !== undefined) clearTimeout(this.sweepTimer);
    this.sweepTimer = undefined;
    this.armSweep();
  }

  /** Ends the sessions idle for the timeout: O(expired), the table is ordered by activity. */
  private readonly sweep = (): void => {
    this.sweepTimer = undefined;
    const now = this.deps.now();
    const timeoutMs = this.settings.sessionTimeoutMs;
    for (let s = this.table.expired(now, timeoutMs); s !== undefined; s = this.table.expired(now, timeoutMs)) {
      this.end(s, 'idle_timeout');
    }
    this.pool.sweep(now, this.poolIdleMs());
    this.armSweep();
  };

  private becameIdle(): void {
    if (this.sweepTimer !== undefined) clearTimeout(this.sweepTimer);
    this.sweepTimer = undefined;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
    if (this.closeWhenIdle && this.socket !== undefined) this.close();
    else if (this.pool.size > 0) this.armSweep();
  }

  private overCapacity(): UdpSession | undefined {
    return this.table.size > this.table.capacity ? this.table.oldest() : undefined;
  }

  private readonly onListenerError = (error: Error): void => {
    this.deps.warn('udp listener socket error', { listener: this.binding.name, err: error });
  };

  private checkBufferSizes(socket: dgram.Socket): void {
    // Linux reports twice what was set (it reserves room for bookkeeping), capped by rmem_max/wmem_max.
    const recv = socket.getRecvBufferSize();
    const send = socket.getSendBufferSize();
    const { recvBufferBytes, sendBufferBytes } = this.settings;
    if (recv < recvBufferBytes || send < sendBufferBytes) {
      this.deps.warn('udp socket buffers are smaller than configured: the kernel capped them (raise net.core.rmem_max / wmem_max)', {
        listener: this.binding.name,
        recvBufferWanted: recvBufferBytes,
        recvBufferGranted: recv,
        sendBufferWanted: sendBufferBytes,
        sendBufferGranted: send,
      });
    }
  }
}

