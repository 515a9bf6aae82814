/**
 * The control plane's core, run by its worker thread: the single writer of backend state
 * and of the snapshot. It feeds the health state machine (active probe results, passive
 * counter deltas, ticks) and publishes a new snapshot only when something a snapshot
 * carries really changed.
 *
 * Start-up choice (documented in docs/configuration.md, "Backend health"): a backend of a cluster with an active check is
 * probed once before it is first published, and starts healthy only if that probe passes.
 * HAProxy starts servers up and lets the checks take them down, which routes clients to a
 * backend that accepts TCP but fails its check until `fall` probes have failed; probing
 * first means such a backend is never routed to, at the cost of start-up waiting up to one
 * check `timeout`. After that first verdict, `rise` and `fall` apply as usual.
 */
import type { Logger } from 'pino';
import { parseHostPort } from '../shared/address.ts';
import type { AclConfig, Config } from '../shared/config/schema.ts';
import { SluiceError } from '../shared/errors.ts';
import { HealthCounter, type ControlPlaneCounters, type CounterTables } from '../shared/counters.ts';
import type { HistoryState, TransitionReport } from '../shared/backend-history.ts';
import type { Snapshot } from '../shared/snapshot/types.ts';
import type {
  BackendCommand,
  BackendCommandResult,
  CapacityProblem,
  ConfigApplyResult,
  ControlPlaneStats,
  ListenerAclResult,
  RoutesCommand,
  RoutesCommandResult,
} from '../shared/messages.ts';
import { listenerRoutes } from '../shared/config/schema.ts';
import { runBackendCommand, type CommandCore } from './backend-commands.ts';
import { runRoutesCommand } from './route-commands.ts';
import { resolveHost } from './host-resolution.ts';
import { DiscoveryManager, type DiscoveryCore, type DiscoveryManagerDeps, type DiscoveryStatusUpdate } from './discovery/discovery-manager.ts';
import { createDiscoverySources } from './discovery/sources.ts';
import { BackendRegistry, backendId, contentChanged, reuseUnchanged, type Backend, type Cluster } from './backend-registry.ts';
import { probe as realProbe, type ProbeResult, type ProbeTarget } from './health/checkers.ts';
import { newPassiveCursor, readPassive } from './health/passive.ts';
import { ProbeScheduler } from './health/scheduler.ts';
import { awaitsTick, initialRecord, transition, type HealthEvent, type HealthRecord } from './health/state-machine.ts';
import {
  desiredBackends,
  EMPTY_RUNTIME_STATE,
  pruneForConfig,
  recordListenerAcl,
  recordRoutes,
  sameRoutes,
  type DesiredBackend,
  type RuntimeState,
} from './runtime-state.ts';
import type { SlotAllocator } from './slot-allocator.ts';
import { capacityProblems, FIXED_LIMITS, placeholderBackend, type CapacityLimits } from './capacity.ts';
import { planReload, type ReloadPlan } from './reload-plan.ts';
import { peekStateFile, readStateFile, unknownEntries, writeStateFile, type StateFileContent } from './state-file.ts';
import type { SnapshotWriter } from './snapshot-writer.ts';
import { stampPublish, wallClockMicros } from '../shared/snapshot/propagation.ts';
import type { RegistryStatusReport } from '../shared/registry-status.ts';
import { snapshotHash } from './registry/fleet.ts';
import { intentFromRegistry } from './registry/intent.ts';
import { registryAclCommand, registryBackendCommand, registryRoutesCommand, type AppliedView, type Deferred } from './registry/registry-commands.ts';
import { RegistryLink, type RegistryLinkDeps } from './registry/registry-link.ts';
import type { RegistryState } from './registry/registry-state.ts';

/** How often passive counters, drains, ejections and slow-start ramps are looked at. */
export const TICK_MS = 100;

type Content = Omit<Snapshot, 'version'>;

export interface ControlPlaneDeps {
  readonly config: Config;
  readonly counters: CounterTables;
  readonly writer: SnapshotWriter;
  readonly slots: SlotAllocator;
  /** The thread's root logger; the control plane makes its own component children. */
  readonly log: Logger;
  /** The last published snapshot when this worker replaces a crashed one. */
  readonly recovered?: Snapshot | undefined;
  /** Milliseconds; monotonic within the thread, close to the epoch. */
  readonly now?: () => number;
  readonly probe?: (target: ProbeTarget, check: Parameters<typeof realProbe>[1]) => Promise<ProbeResult>;
  readonly random?: () => number;
  readonly tickMs?: number;
  /** Writes the state file (tests replace it to make writes fail). */
  readonly writeState?: (file: string, state: StateFileContent) => Promise<void>;
  /** Receives each published batch of state transitions, stamped with the snapshot version that holds them. */
  readonly onTransitions?: (reports: readonly TransitionReport[]) => void;
  /** Builds the source of a discovered cluster (DNS, Kubernetes); tests pass fakes. */
  readonly createSource?: DiscoveryManagerDeps['createSource'];
  /** Receives a discovered cluster's status when a refresh changed it (its answer only when that changed). */
  readonly onDiscoveryStatus?: (status: DiscoveryStatusUpdate) => void;
  /**
   * Runs a discovery step after whatever the owner already queued (the worker's command
   * queue), so discovery and operators' commands never interleave; default: a queue of its own.
   */
  readonly serially?: (step: () => Promise<void>) => void;
  /** Receives the registry's status after every applied revision and every up/down flip (with `registry:`). */
  readonly onRegistryStatus?: (status: RegistryStatusReport) => void;
  /** Connects to etcd (tests pass a short start wait or a fake); default: registry.etcd of the config. */
  readonly registryLink?: Partial<Pick<RegistryLinkDeps, 'connect' | 'startWaitMs'>>;
}

export function monotonicNow(): number {
  return performance.timeOrigin + performance.now();
}

export class ControlPlane {
  readonly #deps: ControlPlaneDeps;
  readonly #log: Logger;
  readonly #controlLog: Logger;
  readonly #now: () => number;
  readonly #registry: BackendRegistry;
  readonly #scheduler: ProbeScheduler;
  /** The shared cells /metrics reads: probe results and durations, snapshot publishes. */
  readonly #metrics: ControlPlaneCounters;
  /** How long each probe took, by its result object, until the result reaches its backend. */
  readonly #probeTimes = new WeakMap<ProbeResult, { readonly ms: number; readonly timedOut: boolean }>();
  /** The config in force: the start-up one, then each reloaded one. */
  #config: Config;
  /** Slots of removed backends, released once no connection counts into them. */
  readonly #retiredSlots: number[] = [];
  /** Operators' changes on top of the config (persisted in the state file, if one is set). */
  #runtime: RuntimeState = EMPTY_RUNTIME_STATE;
  readonly #commandCore: CommandCore;
  readonly #discovery: DiscoveryManager;
  /** With `registry:` in the config: the source of operator intent, in place of the state file. */
  readonly #link: RegistryLink | undefined;
  #published: Content | undefined;
  #dirty = false;
  #tickTimer: NodeJS.Timeout | undefined;
  #publishes = 0;
  #transitions = 0;
  /** The last publish failed because the snapshot outgrew its slot (logged once until one fits). */
  #outgrown = false;
  /** Clusters that had no routable backend in the last published snapshot. */
  #unroutable = new Set<string>();
  /** Transitions since the last publish; the next publish stamps them with its version. */
  #unpublishedTransitions: Omit<TransitionReport, 'snapshot_version'>[] = [];

  constructor(deps: ControlPlaneDeps) {
    this.#deps = deps;
    this.#log = deps.log.child({ component: 'health' });
    this.#controlLog = deps.log.child({ component: 'controlplane' });
    this.#now = deps.now ?? monotonicNow;
    this.#config = deps.config;
    this.#registry = new BackendRegistry(deps.config, deps.slots);
    this.#metrics = deps.counters.forControlPlane();
    const probe = deps.probe ?? realProbe;
    const scheduler: ConstructorParameters<typeof ProbeScheduler>[0] = {
      probe: async (target, check) => {
        const started = performance.now();
        const result = await probe(target, check);
        const ms = performance.now() - started;
        // The checker says whether its timer ended the probe: on a loaded machine a refused
        // connect can take longer than the timeout to be seen, and is still a failure.
        this.#probeTimes.set(result, { ms, timedOut: !result.ok && result.timedOut === true });
        return result;
      },
      onResult: (id, result) => {
        this.#onProbeResult(id, result);
      },
    };
    this.#scheduler = new ProbeScheduler(deps.random === undefined ? scheduler : { ...scheduler, random: deps.random });
    this.#commandCore = this.#makeCommandCore();
    const serially = deps.serially ?? ownQueue();
    const registry = deps.config.registry;
    this.#link =
      registry === undefined
        ? undefined
        : new RegistryLink({
            config: registry.etcd,
            log: deps.log.child({ component: 'registry' }),
            serially,
            applyState: async (state) => this.#applyRegistryState(state),
            snapshotHash: () => this.#fleetHash(),
            onStatus: deps.onRegistryStatus ?? (() => undefined),
            ...deps.registryLink,
          });
    this.#discovery = new DiscoveryManager({
      core: this.#makeDiscoveryCore(),
      createSource: deps.createSource ?? createDiscoverySources(),
      serially,
      onStatus: deps.onDiscoveryStatus ?? (() => undefined),
      log: deps.log.child({ component: 'discovery' }),
    });
  }

  /** The clusters fed by discovery (each must answer once before the process is ready). */
  get discoveredClusters(): readonly string[] {
    return this.#discovery.clusters();
  }

  get registry(): BackendRegistry {
    return this.#registry;
  }

  /** Builds the initial state (probing first where checks are active), publishes it, starts checks. */
  async start(): Promise<number> {
    if (!(await this.#startRegistry())) await this.#loadRuntimeState();
    else await this.#loadStoredAnswers();
    const recovered = this.#deps.recovered;
    if (recovered !== undefined) this.#recover(recovered);
    this.#registry.setRouteOverrides(this.#runtime.routes);
    // Acls operators set before a restart (the state file), while the file's own acl stayed.
    for (const [name, override] of Object.entries(this.#runtime.acls ?? {})) this.#registry.setListenerAcl(name, override.acl);
    await this.#addDesired(desiredBackends(this.#config, this.#runtime));
    const version = this.#publish(this.#registry.snapshotContent(this.#now()));
    for (const backend of this.#registry.all()) this.#schedule(backend);
    this.#tickTimer = setInterval(() => {
      this.tick();
    }, this.#deps.tickMs ?? TICK_MS);
    this.#discovery.configure(this.#config.clusters);
    return version;
  }

  stop(): void {
    void this.close();
  }

  /** Stops checks and sources; resolves once the registry link closed (this instance left the fleet). */
  async close(): Promise<void> {
    clearInterval(this.#tickTimer);
    this.#scheduler.stop();
    void this.#discovery.stop();
    await this.#link?.stop();
  }

  stats(): ControlPlaneStats {
    const s = this.#scheduler.stats();
    return {
      snapshotVersion: this.#deps.writer.version(),
      snapshotPublishes: this.#publishes,
      healthTransitions: this.#transitions,
      backends: this.#registry.size,
      probes: s.probes,
      probeFailures: s.failures,
      probesSkipped: s.skipped,
      probesInFlight: s.inFlight,
      probesQueued: s.queued,
    };
  }

  /** Reads passive counters, ends drains and ejections, steps slow-start ramps; publishes on change. */
  tick(): void {
    const now = this.#now();
    const counters = this.#deps.counters;
    let ramping = false;
    // A copy: a tick that ends a removal deletes from the registry.
    for (const backend of [...this.#registry.all()]) {
      const cluster = this.#clusterOf(backend);
      const delta = readPassive(counters, backend.slot, backend.passive);
      if (delta.failures > 0 || delta.successes > 0) this.#apply(backend, cluster, { type: 'passive', ...delta, now });
      if (awaitsTick(backend.health, cluster.policy)) {
        this.#apply(backend, cluster, { type: 'tick', activeConnections: counters.activeConnections(backend.slot), now });
      }
      ramping = this.#stepRamp(backend, cluster, now) || ramping;
    }
    this.#releaseRetiredSlots();
    // Health moved: an SRV backup tier or terminating endpoints may have to take over.
    this.#discovery.tick(now);
    if (this.#dirty || ramping) this.#publishIfChanged(now);
  }

  /**
   * True while `backend` ramps up under slow start (its effective weight may step this tick).
   * A finished ramp is ended here, which marks the snapshot dirty for the last step to 100%.
   */
  #stepRamp(backend: Backend, cluster: Cluster, now: number): boolean {
    const h = backend.health;
    if (h.rampFrom === undefined) return false;
    if (h.state === 'healthy' && now - h.rampFrom < cluster.config.slow_start) return true;
    backend.health = { ...h, rampFrom: undefined };
    this.#dirty = true;
    return false;
  }

  // ── start-up ─────────────────────────────────────────────────────────────────────────

  /**
   * Adds the desired backends (config plus operators' changes) the registry lacks: all of
   * them at start-up, those a recovered snapshot did not hold, those a reload adds. Probed
   * together, added in order (the order snapshots and GET /backends show); operators' drains
   * are applied as they enter.
   */
  async #addDesired(desired: readonly DesiredBackend[]): Promise<void> {
    const entries: { cluster: Cluster; want: DesiredBackend }[] = [];
    for (const want of desired) {
      const cluster = this.#registry.cluster(want.cluster);
      if (cluster !== undefined && this.#registry.get(backendId(want.cluster, want.address)) === undefined) entries.push({ cluster, want });
    }
    const verdicts = await Promise.all(entries.map(async ({ cluster, want }) => this.#firstVerdict(cluster, want.address)));
    entries.forEach(({ cluster, want }, i) => {
      const backend = this.#addBackend(cluster, want.address, want.weight, verdicts[i] as HealthRecord);
      if (want.drained) this.#apply(backend, cluster, { type: 'drain', now: this.#now() });
      if (this.#tickTimer !== undefined) this.#schedule(backend);
    });
  }

  /**
   * With a registry: waits a bounded time for its first read and starts on the intent it holds
   * (true). When it does not answer, start-up goes on from config.yaml and the state file's
   * last-known copy (false), and the registry's intent is applied once it answers; a
   * `required` registry throws instead.
   */
  async #startRegistry(): Promise<boolean> {
    const link = this.#link;
    if (link === undefined) return false;
    if (await link.start()) {
      this.#runtime = intentFromRegistry(link.state(), this.#config);
      this.#controlLog.info({ registry: link.describe, revision: link.state().revision }, 'registry read: starting on the operator intent it holds');
      return true;
    }
    this.#controlLog.warn(
      { registry: link.describe, stateFile: this.#config.state_file ?? null },
      `registry ${link.describe} unreachable at start: starting on config.yaml${this.#config.state_file === undefined ? '' : ' and the state file (its last-known copy)'}; its intent is applied once it answers`,
    );
    return false;
  }

  /** A watch delivery (on the serial queue): the registry's intent becomes the running state. */
  async #applyRegistryState(state: RegistryState): Promise<void> {
    await this.#applyIntent(intentFromRegistry(state, this.#config));
    this.#controlLog.info({ revision: state.revision, version: this.#deps.writer.version() }, 'registry intent applied');
  }

  /**
   * Makes what runs equal `next` by difference, like a reload to the same file (planReload
   * compares the desired set with the running one), then drains, undrains and acls, which a
   * reload leaves alone. Backends that stay keep their health, slot and connections.
   */
  async #applyIntent(next: RuntimeState): Promise<void> {
    const previous = this.#runtime;
    this.#runtime = next;
    const { plan, problems } = this.planConfig(this.#config);
    if (problems.length > 0) this.#controlLog.warn({ problems: problems.map((p) => p.message) }, 'registry intent exceeds a capacity limit: applying what fits');
    this.#registry.setRouteOverrides(plan.runtime.routes);
    this.#applyBackendChanges(plan.backends, this.#now());
    await this.#addDesired(plan.backends.add);
    this.#runtime = plan.runtime;
    this.#syncDrains(plan.runtime);
    this.#syncDiscoveredWeights(plan.runtime);
    this.#syncAcls(previous, plan.runtime);
    // The state file, when set, keeps the last-known copy to start from while etcd is away.
    await this.#saveRuntimeOrWarn(plan.runtime);
    this.#dirty = true;
    this.#publishIfChanged(this.#now());
  }

  #syncDrains(runtime: RuntimeState): void {
    const drained = new Set(runtime.drained);
    const now = this.#now();
    for (const backend of [...this.#registry.all()]) {
      const admin = backend.health.admin;
      if (admin === 'remove') continue;
      if (drained.has(backend.id) && admin === 'none') this.#apply(backend, this.#clusterOf(backend), { type: 'drain', now });
      else if (!drained.has(backend.id) && admin === 'drain') this.#apply(backend, this.#clusterOf(backend), { type: 'undrain', now });
    }
  }

  /**
   * A discovered cluster's set is its source's (the plan leaves it alone), but an operator's
   * weight for one of its backends is the registry's. Once that weight is lifted, the
   * source's own weight returns at its next refresh (the discovery core's setWeight).
   */
  #syncDiscoveredWeights(runtime: RuntimeState): void {
    for (const backend of this.#registry.all()) {
      const want = runtime.weights[backend.id];
      if (want === undefined || backend.weight === want || this.#clusterOf(backend).config.discovery === undefined) continue;
      backend.weight = want;
      this.#dirty = true;
    }
  }

  #syncAcls(previous: RuntimeState, next: RuntimeState): void {
    for (const listener of this.#config.listeners) {
      const want = next.acls?.[listener.name]?.acl;
      if (JSON.stringify(want) === JSON.stringify(previous.acls?.[listener.name]?.acl)) continue;
      this.#registry.setListenerAcl(listener.name, want ?? listener.acl ?? { allow: [], deny: [] });
    }
  }

  /**
   * A hash of what this instance routes by operator intent, equal across a converged fleet:
   * backends (weight, admin intent) and listeners (routes, acl), without local health.
   */
  #fleetHash(): string {
    const content = this.#published;
    if (content === undefined) return '';
    return snapshotHash({
      clusters: content.clusters
        .map((c) => ({ name: c.name, backends: c.backends.filter((b) => b.admin !== 'remove').map((b) => [b.id, b.configuredWeight, b.admin]).sort() }))
        .sort((a, b) => a.name.localeCompare(b.name)),
      listeners: content.listeners.map((l) => ({ name: l.name, routes: l.routes, acl: l.acl ?? null })).sort((a, b) => a.name.localeCompare(b.name)),
    });
  }

  async #loadRuntimeState(): Promise<void> {
    const file = this.#config.state_file;
    if (file === undefined) return;
    const read = await readStateFile(file);
    if (!read.ok) {
      this.#controlLog.error(
        { stateFile: file, problem: read.problem, setAsideTo: read.setAsideTo },
        'state file is unusable: set aside; starting from config.yaml alone',
      );
    }
    for (const dropped of unknownEntries(read.state, this.#config)) {
      this.#controlLog.warn({ stateFile: file, ...dropped }, 'state file entry dropped: config.yaml does not declare what it names');
    }
    this.#runtime = pruneForConfig(read.state, this.#config);
    this.#discovery.useStoredAnswers(read.state.discovered ?? {});
    if (read.ok && read.found) {
      const r = this.#runtime;
      this.#controlLog.info(
        { stateFile: file, added: r.added.length, removed: r.removed.length, drained: r.drained.length, reweighted: Object.keys(r.weights).length },
        'state file applied on top of config.yaml',
      );
    }
  }

  /** With a registry the operators' part comes from etcd; the discovered answers are still the file's. */
  async #loadStoredAnswers(): Promise<void> {
    const file = this.#config.state_file;
    if (file !== undefined) this.#discovery.useStoredAnswers((await peekStateFile(file))?.discovered ?? {});
  }

  async #saveRuntime(state: RuntimeState): Promise<void> {
    const file = this.#config.state_file;
    if (file !== undefined) {
      const discovered = this.#discovery.storedAnswers();
      await (this.#deps.writeState ?? writeStateFile)(file, Object.keys(discovered).length === 0 ? state : { ...state, discovered });
    }
    this.#runtime = state;
  }

  /** The health a backend enters with: healthy without active checks, else its first probe decides. */
  async #firstVerdict(cluster: Cluster, address: string): Promise<HealthRecord> {
    const check = cluster.config.health_check;
    const target = targetOf(address);
    if (check.type === 'none') {
      // No probe will tell: a host name that does not resolve starts out, and is tried again
      // after an ejection time like a backend the data plane could not reach.
      const resolved = await resolveHost(target.host);
      if (resolved.ok) return initialRecord(true, 'no active check', this.#now());
      const now = this.#now();
      this.#log.warn({ backend: backendId(cluster.name, address), reason: resolved.reason }, 'backend host name does not resolve: not routed to until it does');
      return { ...initialRecord(false, `host name does not resolve (${resolved.reason})`, now), ejectedAt: now, ejections: 1 };
    }
    const result = await this.#scheduler.probeOnce(target, check);
    const id = backendId(cluster.name, address);
    if (!result.ok) this.#log.warn({ backend: id, detail: result.detail }, 'backend failed its first probe: not routed to until it passes');
    return initialRecord(result.ok, `first probe ${result.ok ? 'passed' : 'failed'}: ${result.detail}`, this.#now());
  }

  #addBackend(cluster: Cluster, address: string, weight: number, health: HealthRecord): Backend {
    const backend = this.#registry.add({ cluster: cluster.name, address, weight, health, passive: { failures: 0, successes: 0 } });
    // A reused slot still holds the totals of the backend that had it before.
    this.#deps.counters.resetBackendSlot(backend.slot);
    this.#dirty = true;
    this.#noteTransition(backend.id, 'new', health);
    return backend;
  }

  /** A replacement worker continues from the last snapshot, so routing does not change under the data plane. */
  #recover(snapshot: Snapshot): void {
    this.#registry.recoverListenerAcls(snapshot);
    for (const cluster of snapshot.clusters) {
      for (const b of cluster.backends) {
        if (this.#registry.cluster(cluster.name) === undefined) {
          // Its cluster was dropped by the reload that replaced this worker's config: keep the
          // slot out of use until connections still counted in it are gone.
          this.#deps.slots.claim(b.slot);
          this.#retiredSlots.push(b.slot);
          continue;
        }
        const health: HealthRecord = {
          ...initialRecord(b.state === 'healthy', b.reason, b.since),
          state: b.state,
          up: b.state === 'healthy' || (b.state === 'draining' && b.admin !== 'none'),
          admin: b.admin,
          drained: b.drained,
          drainStartedAt: b.since,
          failures: 0,
          // Without active checks an ejected backend comes back by time: start its ejection over.
          ejectedAt: b.state === 'healthy' ? undefined : this.#now(),
        };
        const passive = newPassiveCursor(this.#deps.counters, b.slot);
        this.#registry.add({ cluster: cluster.name, address: b.address, weight: b.configuredWeight, health, passive, slot: b.slot });
      }
    }
    // Routes an operator set survive a control-plane restart through the last snapshot, like
    // backends added at runtime (the state file, when there is one, holds them too).
    let runtime = this.#runtime;
    for (const listener of snapshot.listeners) {
      const declared = this.#config.listeners.find((l) => l.name === listener.name);
      if (declared === undefined || listener.name in runtime.routes) continue;
      if (!sameRoutes(listener.routes, listenerRoutes(declared))) runtime = recordRoutes(runtime, listener.name, listener.routes, this.#config);
    }
    this.#runtime = pruneForConfig(runtime, this.#config);
    this.#controlLog.info({ recoveredFrom: snapshot.version, backends: this.#registry.size }, 'control plane recovered state from the last snapshot');
  }

  #schedule(backend: Backend): void {
    const check = this.#clusterOf(backend).config.health_check;
    if (check.type === 'none') return;
    this.#scheduler.add({ id: backend.id, host: backend.host, port: backend.port, check });
  }

  // ── reload ───────────────────────────────────────────────────────────────────────────

  /**
   * Plans a reloaded config against what runs now (reload-plan.ts) and checks it against the
   * capacity limits; changes nothing.
   */
  planConfig(next: Config): { plan: ReloadPlan; problems: CapacityProblem[] } {
    const counters = this.#deps.counters;
    // A discovered cluster's backends are its source's: a reload neither adds nor removes them.
    const discovered = new Set(next.clusters.filter((c) => c.discovery !== undefined).map((c) => c.name));
    const running = [...this.#registry.all()].filter((b) => !discovered.has(b.cluster)).map((b) => ({
      id: b.id,
      cluster: b.cluster,
      weight: b.weight,
      admin: b.health.admin,
      activeConnections: counters.activeConnections(b.slot),
    }));
    const plan = planReload(this.#config, next, this.#runtime, running);
    const now = this.#now();
    const limits = this.#limits();
    const content = this.#registry.projectedContent(next, plan.runtime.routes, plan.backends.add, placeholderBackend(limits, now), now);
    // A removed backend keeps its slot until its connections closed: the old set and the new
    // one need slots side by side while the old one drains.
    const need = { backendSlots: this.#deps.slots.used + plan.backends.add.length, snapshotBytes: this.#encodedBytes(content) };
    return { plan, problems: capacityProblems(need, limits) };
  }

  /**
   * Apply a reloaded config as planned by `planConfig` and publish; with `dryRun`, or when a
   * capacity limit would be exceeded, nothing changes (refused whole: nothing recorded,
   * nothing published). Backends that stay keep their health, slot and connections; new ones
   * are probed first like at start-up; ones no longer desired (and every backend of a dropped
   * cluster) are drained and removed through the state machine, like an operator's removal;
   * one being removed that the file lists again has its removal cancelled. A weight is taken
   * from the file only when the file changed it, so a reweight made at runtime survives a
   * reload; a backend an operator removed stays removed.
   */
  async applyConfig(next: Config, options: { dryRun?: boolean } = {}): Promise<ConfigApplyResult> {
    const { plan, problems } = this.planConfig(next);
    if (problems.length > 0) {
      this.#controlLog.warn({ problems: problems.map((p) => p.message) }, 'reload refused: over a capacity limit; the running config stays');
      return { ok: false, plan: plan.backends, problems };
    }
    if (options.dryRun === true) return { ok: true, version: this.#deps.writer.version(), plan: plan.backends, dryRun: true };
    this.#config = next;
    this.#registry.applyConfig(next);
    this.#registry.setRouteOverrides(plan.runtime.routes);
    this.#discovery.configure(next.clusters);
    const now = this.#now();
    const { add, restore, reweight, keep } = plan.backends;
    this.#applyBackendChanges(plan.backends, now);
    const staying = [...keep, ...reweight.map((r) => r.id), ...restore.map((r) => backendId(r.cluster, r.address))];
    for (const id of staying) {
      const backend = this.#registry.get(id);
      if (backend === undefined) continue;
      // The cluster's check may have changed.
      this.#scheduler.remove(backend.id);
      this.#schedule(backend);
      const h = backend.health;
      // Without an active check, a backend that is out comes back by time (outlier ejection).
      if (this.#clusterOf(backend).config.health_check.type === 'none' && !h.up && h.ejectedAt === undefined) {
        backend.health = { ...h, ejectedAt: now };
      }
    }
    await this.#addDesired(add);
    if (plan.runtime !== this.#runtime) await this.#saveRuntimeOrWarn(plan.runtime);
    // With a registry, its intent is read again against the new file (what no longer fits is dropped).
    if (this.#link !== undefined) await this.#applyIntent(intentFromRegistry(this.#link.state(), next));
    this.#dirty = true;
    const version = this.#publishIfChanged(this.#now()) ?? this.#deps.writer.version();
    return { ok: true, version, plan: plan.backends, dryRun: false };
  }

  /** A plan's removals, restores and reweights (adds need probes: #addDesired). */
  #applyBackendChanges(plan: ReloadPlan['backends'], now: number): void {
    for (const id of [...plan.remove, ...plan.drain]) {
      const backend = this.#registry.get(id);
      if (backend !== undefined) this.#apply(backend, this.#clusterOf(backend), { type: 'remove', force: false, now });
    }
    for (const want of plan.restore) {
      const backend = this.#registry.get(backendId(want.cluster, want.address));
      if (backend === undefined) continue;
      backend.weight = want.weight;
      this.#apply(backend, this.#clusterOf(backend), { type: 'restore', now });
      if (want.drained) this.#apply(backend, this.#clusterOf(backend), { type: 'drain', now });
    }
    for (const { id, to } of plan.reweight) {
      const backend = this.#registry.get(id);
      if (backend === undefined || backend.weight === to) continue;
      backend.weight = to;
      this.#dirty = true;
    }
  }

  /** The capacity limits the running config plus `change` would exceed (capacity.ts). */
  #changeProblems(change: { added?: readonly { cluster: string; address: string; weight: number }[]; acl?: { listener: string; acl: AclConfig } }): CapacityProblem[] {
    const now = this.#now();
    const limits = this.#limits();
    const added = change.added ?? [];
    const content = this.#registry.projectedContent(this.#config, this.#runtime.routes, added, placeholderBackend(limits, now), now, change.acl);
    return capacityProblems({ backendSlots: this.#deps.slots.used + added.length, snapshotBytes: this.#encodedBytes(content) }, limits);
  }

  /** What a change's content encodes to, re-encoding only the clusters it changes (the writer keeps the rest). */
  #encodedBytes(content: Content): number {
    return this.#deps.writer.encodedLength(reuseUnchanged(this.#published, content));
  }

  /** The fixed bounds of this process's shared buffers. */
  #limits(): CapacityLimits {
    return { backendSlots: this.#deps.slots.capacity, snapshotBytes: this.#deps.writer.capacity(), listenerSlots: FIXED_LIMITS.listenerSlots };
  }

  /** A reload is not refused for a state file it cannot write: the file is the operators', the reload the config's. */
  async #saveRuntimeOrWarn(state: RuntimeState): Promise<void> {
    try {
      await this.#saveRuntime(state);
    } catch (error) {
      this.#runtime = state;
      this.#controlLog.error({ err: error }, 'state file could not be written after a reload');
    }
  }

  // ── operators' commands ─────────────────────────────────────────────────────────────

  /** Applies one admin API write; see backend-commands.ts. Callers run commands one at a time. */
  async command(command: BackendCommand): Promise<BackendCommandResult> {
    const result = await runBackendCommand(this.#commandCore, command);
    if (result.ok) this.#controlLog.info({ command, version: result.version }, 'operator change applied');
    return result;
  }

  /**
   * An operator's acl for a listener: recorded in the state file first (refused whole if it
   * cannot be written), then published; the answer names the version that holds it.
   */
  async setListenerAcl(name: string, acl: AclConfig): Promise<ListenerAclResult> {
    const refusal = this.#aclRefusal(name, acl);
    if (refusal !== undefined) return refusal;
    const listener = this.#config.listeners.find((l) => l.name === name);
    if (listener === undefined) return { ok: false, error: 'NOT_FOUND', message: `no listener named "${name}"` };
    try {
      await this.#saveRuntime(recordListenerAcl(this.#runtime, listener, acl));
    } catch (error) {
      return { ok: false, error: 'UNAVAILABLE', message: `the state file could not be written: ${(error as Error).message}` };
    }
    this.#registry.setListenerAcl(name, acl);
    const version = this.#publishIfChanged(this.#now()) ?? this.#deps.writer.version();
    this.#controlLog.info({ listener: name, allow: acl.allow.length, deny: acl.deny.length, version }, 'operator changed a listener acl');
    return { ok: true, version, acl };
  }

  #aclRefusal(name: string, acl: AclConfig): Extract<ListenerAclResult, { ok: false }> | undefined {
    const listener = this.#config.listeners.find((l) => l.name === name);
    if (listener === undefined) return { ok: false, error: 'NOT_FOUND', message: `no listener named "${name}"` };
    if (listener.protocol === 'udp') return { ok: false, error: 'BAD_REQUEST', message: `listener "${name}" is udp: an acl applies only to TCP listeners` };
    const problems = this.#changeProblems({ acl: { listener: name, acl } });
    if (problems.length > 0) return { ok: false, error: 'NO_CAPACITY', message: problems.map((p) => p.message).join('; ') };
    return undefined;
  }

  // With a registry, a write's answer waits for this instance's watch, whose step runs on the
  // same serial queue as commands: `submit*` settle once the write is done, their `answer` later.

  /** An admin backend write: applied here, or with a registry written to etcd and applied from the watch. */
  async submit(command: BackendCommand): Promise<Deferred<BackendCommandResult>> {
    if (this.#link === undefined) return { answer: Promise.resolve(await this.command(command)) };
    return registryBackendCommand(this.#commandCore, this.#appliedView(), this.#link, command);
  }

  async submitRoutes(command: RoutesCommand): Promise<Deferred<RoutesCommandResult>> {
    if (this.#link === undefined) return { answer: Promise.resolve(await this.routesCommand(command)) };
    return registryRoutesCommand(this.#appliedView(), this.#link, command);
  }

  async submitAcl(name: string, acl: AclConfig): Promise<Deferred<ListenerAclResult>> {
    if (this.#link === undefined) return { answer: Promise.resolve(await this.setListenerAcl(name, acl)) };
    return registryAclCommand(this.#appliedView(), this.#link, name, acl, this.#aclRefusal(name, acl));
  }

  #appliedView(): AppliedView {
    return {
      config: () => this.#config,
      version: () => this.#deps.writer.version(),
      published: (id) => this.#commandCore.published(id),
      listenerRoutes: (listener) => this.#registry.listenerRoutes(listener),
      listenerAcl: (listener) => {
        const acl = this.#published?.listeners.find((l) => l.name === listener)?.acl;
        return acl === undefined ? undefined : { allow: [...acl.allow], deny: [...acl.deny] };
      },
    };
  }

  /** Applies one listener-routes change (route-commands.ts). Callers run commands one at a time. */
  async routesCommand(command: RoutesCommand): Promise<RoutesCommandResult> {
    const result = await runRoutesCommand(
      {
        registry: this.#registry,
        config: () => this.#config,
        runtime: () => this.#runtime,
        saveRuntime: async (state) => this.#saveRuntime(state),
        publish: () => {
          this.#dirty = true;
          return this.#publishIfChanged(this.#now()) ?? this.#deps.writer.version();
        },
      },
      command,
    );
    if (result.ok) this.#controlLog.info({ command, version: result.version }, 'operator change applied');
    return result;
  }

  #makeDiscoveryCore(): DiscoveryCore {
    const find = (cluster: string, address: string): Backend | undefined => this.#registry.get(backendId(cluster, address));
    const event = (cluster: string, address: string, make: (now: number) => HealthEvent): void => {
      const backend = find(cluster, address);
      if (backend !== undefined) this.#apply(backend, this.#clusterOf(backend), make(this.#now()));
    };
    return {
      now: () => this.#now(),
      addresses: (cluster) => [...(this.#registry.cluster(cluster)?.backends.values() ?? [])].filter((b) => b.health.state !== 'removed').map((b) => ({ address: b.address, weight: b.weight })),
      health: (cluster, address) => find(cluster, address)?.health,
      add: async (clusterName, address, weight) => {
        const cluster = this.#registry.cluster(clusterName);
        if (cluster === undefined) return false;
        const health = await this.#firstVerdict(cluster, address);
        if (find(clusterName, address) !== undefined || this.#registry.cluster(clusterName) !== cluster) return true;
        // Checked after the probe: other adds of the same answer were probed meanwhile.
        if (!this.#deps.slots.hasFree()) return false;
        const id = backendId(clusterName, address);
        const backend = this.#addBackend(cluster, address, this.#runtime.weights[id] ?? weight, health);
        if (this.#runtime.drained.includes(id)) this.#apply(backend, cluster, { type: 'drain', now: this.#now() });
        if (this.#tickTimer !== undefined) this.#schedule(backend);
        return true;
      },
      setWeight: (cluster, address, weight) => {
        const backend = find(cluster, address);
        // An operator's weight for this backend outlives what the source says.
        if (backend === undefined || backend.id in this.#runtime.weights || backend.weight === weight) return;
        backend.weight = weight;
        this.#dirty = true;
      },
      setListed: (cluster, address, listed, detail) => {
        event(cluster, address, (now) => ({ type: 'source', listed, detail, now }));
      },
      remove: (cluster, address, reason) => {
        event(cluster, address, (now) => ({ type: 'remove', force: false, now, reason }));
      },
      publish: () => {
        // An unchanged refresh marked nothing dirty: no snapshot is built or compared.
        if (this.#dirty) this.#publishIfChanged(this.#now());
      },
      persistAnswers: async () => this.#saveRuntime(this.#runtime),
    };
  }

  #makeCommandCore(): CommandCore {
    return {
      registry: this.#registry,
      config: () => this.#config,
      runtime: () => this.#runtime,
      saveRuntime: async (state) => this.#saveRuntime(state),
      now: () => this.#now(),
      addProblems: (cluster, address, weight) => this.#changeProblems({ added: [{ cluster, address, weight }] }),
      firstVerdict: async (cluster, address) => this.#firstVerdict(cluster, address),
      addBackend: (cluster, address, weight, health) => {
        const backend = this.#addBackend(cluster, address, weight, health);
        this.#schedule(backend);
        return backend;
      },
      apply: (backend, event) => {
        this.#apply(backend, this.#clusterOf(backend), event);
      },
      settle: (backend) => {
        const active = this.#deps.counters.activeConnections(backend.slot);
        this.#apply(backend, this.#clusterOf(backend), { type: 'tick', activeConnections: active, now: this.#now() });
        this.#dirty = true;
      },
      publish: () => this.#publishIfChanged(this.#now()) ?? this.#deps.writer.version(),
      published: (id) => {
        for (const cluster of this.#published?.clusters ?? []) {
          const found = cluster.backends.find((b) => b.id === id);
          if (found !== undefined) return found;
        }
        return undefined;
      },
    };
  }

  // ── events ───────────────────────────────────────────────────────────────────────────

  #onProbeResult(id: string, result: ProbeResult): void {
    const backend = this.#registry.get(id);
    if (backend === undefined) return;
    const time = this.#probeTimes.get(result);
    if (time !== undefined) {
      const outcome = result.ok ? HealthCounter.success : time.timedOut ? HealthCounter.timeout : HealthCounter.failure;
      this.#metrics.probeFinished(backend.slot, outcome, time.ms);
    }
    this.#apply(backend, this.#clusterOf(backend), { type: 'probe', ok: result.ok, detail: result.detail, now: this.#now() });
    if (this.#dirty) this.#publishIfChanged(this.#now());
  }

  #apply(backend: Backend, cluster: Cluster, event: HealthEvent): void {
    const before = backend.health;
    const after = transition(before, event, cluster.policy);
    if (after === before) return;
    backend.health = after;
    if (after.up !== before.up || after.admin !== before.admin) this.#discovery.availabilityChanged(backend.cluster);
    if (after.state === before.state && after.drained === before.drained && after.admin === before.admin && after.reason === before.reason) return;
    this.#dirty = true;
    if (after.state === before.state) return;
    this.#transitions++;
    this.#log.info({ backend: backend.id, from: before.state, to: after.state, reason: after.reason }, 'backend health changed');
    this.#noteTransition(backend.id, before.state, after);
    if (after.state === 'removed') this.#forget(backend);
  }

  #noteTransition(backend: string, from: HistoryState, to: HealthRecord): void {
    if (this.#deps.onTransitions === undefined) return;
    this.#unpublishedTransitions.push({ backend, at: new Date().toISOString(), from, to: to.state, admin: to.admin, reason: to.reason });
  }

  #forget(backend: Backend): void {
    this.#registry.delete(backend.id);
    this.#registry.pruneCluster(backend.cluster, new Set(this.#config.clusters.map((c) => c.name)));
    this.#scheduler.remove(backend.id);
    this.#retiredSlots.push(backend.slot);
  }

  #releaseRetiredSlots(): void {
    for (let i = this.#retiredSlots.length - 1; i >= 0; i--) {
      const slot = this.#retiredSlots[i] as number;
      // A data plane closes what it holds to a removed backend when it sees the snapshot without it.
      if (this.#deps.counters.activeConnections(slot) !== 0) continue;
      this.#retiredSlots.splice(i, 1);
      this.#deps.slots.release(slot);
    }
  }

  // ── publishing ───────────────────────────────────────────────────────────────────────

  #publishIfChanged(now: number): number | undefined {
    const content = reuseUnchanged(this.#published, this.#registry.snapshotContent(now));
    this.#dirty = false;
    if (!contentChanged(this.#published, content)) return undefined;
    try {
      return this.#publish(content);
    } catch (error) {
      // Changes are checked against the slot before they are made; what can still grow is
      // health reasons. Throwing here would restart the worker into the same state, so the
      // data plane keeps the last snapshot and the next change tries again.
      if (!(error instanceof SluiceError) || error.code !== 'SLUICE_SNAPSHOT_TOO_LARGE') throw error;
      this.#dirty = true;
      if (!this.#outgrown) this.#controlLog.error({ err: error, version: this.#deps.writer.version() }, 'snapshot not published: it outgrew its slot; routing stays on the last one');
      this.#outgrown = true;
      return undefined;
    }
  }

  #publish(content: Content): number {
    stampPublish(this.#metrics.publishStamp, this.#deps.writer.version() + 1, wallClockMicros());
    const version = this.#deps.writer.publish(content);
    if (this.#outgrown) this.#controlLog.info({ version }, 'snapshot fits its slot again: published');
    this.#outgrown = false;
    this.#deps.slots.published();
    this.#published = content;
    this.#dirty = false;
    this.#publishes++;
    this.#metrics.snapshotPublished();
    this.#controlLog.debug({ version }, 'snapshot published');
    if (this.#unpublishedTransitions.length > 0) {
      this.#deps.onTransitions?.(this.#unpublishedTransitions.map((t) => ({ ...t, snapshot_version: version })));
      this.#unpublishedTransitions = [];
    }
    this.#reportUnroutable(content);
    return version;
  }

  /** Logs once when a cluster loses its last routable backend, and once when it has one again. */
  #reportUnroutable(content: Content): void {
    const now = new Set<string>();
    for (const cluster of content.clusters) {
      if (!cluster.backends.some((b) => b.state === 'healthy' && b.weight > 0)) now.add(cluster.name);
    }
    for (const name of now) {
      if (this.#unroutable.has(name)) continue;
      const panic = this.#registry.cluster(name)?.config.panic_mode === 'route_all';
      this.#log.warn(
        { cluster: name, panicMode: panic ? 'route_all' : 'refuse' },
        panic ? 'cluster has no healthy backend: routing to every backend (panic_mode route_all)' : 'cluster has no healthy backend: new connections are refused',
      );
    }
    for (const name of this.#unroutable) {
      if (!now.has(name)) this.#log.info({ cluster: name }, 'cluster has a healthy backend again');
    }
    this.#unroutable = now;
  }

  #clusterOf(backend: Backend): Cluster {
    const cluster = this.#registry.cluster(backend.cluster);
    if (cluster === undefined) throw new Error(`backend ${backend.id} has no cluster`);
    return cluster;
  }
}

function targetOf(address: string): ProbeTarget {
  const target = parseHostPort(address);
  if (target === undefined) throw new SluiceError('SLUICE_CONFIG_INVALID', `bad backend address ${address}`);
  return target;
}

/** A serial queue of its own, for a control plane run without a worker's command queue (tests). */
function ownQueue(): (step: () => Promise<void>) => void {
  let queue: Promise<unknown> = Promise.resolve();
  return (step) => {
    queue = queue.then(step);
  };
}
