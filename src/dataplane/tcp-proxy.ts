/**
 * The TCP sessions of one worker: accepts each client (through the edge gate when its
 * listener has edge settings), starts its session (tcp-session.ts), and keeps the registry
 * the worker acts on as a whole: the idle sweep, the cluster queues, drain (`whenIdle`,
 * `destroyAll`) and the close of connections to backends a new version dropped
 * (`closeUnkept`).
 *
 * Cost per connection (what the bench measures, docs/data-plane-decisions.md): the event
 * handlers are module-level functions that find their session through a symbol on the
 * socket, so a session allocates no closures; bytes are copied by a hand-written loop
 * (write, pause on a full buffer, resume on drain) instead of `pipe`; backend reads land in
 * buffers the proxy owns; idle time is judged by one sweep per worker instead of a timer per
 * socket that every chunk refreshes; on the `handles` data path (data-path.ts) the backend
 * side is a libuv stream handle instead of a net.Socket (backend-link.ts), and so is the
 * client of a listener without edge settings (`handleStream`, client-link.ts).
 */
import type net from 'node:net';
import type { WorkerCounters } from '../shared/counters.ts';
import { ListenerCounter } from '../shared/counters.ts';
import type { ListenerBinding } from '../shared/messages.ts';
import type { SnapshotBackend } from '../shared/snapshot/types.ts';
import type { AccessLog, TerminationReason } from './access-log.ts';
import { ignoreError } from './backend-link.ts';
import { HandleClient, NetClient, type ClientLink } from './client-link.ts';
import { ConnectionQueue, monotonicMs } from './connection-queue.ts';
import { clientText, EdgeGate, type Admitted, type EdgeGateOptions, type SessionStarter } from './edge-gate.ts';
import type { DataPath } from './data-path.ts';
import type { EdgePolicy } from './edge-policy.ts';
import { SWEEP_INTERVAL_MS, sweepIntervalFor } from './idle-sweep.ts';
import { chooseCluster, type ClusterRoute, type ListenerRoute } from './routing-table.ts';
import type { TcpStream } from './stream-handle.ts';
import { TcpSession } from './tcp-session.ts';

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
  /** What carries backend bytes (data-path.ts); net unless given. */
  readonly dataPath?: DataPath;
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
  /** @internal what carries backend bytes. */
  readonly dataPath: DataPath;

  constructor(env: ProxyEnv) {
    this.env = env;
    this.now = env.now ?? monotonicMs;
    this.dataPath = env.dataPath ?? 'net';
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

  /**
   * Route one client accepted as a stream handle (a listener without edge settings on the
   * handles path: listeners.ts); it is not read until its backend is connected.
   */
  handleStream(client: TcpStream, binding: ListenerBinding, listener: ListenerRoute | undefined): void {
    this.counters.bumpListener(binding.slot, ListenerCounter.accepted);
    const logged = this.accessLog.sample();
    this.openSession(new HandleClient(client), binding, listener === undefined ? undefined : chooseCluster(listener), logged, undefined);
  }

  /** @internal (SessionStarter) open the session of an admitted client. */
  startSession(
    client: net.Socket,
    binding: ListenerBinding,
    route: ClusterRoute | undefined,
    logged: boolean,
    admitted: Admitted | undefined,
  ): void {
    if (route === undefined || route.eligible.length === 0) client.on('error', ignoreError);
    this.openSession(new NetClient(client), binding, route, logged, admitted);
  }

  private openSession(
    client: ClientLink,
    binding: ListenerBinding,
    route: ClusterRoute | undefined,
    logged: boolean,
    admitted: Admitted | undefined,
  ): void {
    if (route === undefined || route.eligible.length === 0) {
      this.counters.bumpListener(binding.slot, ListenerCounter.refusedNoBackend);
      if (logged) this.logRefused(clientText(client, admitted?.origin), binding, route?.name ?? null, 'no_backend');
      admitted?.lease.release();
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

