/**
 * The main thread: loads config, creates the shared buffers, starts the control plane and
 * the data-plane workers, serves the admin API and turns signals into lifecycle steps
 * (drain, reload, handover). It owns nothing on the hot path.
 */
import { randomInt } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildAdminApp, type AdminApp } from './controlplane/admin/app.ts';
import { adminToken, exposureWarning } from './controlplane/admin/auth.ts';
import type { ReloadResult } from './controlplane/admin/lifecycle-routes.ts';
import { createMetrics, type Metrics } from './controlplane/admin/metrics/registry.ts';
import { parseHostPort } from './shared/address.ts';
import { ConfigError, loadConfig } from './shared/config/load.ts';
import { listenerRoutes, type Config, type ListenerConfig } from './shared/config/schema.ts';
import { CounterTables, createCounterBuffer, DEFAULT_LISTENER_SLOTS, type CounterDimensions } from './shared/counters.ts';
import { SluiceError } from './shared/errors.ts';
import { createIpLimitBuffer, DEFAULT_IP_TABLE_CAPACITY, IpLimitTable } from './shared/ip-limits.ts';
import { createLogger, flushLogs, type Logger } from './shared/logger.ts';
import type { AccessLogSettings, BackendPlan, CapacityProblem, ConfigApplyResult, ListenerBinding } from './shared/messages.ts';
import { Readiness } from './shared/readiness.ts';
import type { BoundListener } from './controlplane/admin/listener-view.ts';
import { capacityProblems, FIXED_LIMITS, limitsFor } from './controlplane/capacity.ts';
import { createSnapshotBuffer } from './shared/snapshot/layout.ts';
import { SnapshotReader } from './shared/snapshot/reader.ts';
import { ClusterStates } from './supervisor/cluster-states.ts';
import { ControlPlaneHost } from './supervisor/control-plane-host.ts';
import { DataPlanePool, type ListenFailure } from './supervisor/data-plane-pool.ts';
import { probeListenAddresses } from './supervisor/port-probe.ts';
import { prepareUdpHandover, requestHandover, warnUnlessMigrating } from './supervisor/handover.ts';
import { proxyTrustWarnings } from './supervisor/proxy-trust-warning.ts';
import { ListenerSlots } from './supervisor/listener-slots.ts';
import { diffConfigs, restartOnlyChanges } from './supervisor/config-changes.ts';
import { FleetMismatch } from './shared/fleet-mismatch.ts';

export interface SupervisorOptions {
  readonly config: Config;
  readonly configFile: string;
  readonly logLevel: string;
  /** Take the ports over from a Sluice already running on the same config (see handover.ts). */
  readonly takeover?: boolean;
}


/** How long a taking-over process waits for the old one to release the admin port. */
const ADMIN_TAKEOVER_WAIT_MS = 10_000;
const ADMIN_RETRY_INTERVAL_MS = 50;

export function workerCount(setting: Config['workers']): number {
  return setting === 'auto' ? availableParallelism() : setting;
}

/** `web`, or `web 90, canary 10` for a split listener. */
function describeRoutes(listener: ListenerConfig): string {
  const routes = listenerRoutes(listener);
  const sni = listener.sni_routes === undefined ? '' : `by SNI (${listener.sni_routes.length} names), default `;
  if (routes.length === 0) return `${sni}none`;
  if (routes.length === 1 && listener.routes === undefined) return `${sni}${routes[0]?.cluster ?? ''}`;
  return sni + routes.map((r) => `${r.cluster} ${r.weight}`).join(', ');
}

function sameAddress(a: ListenerBinding, b: ListenerBinding): boolean {
  return a.protocol === b.protocol && a.host === b.host && a.port === b.port;
}

function describeListenFailure(f: ListenFailure): string {
  return f.code === 'EADDRINUSE' ? `${f.address} is already in use (EADDRINUSE)` : `cannot listen on ${f.address}: ${f.message}`;
}

function describeListenFailures(failures: readonly ListenFailure[]): string[] {
  const unique = new Map<string, ListenFailure>();
  for (const f of failures) unique.set(`${f.listener} ${f.code}`, f);
  return [...unique.values()].map((f) => `listener ${f.listener}: ${describeListenFailure(f)}`);
}

/** Counts for the log line (the ids are in the reload's answer). */
function planSummary(plan: BackendPlan): Record<keyof BackendPlan, number> {
  const { add, restore, remove, drain, reweight, keep } = plan;
  return { add: add.length, restore: restore.length, remove: remove.length, drain: drain.length, reweight: reweight.length, keep: keep.length };
}

/**
 * Open the access log file once, here, so a bad path fails start-up with a clear message
 * instead of failing inside every worker; the workers share the descriptor (O_APPEND keeps
 * their lines whole). Without a path the lines go to stdout. The descriptor stays open for
 * the life of the process: a worker's last batch may still be in the thread pool when the
 * workers are stopped, and closing under it could send it to whatever reuses the number.
 */
function openAccessLog(config: Config['access_log']): AccessLogSettings {
  const { enabled, sampling, path } = config;
  if (!enabled || path === undefined) return { enabled, sampling, fd: 1 };
  try {
    return { enabled, sampling, fd: openSync(path, 'a', 0o640) };
  } catch (error) {
    throw new SluiceError('SLUICE_ACCESS_LOG_UNWRITABLE', `access_log.path: cannot open ${path}: ${(error as Error).message}`);
  }
}

export class Supervisor {
  private config: Config;
  private readonly options: SupervisorOptions;
  private readonly rootLog: Logger;
  private readonly log: Logger;
  private readonly counters: CounterTables;
  private readonly snapshotBuffer: SharedArrayBuffer;
  private readonly clusterStates: ClusterStates;
  private readonly controlPlane: ControlPlaneHost;
  private readonly dataPlane: DataPlanePool;
  private readonly listenerSlots = new ListenerSlots(DEFAULT_LISTENER_SLOTS);
  /** The listeners the data plane runs now (what /metrics and the dashboard label by). */
  private listeners: readonly ListenerBinding[] = [];
  /** Listeners the last reload could not open, with why (GET /listeners shows them failed). */
  private failedListeners: readonly BoundListener[] = [];
  private accessLog: AccessLogSettings;
  private reopening: Promise<void> = Promise.resolve();
  /** One registry for the process: admin apps are rebuilt on a port retry, metrics are not. */
  private readonly metrics: Metrics;
  private admin: AdminApp | undefined;
  private draining = false;
  /** Not ready until every worker has bound every listener (a start-up listener added later waits too). */
  private readonly readiness = new Readiness(['listeners']);
  private reloading: Promise<unknown> = Promise.resolve();
  private readonly reloads = { success: 0, failure: 0 };
  /** Fleet instances routing differently from this one, and since when (with `registry:`). */
  private readonly fleetMismatch = new FleetMismatch();
  private resolveStopped: () => void = () => undefined;
  /** Resolves once a drain has finished and every thread is stopped. */
  readonly stopped: Promise<void>;

  constructor(options: SupervisorOptions) {
    this.options = options;
    this.config = options.config;
    this.rootLog = createLogger(options.logLevel);
    this.log = this.rootLog.child({ component: 'supervisor' });
    this.stopped = new Promise((resolve) => (this.resolveStopped = resolve));
    const workers = workerCount(options.config.workers);
    // Sized once (capacity.backends): a reload keeps them (supervisor/config-changes.ts).
    const limits = limitsFor(options.config);
    const counterDims: CounterDimensions = { workers, backendSlots: limits.backendSlots, listenerSlots: DEFAULT_LISTENER_SLOTS };
    const counterBuffer = createCounterBuffer(counterDims);
    this.counters = new CounterTables(counterBuffer, counterDims);
    this.snapshotBuffer = createSnapshotBuffer(limits.snapshotBytes);
    this.accessLog = openAccessLog(options.config.access_log);
    const snapshots = new SnapshotReader(this.snapshotBuffer);
    this.metrics = createMetrics(
      () => ({
        snapshot: snapshots.current(),
        counters: this.counters,
        listeners: this.listeners,
        restarts: { dataPlane: this.dataPlane.restarts, controlPlane: this.controlPlane.restarts },
        discovery: [...this.controlPlane.discovery.values()],
        reloads: this.reloads,
        backendSeriesLimit: this.config.admin.metrics_backend_limit,
        ...(this.controlPlane.registry === undefined ? {} : { registry: { status: this.controlPlane.registry, mismatched: this.fleetMismatch.count(Date.now()) } }),
      }),
      { processMetrics: true },
    );
    // Seeded at random so no one can aim client addresses at one probe window of the table.
    const ipLimitBuffer = createIpLimitBuffer({ workers, listenerSlots: DEFAULT_LISTENER_SLOTS, capacity: DEFAULT_IP_TABLE_CAPACITY }, randomInt(2 ** 31));
    // Worker 0's view: the supervisor only gives back a dead worker's counts and reads totals.
    const ipLimits = new IpLimitTable(ipLimitBuffer, 0);
    const shared = { snapshotBuffer: this.snapshotBuffer, counterBuffer, counterDims, logLevel: options.logLevel, logger: this.rootLog };
    // A cluster fed by discovery has no backends until its source answers once.
    for (const cluster of options.config.clusters) if (cluster.discovery !== undefined) this.readiness.require(`discovery:${cluster.name}`);
    this.controlPlane = new ControlPlaneHost({
      ...shared,
      config: options.config,
      onDiscoveryStatus: (status) => {
        // A first answer, or a first error while the state file's copy of the last answer serves.
        if (status.ready) this.readiness.met(`discovery:${status.cluster}`);
      },
      onRegistryStatus: (status) => this.fleetMismatch.update(status, Date.now()),
    });
    this.clusterStates = new ClusterStates(options.config);
    this.dataPlane = new DataPlanePool({
      ...shared,
      workers,
      counters: this.counters,
      accessLog: this.accessLog,
      clusterStates: this.clusterStates,
      ipLimitBuffer,
      ipLimits,
    });
  }

  /** Start everything; on any failure, stop what was started and throw a coded error. */
  async start(): Promise<void> {
    const config = this.config;
    try {
      const { version, backends } = await this.controlPlane.start();
      // A normal start claims the admin port first, so a second instance fails before it
      // binds any listener; a takeover binds listeners first and then asks for the port.
      if (this.options.takeover !== true) await this.startAdmin(0);
      this.listeners = this.listenerBindings(config);
      const taken = this.options.takeover === true ? [] : await probeListenAddresses(this.listeners);
      if (taken.length > 0) throw new SluiceError('SLUICE_LISTEN_FAILED', describeListenFailures(taken).join('\n'));
      const failures = this.options.takeover === true ? await this.bindForTakeover() : await this.dataPlane.start(this.listeners);
      if (failures.length > 0) throw new SluiceError('SLUICE_LISTEN_FAILED', describeListenFailures(failures).join('\n'));
      if (this.options.takeover === true) await this.takeOver();
      this.readiness.met('listeners');
      this.log.info(
        {
          config: this.options.configFile,
          workers: this.dataPlane.size,
          listeners: config.listeners.map((l) => `${l.name} ${l.protocol} ${l.listen} -> ${describeRoutes(l)}`),
          clusters: config.clusters.map((c) => `${c.name} (${c.algorithm}, ${c.backends.length} backends)`),
          backends,
          admin: config.admin.listen,
          snapshotVersion: version,
        },
        'sluice started',
      );
      for (const { listener, message } of proxyTrustWarnings(config.listeners)) this.log.warn({ listener }, message);
    } catch (error) {
      await this.stopAll();
      throw error;
    }
  }

  /**
   * Graceful stop: /readyz turns 503 at once; after `shutdown.delay` every worker closes its
   * listeners and open connections finish, or are cut at `shutdown.drain_timeout`.
   */
  async drain(options: { handover?: boolean } = {}): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    this.readiness.drain();
    const { drain_timeout: timeoutMs, delay: delayMs } = this.config.shutdown;
    if (options.handover === true) {
      warnUnlessMigrating(this.log);
      // The new process is ready and takes the admin port; readiness moves with it.
      await this.closeAdmin();
    } else if (delayMs > 0) {
      this.log.info({ delayMs }, 'draining: not ready; listeners close after the shutdown delay');
      await sleep(delayMs);
    }
    this.log.info({ drainTimeoutMs: timeoutMs, handover: options.handover === true }, 'draining: listeners closed, waiting for open connections');
    await this.dataPlane.drain(timeoutMs, (connections) => {
      this.log.info({ connections }, 'draining');
    });
    await this.stopAll();
    this.log.info('drained; exiting');
    flushLogs();
    this.resolveStopped();
  }

  /**
   * Re-read the config file and apply the difference; a bad file, or one over a capacity
   * limit, changes nothing. With `dryRun`, only answer what it would do.
   */
  reload(options: { dryRun?: boolean } = {}): Promise<ReloadResult> {
    const dryRun = options.dryRun === true;
    const next = this.reloading.then(async () => {
      const result = await this.reloadNow(dryRun);
      if (!dryRun) this.reloads[result.ok ? 'success' : 'failure']++;
      return result;
    });
    this.reloading = next.catch(() => undefined);
    return next;
  }

  private async reloadNow(dryRun: boolean): Promise<ReloadResult> {
    if (this.draining) return { ok: false, error: 'UNAVAILABLE', errors: ['draining: reload refused'] };
    let loaded: Config;
    try {
      loaded = loadConfig(this.options.configFile);
    } catch (error) {
      const errors = error instanceof ConfigError ? error.issues.map((i) => `${i.file}:${i.line}:${i.column} ${i.path}: ${i.message}`) : [(error as Error).message];
      if (!dryRun) this.log.error({ errors }, 'reload rejected: the running config stays');
      return { ok: false, error: 'CONFIG_INVALID', errors };
    }
    const { config: next, ignored } = restartOnlyChanges(this.config, loaded);
    const changes = diffConfigs(this.config, next);
    const listenerLimit = capacityProblems(
      { listenerSlots: this.listenerSlots.neededFor(next.listeners.map((l) => l.name)) },
      { ...FIXED_LIMITS, listenerSlots: this.listenerSlots.capacity },
    );
    // Planned and checked first, so nothing (cluster state buffers included) changes for a refused file.
    const planned = await this.controlPlane.applyConfig(next, true);
    const problems = [...listenerLimit, ...(planned.ok ? [] : planned.problems)];
    if (problems.length > 0 || !planned.ok) return this.refuseReload(dryRun, problems, planned);
    if (dryRun) {
      // No counter row is given out for a dry run: a name keeps its row for the process's life.
      const wanted = this.listenerBindings(next, () => -1).filter((b) => !this.listeners.some((held) => sameAddress(held, b)));
      const failures = describeListenFailures(await probeListenAddresses(wanted));
      return { ok: true, dryRun, snapshotVersion: planned.version, changes, plan: planned.plan, ignored, failures };
    }
    for (const key of ignored) this.log.warn({ key }, 'reload: this setting changes only on restart; keeping the running value');
    // Workers get new clusters' shared state (queue, affinity table) before a snapshot names them.
    if (this.clusterStates.apply(next)) this.dataPlane.sendClusterStates();
    // The snapshot learns new clusters and listener routes before any new listener accepts.
    const applied = await this.controlPlane.applyConfig(next);
    if (!applied.ok) {
      // Something took capacity between the plan and the apply: back to the running clusters.
      if (this.clusterStates.apply(this.config)) this.dataPlane.sendClusterStates();
      return this.refuseReload(false, applied.problems, applied);
    }
    const wanted = this.listenerBindings(next);
    // A listener that is new here, or moved, must not share its address with anyone else.
    const taken = await probeListenAddresses(wanted.filter((b) => !this.listeners.some((held) => sameAddress(held, b))));
    const opened = wanted.filter((b) => !taken.some((t) => t.listener === b.name));
    const failed = [...taken, ...(await this.dataPlane.setListeners(opened))];
    const failures = describeListenFailures(failed);
    this.listeners = opened.filter((b) => !failed.some((f) => f.listener === b.name));
    this.failedListeners = wanted.flatMap((b) => {
      const failure = failed.find((f) => f.listener === b.name);
      return failure === undefined ? [] : [{ ...b, failure: describeListenFailure(failure) }];
    });
    for (const failure of failures) this.log.error({ failure }, 'reload: a listener could not be opened');
    // A discovered cluster the reload dropped (or made static) no longer holds start-up readiness.
    for (const cluster of this.config.clusters) {
      if (cluster.discovery !== undefined && next.clusters.find((c) => c.name === cluster.name)?.discovery === undefined) this.readiness.met(`discovery:${cluster.name}`);
    }
    this.config = next;
    this.log.info({ snapshotVersion: applied.version, ...changes, backends: planSummary(applied.plan) }, 'config reloaded');
    for (const { listener, message } of proxyTrustWarnings(next.listeners)) this.log.warn({ listener }, message);
    return { ok: true, dryRun, snapshotVersion: applied.version, changes, plan: applied.plan, ignored, failures };
  }

  private refuseReload(dryRun: boolean, problems: readonly CapacityProblem[], planned: ConfigApplyResult): ReloadResult {
    const errors = problems.length > 0 ? problems.map((p) => p.message) : [planned.ok ? 'refused' : (planned.message ?? 'refused')];
    if (!dryRun) this.log.error({ errors }, 'reload refused: the running config stays');
    if (problems.length === 0) return { ok: false, error: 'UNAVAILABLE', errors };
    return { ok: false, error: 'NO_CAPACITY', errors, limits: problems, plan: planned.plan, dryRun };
  }

  /**
   * SIGUSR1 (logrotate's postrotate): open access_log.path anew and move every worker to it.
   * The old descriptor is closed only once every worker wrote its last line there, so a
   * rotation neither loses nor repeats a line. A path that cannot be opened keeps the old file.
   */
  reopenAccessLog(): Promise<void> {
    const next = this.reopening.then(async () => {
      const { path } = this.config.access_log;
      const old = this.accessLog;
      if (!old.enabled || path === undefined || old.fd === 1) return;
      let settings: AccessLogSettings;
      try {
        settings = openAccessLog({ ...this.config.access_log, path });
      } catch (error) {
        this.log.error({ err: error }, 'access log: reopen failed; writing to the old file');
        return;
      }
      this.accessLog = settings;
      if (await this.dataPlane.reopenAccessLog(settings.fd)) closeSync(old.fd);
      else this.log.warn({ fd: old.fd }, 'access log: a worker died during the reopen; the old descriptor stays open');
      this.log.info({ path }, 'access log reopened');
    });
    this.reopening = next.catch((error: unknown) => {
      this.log.error({ err: error }, 'access log: reopen failed');
    });
    return this.reopening;
  }

  private listenerBindings(config: Config, slotFor = (name: string): number => this.listenerSlots.slotFor(name)): ListenerBinding[] {
    return config.listeners.map((listener) => {
      const address = parseHostPort(listener.listen);
      if (address === undefined) throw new SluiceError('SLUICE_CONFIG_INVALID', `bad listen address ${listener.listen}`);
      const binding = { name: listener.name, slot: slotFor(listener.name), host: address.host, port: address.port };
      if (listener.protocol === 'tcp') return { ...binding, protocol: 'tcp' };
      const { udp } = listener;
      return {
        ...binding,
        protocol: 'udp',
        udp: {
          sessionTimeoutMs: udp.session_timeout,
          maxSessions: udp.max_sessions,
          maxReplies: udp.max_replies,
          recvBufferBytes: udp.recv_buffer,
          sendBufferBytes: udp.send_buffer,
        },
      };
    });
  }

  /** Workers first, then the old process shares its UDP sessions, then the binds (see handover.ts). */
  private async bindForTakeover(): Promise<ListenFailure[]> {
    await this.dataPlane.start([], { holdUdp: true });
    const { listen, token_env: tokenEnv } = this.config.admin;
    const outcome = await prepareUdpHandover(listen, tokenEnv === undefined ? undefined : process.env[tokenEnv]);
    if (outcome === 'unsupported') this.log.warn('handover: the old process could not share its UDP sessions; some UDP clients may change backend');
    return this.dataPlane.setListeners(this.listeners);
  }

  private async takeOver(): Promise<void> {
    const { listen, token_env: tokenEnv } = this.config.admin;
    const token = tokenEnv === undefined ? undefined : process.env[tokenEnv];
    const { outcome, udpSessions } = await requestHandover(listen, token);
    this.dataPlane.seedUdp(udpSessions);
    const sessions = udpSessions.reduce((n, t) => n + t.sessions.length, 0);
    this.log.info({ sessions }, 'handover: seeded UDP sessions from the old process');
    if (outcome === 'handed-over') warnUnlessMigrating(this.log);
    this.log.info({ outcome }, outcome === 'handed-over' ? 'handover: the old process is draining' : 'handover: no process to take over from');
    await this.startAdmin(ADMIN_TAKEOVER_WAIT_MS);
  }

  private async startAdmin(waitForPortMs: number): Promise<void> {
    const { listen } = this.config.admin;
    const address = parseHostPort(listen);
    if (address === undefined) throw new SluiceError('SLUICE_CONFIG_INVALID', `bad admin address ${listen}`);
    const deadline = Date.now() + waitForPortMs;
    for (;;) {
      const admin = this.buildAdmin();
      try {
        await admin.listen({ host: address.host, port: address.port });
        this.admin = admin;
        const warning = exposureWarning(address.host, this.config.admin.token_env !== undefined);
        if (warning !== undefined) this.log.warn({ admin: listen }, warning);
        return;
      } catch (error) {
        await admin.close();
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'EADDRINUSE' && Date.now() < deadline) {
          await sleep(ADMIN_RETRY_INTERVAL_MS);
          continue;
        }
        throw new SluiceError(
          'SLUICE_LISTEN_FAILED',
          code === 'EADDRINUSE' ? `admin: ${listen} is already in use (EADDRINUSE)` : `admin: cannot listen on ${listen}: ${(error as Error).message}`,
        );
      }
    }
  }

  private buildAdmin(): AdminApp {
    return buildAdminApp({
      commands: { run: async (command) => this.controlPlane.backendCommand(command) },
      routes: { run: async (command) => this.controlPlane.routesCommand(command) },
      clusterState: (cluster) => this.clusterStates.get(cluster),
      token: adminToken(this.config.admin.token_env),
      snapshots: new SnapshotReader(this.snapshotBuffer),
      counters: this.counters,
      readiness: () => this.readiness.view(),
      workerResources: async () => this.dataPlane.resources(),
      lifecycle: {
        drain: (options) => void this.drain(options),
        reload: async (options) => this.reload(options),
        handOverUdp: async () => this.dataPlane.handOverUdp(),
        prepareHandover: async () => this.dataPlane.shareUdp(),
      },
      faults:
        process.env['SLUICE_FAULT_INJECTION'] === '1'
          ? { crashDataPlaneWorker: (index) => this.dataPlane.crash(index), crashControlPlane: () => this.controlPlane.crash() }
          : undefined,
      controlPlaneStats: async () => this.controlPlane.stats(),
      listeners: () => [...this.listeners, ...this.failedListeners],
      metrics: this.metrics,
      logger: this.rootLog,
      listenerAcls: { set: async (name, acl) => this.controlPlane.listenerAcl(name, acl) },
      backendHistory: this.controlPlane.history,
      listen: this.config.admin.listen,
      discovery: this.controlPlane.discovery,
      ...(this.config.registry === undefined ? {} : { registry: () => this.controlPlane.registry }),
    });
  }

  private async closeAdmin(): Promise<void> {
    const admin = this.admin;
    this.admin = undefined;
    await admin?.close();
  }

  private async stopAll(): Promise<void> {
    await this.dataPlane.terminate();
    await this.controlPlane.stop();
    await this.closeAdmin();
  }
}
