/**
 * The supervisor's side of the control-plane worker. If it dies it is restarted with
 * back-off; the data plane keeps routing on the last published snapshot meanwhile, and
 * the new control plane recovers its state from that snapshot.
 */
import type { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { BackendHistory } from '../shared/backend-history.ts';
import { mergeDiscoveryStatus, type DiscoveryStatus } from '../shared/discovery-status.ts';
import type { RegistryStatusReport } from '../shared/registry-status.ts';
import type { AclConfig, Config } from '../shared/config/schema.ts';
import type { CounterDimensions } from '../shared/counters.ts';
import type {
  BackendCommand,
  BackendCommandResult,
  BackendPlan,
  ConfigApplyResult,
  ControlPlaneCommand,
  ControlPlaneEvent,
  ControlPlaneStats,
  ControlPlaneWorkerData,
  ListenerAclResult,
  RoutesCommand,
  RoutesCommandResult,
} from '../shared/messages.ts';
import { unknownMessage } from '../shared/messages.ts';
import { SluiceError } from '../shared/errors.ts';
import { nextRestart, WORKER_RESTART_BACKOFF, type BackoffState } from './backoff.ts';
import { startThread } from './thread-modules.ts';

const WORKER_ENTRY = new URL('../controlplane/worker.ts', import.meta.url);
/** How long a stats query waits for the worker before answering without it. */
const QUERY_TIMEOUT_MS = 2000;
/**
 * How long an operator's command may wait for its answer. Commands queue behind each other
 * and an add may wait for its first probe (at most a check timeout), so this is generous.
 */
const COMMAND_TIMEOUT_MS = 30_000;

export interface ControlPlaneOptions {
  readonly config: Config;
  readonly snapshotBuffer: SharedArrayBuffer;
  readonly counterBuffer: SharedArrayBuffer;
  readonly counterDims: CounterDimensions;
  readonly logLevel: string;
  readonly logger: Logger;
  /** Called after every refresh of a discovered cluster (readiness waits for the first answer). */
  readonly onDiscoveryStatus?: (status: DiscoveryStatus) => void;
  /** Called with each registry status (the supervisor logs flips and tracks fleet mismatches). */
  readonly onRegistryStatus?: (status: RegistryStatusReport) => void;
}

export class ControlPlaneHost {
  private readonly options: ControlPlaneOptions;
  /** The config a restarted worker starts from: the latest one applied. */
  private config: Config;
  private readonly log: Logger;
  private nextRequestId = 1;
  private readonly pendingApplies = new Map<number, (result: ConfigApplyResult) => void>();

  private worker: Worker | undefined;
  private startedAt = 0;
  private backoff: BackoffState = { consecutiveCrashes: 0 };
  private restartTimer: NodeJS.Timeout | undefined;
  private stopping = false;
  private restartCount = 0;
  private onReady: ((event: { version: number; backends: number }) => void) | undefined;
  private onStartFailure: ((error: Error) => void) | undefined;
  private readonly pendingStats = new Map<number, (stats: ControlPlaneStats | undefined) => void>();
  private readonly pendingCommands = new Map<number, (result: BackendCommandResult) => void>();
  private readonly pendingRoutes = new Map<number, (result: RoutesCommandResult) => void>();
  private readonly pendingAcls = new Map<number, (result: ListenerAclResult) => void>();
  /** Kept here, not in the worker, so a control-plane restart does not lose it. */
  readonly history = new BackendHistory();
  /** The latest status of each discovered cluster, by name. */
  readonly discovery = new Map<string, DiscoveryStatus>();
  /** The registry as the control plane last reported it (undefined without `registry:` or before its first report). */
  registry: RegistryStatusReport | undefined;

  constructor(options: ControlPlaneOptions) {
    this.options = options;
    this.config = options.config;
    this.log = options.logger.child({ component: 'supervisor' });
  }

  /** Crashed control-plane workers restarted since start. */
  get restarts(): number {
    return this.restartCount;
  }

  /** Start the worker; resolves once it published its first snapshot. */
  start(): Promise<{ version: number; backends: number }> {
    return new Promise((resolve, reject) => {
      this.onReady = resolve;
      this.onStartFailure = reject;
      this.spawn();
    });
  }

  /**
   * Apply a reloaded config (or, with `dryRun`, only plan and check it); resolves with the
   * snapshot version that contains it, or the limits that refused it (nothing changed then).
   */
  async applyConfig(config: Config, dryRun = false): Promise<ConfigApplyResult> {
    const requestId = this.nextRequestId++;
    const applied = new Promise<ConfigApplyResult>((resolve) => this.pendingApplies.set(requestId, resolve));
    this.send({ type: 'config.apply', requestId, config, dryRun });
    const result = await applied;
    // A restarted worker starts from `this.config`: only a config it accepted becomes that.
    if (!dryRun && result.ok) this.config = config;
    return result;
  }

  /** Fault injection: make the worker throw an uncaught error. */
  crash(): boolean {
    if (this.worker === undefined) return false;
    this.send({ type: 'fault.crash' });
    return true;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.restartTimer !== undefined) clearTimeout(this.restartTimer);
    const worker = this.worker;
    if (worker === undefined) return;
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    this.send({ type: 'shutdown' });
    const forced = setTimeout(() => void worker.terminate(), 2000);
    await exited;
    clearTimeout(forced);
  }

  /** The control plane's own counters, or undefined when it does not answer in time. */
  stats(): Promise<ControlPlaneStats | undefined> {
    if (this.worker === undefined) return Promise.resolve(undefined);
    const requestId = this.nextRequestId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pendingStats.delete(requestId);
        resolve(undefined);
      }, QUERY_TIMEOUT_MS);
      this.pendingStats.set(requestId, (stats) => {
        clearTimeout(timer);
        resolve(stats);
      });
      this.send({ type: 'stats.query', requestId });
    });
  }

  /**
   * Sends an operator's change to the control plane; resolves with its answer (the snapshot
   * version that holds it), or UNAVAILABLE when the worker is down, restarts or is too slow.
   */
  backendCommand(command: BackendCommand): Promise<BackendCommandResult> {
    if (this.worker === undefined) return Promise.resolve(unavailable('the control plane is not running'));
    const requestId = this.nextRequestId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pendingCommands.delete(requestId);
        resolve(unavailable(`no answer from the control plane within ${COMMAND_TIMEOUT_MS} ms; the change may still be applied`));
      }, COMMAND_TIMEOUT_MS);
      this.pendingCommands.set(requestId, (result) => {
        clearTimeout(timer);
        resolve(result);
      });
      this.send({ type: 'backend.command', requestId, command });
    });
  }

  /** An operator's acl for a listener; answered like `backendCommand`. */
  listenerAcl(listener: string, acl: AclConfig): Promise<ListenerAclResult> {
    if (this.worker === undefined) return Promise.resolve(unavailable('the control plane is not running'));
    const requestId = this.nextRequestId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pendingAcls.delete(requestId);
        resolve(unavailable(`no answer from the control plane within ${COMMAND_TIMEOUT_MS} ms; the change may still be applied`));
      }, COMMAND_TIMEOUT_MS);
      this.pendingAcls.set(requestId, (result) => {
        clearTimeout(timer);
        resolve(result);
      });
      this.send({ type: 'listener.acl', requestId, listener, acl });
    });
  }

  /** Sends an operator's new routes for a listener; answered like `backendCommand`. */
  routesCommand(command: RoutesCommand): Promise<RoutesCommandResult> {
    if (this.worker === undefined) return Promise.resolve(unavailable('the control plane is not running'));
    const requestId = this.nextRequestId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pendingRoutes.delete(requestId);
        resolve(unavailable(`no answer from the control plane within ${COMMAND_TIMEOUT_MS} ms; the change may still be applied`));
      }, COMMAND_TIMEOUT_MS);
      this.pendingRoutes.set(requestId, (result) => {
        clearTimeout(timer);
        resolve(result);
      });
      this.send({ type: 'routes.command', requestId, command });
    });
  }

  private spawn(): void {
    const o = this.options;
    const workerData: ControlPlaneWorkerData = {
      config: this.config,
      snapshotBuffer: o.snapshotBuffer,
      counterBuffer: o.counterBuffer,
      counterDims: o.counterDims,
      logLevel: o.logLevel,
    };
    const worker = startThread(WORKER_ENTRY, { workerData, name: 'sluice-controlplane' });
    this.worker = worker;
    this.startedAt = Date.now();
    worker.on('message', (event: ControlPlaneEvent) => {
      this.onEvent(event);
    });
    worker.on('error', (error: Error) => {
      this.log.error({ err: error }, 'control-plane worker crashed');
      // A start-up refusal the operator can act on (a `required` registry that does not
      // answer) is told as its message alone, not as a crash with a stack.
      this.onStartFailure?.(error.name === 'RegistryError' ? new SluiceError('SLUICE_WORKER_FAILED', error.message) : error);
      this.onStartFailure = undefined;
      this.onReady = undefined;
    });
    worker.on('exit', (code) => {
      this.onExit(worker, code);
    });
  }

  private onExit(worker: Worker, code: number): void {
    if (this.worker !== worker) return;
    this.worker = undefined;
    for (const answer of this.pendingCommands.values()) {
      answer(unavailable('the control plane stopped before answering; the change may or may not have been applied'));
    }
    this.pendingCommands.clear();
    for (const answer of this.pendingRoutes.values()) {
      answer(unavailable('the control plane stopped before answering; the change may or may not have been applied'));
    }
    this.pendingRoutes.clear();
    for (const answer of this.pendingAcls.values()) {
      answer(unavailable('the control plane stopped before answering; the change may or may not have been applied'));
    }
    this.pendingAcls.clear();
    if (this.stopping || this.onStartFailure !== undefined) {
      this.onStartFailure?.(new Error(`control-plane worker exited with code ${code} before it was ready`));
      return;
    }
    const next = nextRestart(WORKER_RESTART_BACKOFF, this.backoff, Date.now() - this.startedAt);
    this.backoff = next.state;
    this.log.warn({ code, restartInMs: next.delayMs }, 'control-plane worker exited; routing stays on the last snapshot');
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (this.stopping) return;
      this.restartCount++;
      this.spawn();
    }, next.delayMs);
  }

  private onEvent(event: ControlPlaneEvent): void {
    switch (event.type) {
      case 'ready':
        this.log.info({ version: event.version, backends: event.backends }, 'control plane ready');
        this.onReady?.({ version: event.version, backends: event.backends });
        // A restarted worker starts from the last config it accepted: an apply it lost did not happen.
        for (const resolve of this.pendingApplies.values()) resolve(LOST_APPLY);
        this.pendingApplies.clear();
        this.onReady = undefined;
        this.onStartFailure = undefined;
        return;
      case 'published':
        return;
      case 'transitions':
        for (const report of event.reports) this.history.record(report);
        return;
      case 'discovery.status': {
        // O(1): an update without an answer keeps the one the map holds.
        const status = mergeDiscoveryStatus(this.discovery.get(event.status.cluster), event.status);
        this.discovery.set(status.cluster, status);
        this.options.onDiscoveryStatus?.(status);
        return;
      }
      case 'registry.status':
        this.registry = event.status;
        this.options.onRegistryStatus?.(event.status);
        return;
      case 'stats':
        this.pendingStats.get(event.requestId)?.(event.stats);
        this.pendingStats.delete(event.requestId);
        return;
      case 'backend.result':
        this.pendingCommands.get(event.requestId)?.(event.result);
        this.pendingCommands.delete(event.requestId);
        return;
      case 'listener.acl.result':
        this.pendingAcls.get(event.requestId)?.(event.result);
        this.pendingAcls.delete(event.requestId);
        return;
      case 'routes.result':
        this.pendingRoutes.get(event.requestId)?.(event.result);
        this.pendingRoutes.delete(event.requestId);
        return;
      case 'config.applied':
        this.pendingApplies.get(event.requestId)?.(event.result);
        this.pendingApplies.delete(event.requestId);
        return;
      default:
        throw unknownMessage('supervisor', event satisfies never);
    }
  }

  private send(command: ControlPlaneCommand): void {
    this.worker?.postMessage(command);
  }
}

const EMPTY_PLAN: BackendPlan = Object.freeze({ add: [], restore: [], remove: [], drain: [], reweight: [], keep: [] });
const LOST_APPLY: ConfigApplyResult = Object.freeze({
  ok: false,
  plan: EMPTY_PLAN,
  problems: [],
  message: 'the control plane restarted before it applied this config; the running config stays: reload again',
});

/** The refusal of any operator command when the control plane cannot answer it. */
interface Unavailable {
  readonly ok: false;
  readonly error: 'UNAVAILABLE';
  readonly message: string;
}

function unavailable(message: string): Unavailable {
  return { ok: false, error: 'UNAVAILABLE', message };
}
