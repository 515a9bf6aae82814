/**
 * The supervisor's side of the data-plane workers: start them, give them listeners,
 * restart one that dies (with back-off) without touching the others, drain them all.
 */
import type { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { CounterDimensions, CounterTables } from '../shared/counters.ts';
import type { IpLimitTable } from '../shared/ip-limits.ts';
import type {
  AccessLogSettings,
  DataPlaneCommand,
  DataPlaneEvent,
  DataPlaneWorkerData,
  ListenerBinding,
  ResourceReport,
  UdpHandoverTable,
} from '../shared/messages.ts';
import { unknownMessage } from '../shared/messages.ts';
import { nextRestart, WORKER_RESTART_BACKOFF, type BackoffState } from './backoff.ts';
import type { ClusterStates } from './cluster-states.ts';
import { startThread } from './thread-modules.ts';

const WORKER_ENTRY = new URL('../dataplane/worker.ts', import.meta.url);
/**
 * V8's young generation of a data-plane thread. By default it grows to tens of MiB under a
 * burst of connections and, with no allocation at idle, is never given back: capped at
 * 8 MiB the process held 244-256 MiB after 20,000 connections against 271-278 MiB, with
 * daemon CPU per connection 116-124 µs against 123-128 µs (bench/idle-rss.ts, three
 * alternating runs each; docs/data-plane-decisions.md). Socket buffers live outside the
 * V8 heap, so the cap bounds only the short-lived objects of connection handling.
 */
const DATA_PLANE_YOUNG_GENERATION_MB = 8;
/** How long a resource query waits for a worker before answering without it. */
const QUERY_TIMEOUT_MS = 2000;

export interface ListenFailure {
  readonly worker: number;
  readonly listener: string;
  readonly address: string;
  readonly code: string;
  readonly message: string;
}

interface Slot {
  worker: Worker | undefined;
  startedAt: number;
  backoff: BackoffState;
  restartTimer: NodeJS.Timeout | undefined;
  connections: number;
}

export interface PoolOptions {
  readonly workers: number;
  readonly snapshotBuffer: SharedArrayBuffer;
  readonly counterBuffer: SharedArrayBuffer;
  readonly counterDims: CounterDimensions;
  readonly counters: CounterTables;
  readonly clusterStates: ClusterStates;
  readonly ipLimitBuffer: SharedArrayBuffer;
  /** The supervisor's view, to give back what a dead worker held. */
  readonly ipLimits: IpLimitTable;
  readonly logLevel: string;
  readonly logger: Logger;
  readonly accessLog: AccessLogSettings;
}

export class DataPlanePool {
  private readonly options: PoolOptions;
  private readonly log: Logger;
  private readonly slots: Slot[];
  private listeners: readonly ListenerBinding[] = [];
  private stopping = false;
  private restartCount = 0;
  private nextRequestId = 1;
  private readonly pendingQueries = new Map<number, (report: ResourceReport) => void>();
  private readonly pendingHandovers = new Map<number, (tables: readonly UdpHandoverTable[]) => void>();
  /** Handover, new side: workers started now hold UDP datagrams until `seedUdp`. */
  private holdingUdp = false;
  private readonly readyWaiters = new Map<number, (failures: ListenFailure[]) => void>();
  private readonly failuresByWorker = new Map<number, ListenFailure[]>();
  private readonly drainWaiters = new Map<number, () => void>();
  /** Worker → resolve(true) when it answered a reopen, (false) when it died first. */
  private readonly reopenWaiters = new Map<number, (answered: boolean) => void>();
  /** What a worker started now gets: the descriptor changes on log rotation. */
  private accessLog: AccessLogSettings;

  constructor(options: PoolOptions) {
    this.options = options;
    this.log = options.logger.child({ component: 'supervisor' });
    this.accessLog = options.accessLog;
    this.slots = Array.from({ length: options.workers }, () => ({
      worker: undefined,
      startedAt: 0,
      backoff: { consecutiveCrashes: 0 },
      restartTimer: undefined,
      connections: 0,
    }));
  }

  get size(): number {
    return this.slots.length;
  }

  /** Crashed workers restarted since start. */
  get restarts(): number {
    return this.restartCount;
  }

  /** Start every worker with these listeners; resolves with every bind failure. */
  async start(listeners: readonly ListenerBinding[], options: { holdUdp?: boolean } = {}): Promise<ListenFailure[]> {
    this.listeners = listeners;
    this.holdingUdp = options.holdUdp === true;
    const results = await Promise.all(this.slots.map(async (_slot, index) => this.spawn(index)));
    return results.flat();
  }

  /** Open, close or move listeners in every worker. */
  async setListeners(listeners: readonly ListenerBinding[]): Promise<ListenFailure[]> {
    this.listeners = listeners;
    const results = await Promise.all(this.slots.map(async (_slot, index) => this.sendListeners(index)));
    return results.flat();
  }

  /** Hand every worker the current cluster state buffers (before a snapshot names new clusters). */
  sendClusterStates(): void {
    const states = this.options.clusterStates.bindings();
    this.slots.forEach((_slot, index) => {
      this.send(index, { type: 'cluster-states.set', states });
    });
  }

  /** Every worker stops accepting, finishes or cuts its connections; resolves when all did. */
  async drain(timeoutMs: number, onProgress: (connections: number) => void): Promise<void> {
    this.stopping = true;
    const progress = setInterval(() => {
      onProgress(this.slots.reduce((sum, s) => sum + s.connections, 0));
    }, 1000);
    progress.unref();
    await Promise.all(
      this.slots.map(async (slot, index) => {
        if (slot.restartTimer !== undefined) clearTimeout(slot.restartTimer);
        if (slot.worker === undefined) return;
        const drained = new Promise<void>((resolve) => this.drainWaiters.set(index, resolve));
        this.send(index, { type: 'drain', timeoutMs });
        await drained;
      }),
    );
    clearInterval(progress);
  }

  /**
   * Every worker, and every worker started later, writes access-log lines to `fd`. Resolves
   * true once each live worker has written all its lines for the old descriptor (which may
   * then be closed), false when one died before answering (its last write may still be in
   * the thread pool, so the old descriptor must stay open).
   */
  async reopenAccessLog(fd: number): Promise<boolean> {
    this.accessLog = { ...this.accessLog, fd };
    // Stopped workers cannot answer, and their last writes may still be in the thread pool.
    if (this.stopping) return false;
    const answers = await Promise.all(
      this.slots.map(async (slot, index) => {
        if (slot.worker === undefined) return true;
        const answered = new Promise<boolean>((resolve) => this.reopenWaiters.set(index, resolve));
        this.send(index, { type: 'access-log.reopen', fd });
        return answered;
      }),
    );
    return answers.every(Boolean);
  }

  async terminate(): Promise<void> {
    this.stopping = true;
    await Promise.all(
      this.slots.map(async (slot) => {
        if (slot.restartTimer !== undefined) clearTimeout(slot.restartTimer);
        await slot.worker?.terminate();
      }),
    );
  }

  /** Fault injection: make one worker throw an uncaught error. False when there is no such worker. */
  crash(index: number): boolean {
    if (this.slots[index]?.worker === undefined) return false;
    this.send(index, { type: 'fault.crash' });
    return true;
  }

  /**
   * Handover, old side: every worker stops starting UDP sessions and answers with the ones it
   * has, merged per listener (a worker that does not answer in time adds none); then every
   * worker closes its UDP listeners.
   */
  async handOverUdp(): Promise<UdpHandoverTable[]> {
    const tables = await this.exportUdp(true);
    this.slots.forEach((_slot, index) => {
      this.send(index, { type: 'udp.handover.close' });
    });
    return tables;
  }

  /**
   * Handover, old side, before the successor binds: its sockets joining the port's
   * SO_REUSEPORT group rehash clients over all sockets, old ones included, so every worker
   * learns every other worker's sessions (a moved client keeps its backend). Resolves with
   * how many sessions were shared.
   */
  async shareUdp(): Promise<number> {
    const tables = await this.exportUdp(false);
    this.slots.forEach((_slot, index) => {
      this.send(index, { type: 'udp.handover.share', tables });
    });
    return tables.reduce((n, t) => n + t.sessions.length, 0);
  }

  private async exportUdp(stop: boolean): Promise<UdpHandoverTable[]> {
    const answers = await Promise.all(this.slots.map(async (_slot, index) => this.queryHandover(index, stop)));
    const merged = new Map<string, UdpHandoverTable['sessions'][number][]>();
    for (const table of answers.flat()) {
      const sessions = merged.get(table.listener) ?? [];
      sessions.push(...table.sessions);
      merged.set(table.listener, sessions);
    }
    return [...merged].map(([listener, sessions]) => ({ listener, sessions }));
  }

  /** Handover, new side: give every worker the old process's sessions; held datagrams are served. */
  seedUdp(tables: readonly UdpHandoverTable[]): void {
    this.holdingUdp = false;
    this.slots.forEach((_slot, index) => {
      this.send(index, { type: 'udp.handover.seed', tables });
    });
  }

  async resources(): Promise<ResourceReport[]> {
    const reports = await Promise.all(this.slots.map(async (_slot, index) => this.queryResources(index)));
    return reports.filter((r): r is ResourceReport => r !== undefined);
  }

  private spawn(index: number): Promise<ListenFailure[]> {
    const slot = this.slots[index];
    if (slot === undefined) return Promise.resolve([]);
    const o = this.options;
    const workerData: DataPlaneWorkerData = {
      worker: index,
      snapshotBuffer: o.snapshotBuffer,
      counterBuffer: o.counterBuffer,
      counterDims: o.counterDims,
      clusterStates: o.clusterStates.bindings(),
      ipLimitBuffer: o.ipLimitBuffer,
      logLevel: o.logLevel,
      accessLog: this.accessLog,
      holdUdpForHandover: this.holdingUdp,
    };
    const worker = startThread(WORKER_ENTRY, {
      workerData,
      name: `sluice-dataplane-${index}`,
      resourceLimits: { maxYoungGenerationSizeMb: DATA_PLANE_YOUNG_GENERATION_MB },
    });
    slot.worker = worker;
    slot.startedAt = Date.now();
    slot.connections = 0;
    worker.on('message', (event: DataPlaneEvent) => {
      this.onEvent(index, event);
    });
    worker.on('error', (error: Error) => {
      this.log.error({ worker: index, err: error }, 'data-plane worker crashed');
    });
    worker.on('exit', (code) => {
      this.onExit(index, worker, code);
    });
    return this.sendListeners(index);
  }

  private sendListeners(index: number): Promise<ListenFailure[]> {
    const ready = new Promise<ListenFailure[]>((resolve) => this.readyWaiters.set(index, resolve));
    this.failuresByWorker.set(index, []);
    this.send(index, { type: 'listeners.set', listeners: this.listeners });
    return ready;
  }

  private onExit(index: number, worker: Worker, code: number): void {
    const slot = this.slots[index];
    if (slot?.worker !== worker) return;
    slot.worker = undefined;
    // Its sockets closed with the thread; its share of the global connection counts and of
    // the queue lengths must follow before a replacement takes its rows over.
    this.options.counters.clearWorkerActive(index);
    this.options.clusterStates.clearWorker(index);
    this.options.ipLimits.releaseWorker(index);
    this.readyWaiters.get(index)?.([]);
    this.readyWaiters.delete(index);
    this.drainWaiters.get(index)?.();
    this.drainWaiters.delete(index);
    this.reopenWaiters.get(index)?.(false);
    this.reopenWaiters.delete(index);
    if (this.stopping) return;
    const next = nextRestart(WORKER_RESTART_BACKOFF, slot.backoff, Date.now() - slot.startedAt);
    slot.backoff = next.state;
    this.log.warn({ worker: index, code, restartInMs: next.delayMs }, 'data-plane worker exited; restarting');
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = undefined;
      void this.restart(index);
    }, next.delayMs);
  }

  private async restart(index: number): Promise<void> {
    if (this.stopping) return;
    this.restartCount++;
    const failures = await this.spawn(index);
    for (const f of failures) this.log.error(f, 'restarted data-plane worker could not listen');
    if (failures.length === 0) this.log.info({ worker: index }, 'data-plane worker restarted');
  }

  private onEvent(index: number, event: DataPlaneEvent): void {
    switch (event.type) {
      case 'listen.failed':
        this.failuresByWorker.get(index)?.push({ worker: index, ...omitType(event) });
        return;
      case 'listeners.ready': {
        const resolve = this.readyWaiters.get(index);
        this.readyWaiters.delete(index);
        resolve?.(this.failuresByWorker.get(index) ?? []);
        return;
      }
      case 'drain.progress': {
        const slot = this.slots[index];
        if (slot !== undefined) slot.connections = event.connections;
        return;
      }
      case 'drained': {
        const slot = this.slots[index];
        if (slot !== undefined) slot.connections = 0;
        this.drainWaiters.get(index)?.();
        this.drainWaiters.delete(index);
        return;
      }
      case 'access-log.reopened':
        this.reopenWaiters.get(index)?.(true);
        this.reopenWaiters.delete(index);
        return;
      case 'udp.handover.sessions':
        this.pendingHandovers.get(event.requestId)?.(event.tables);
        this.pendingHandovers.delete(event.requestId);
        return;
      case 'resources':
        this.pendingQueries.get(event.requestId)?.(event.report);
        this.pendingQueries.delete(event.requestId);
        return;
      default:
        throw unknownMessage('supervisor', event satisfies never);
    }
  }

  private queryResources(index: number): Promise<ResourceReport | undefined> {
    if (this.slots[index]?.worker === undefined) return Promise.resolve(undefined);
    const requestId = this.nextRequestId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pendingQueries.delete(requestId);
        resolve(undefined);
      }, QUERY_TIMEOUT_MS);
      this.pendingQueries.set(requestId, (report) => {
        clearTimeout(timer);
        resolve(report);
      });
      this.send(index, { type: 'resources.query', requestId });
    });
  }

  private queryHandover(index: number, stop: boolean): Promise<readonly UdpHandoverTable[]> {
    if (this.slots[index]?.worker === undefined) return Promise.resolve([]);
    const requestId = this.nextRequestId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pendingHandovers.delete(requestId);
        resolve([]);
      }, QUERY_TIMEOUT_MS);
      this.pendingHandovers.set(requestId, (tables) => {
        clearTimeout(timer);
        resolve(tables);
      });
      this.send(index, { type: 'udp.handover.export', requestId, stop });
    });
  }

  private send(index: number, command: DataPlaneCommand): void {
    this.slots[index]?.worker?.postMessage(command);
  }
}

function omitType<T extends { type: string }>(event: T): Omit<T, 'type'> {
  const { type: _type, ...rest } = event;
  return rest;
}
