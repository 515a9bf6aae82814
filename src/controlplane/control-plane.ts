/**
 * The control plane's core, run by its worker thread: the single writer of backend state
 * and of the snapshot. It feeds the health state machine (active probe results, passive
 * counter deltas, ticks) and publishes a new snapshot only when something a snapshot
 * carries really changed.
 *
 * Start-up choice (documented in README.md): a backend of a cluster with an active check is
 * probed once before it is first published, and starts healthy only if that probe passes.
 * HAProxy starts servers up and lets the checks take them down, which routes clients to a
 * backend that accepts TCP but fails its check until `fall` probes have failed; probing
 * first means such a backend is never routed to, at the cost of start-up waiting up to one
 * check `timeout`. After that first verdict, `rise` and `fall` apply as usual.
 */
import type { Logger } from 'pino';
import { parseHostPort } from '../shared/address.ts';
import type { Config } from '../shared/config/schema.ts';
import { SluiceError } from '../shared/errors.ts';
import type { CounterTables } from '../shared/counters.ts';
import type { Snapshot } from '../shared/snapshot/types.ts';
import type { ControlPlaneStats } from '../shared/messages.ts';
import { BackendRegistry, backendId, contentChanged, type Backend, type Cluster } from './backend-registry.ts';
import { probe as realProbe, type ProbeResult, type ProbeTarget } from './health/checkers.ts';
import { newPassiveCursor, readPassive } from './health/passive.ts';
import { ProbeScheduler } from './health/scheduler.ts';
import { initialRecord, transition, type HealthEvent, type HealthRecord } from './health/state-machine.ts';
import type { SlotAllocator } from './slot-allocator.ts';
import type { SnapshotWriter } from './snapshot-writer.ts';

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
  /** The config in force: the start-up one, then each reloaded one. */
  #config: Config;
  /** Slots of removed backends, released once no connection counts into them. */
  readonly #retiredSlots: number[] = [];
  #published: Content | undefined;
  #dirty = false;
  #tickTimer: NodeJS.Timeout | undefined;
  #publishes = 0;
  #transitions = 0;
  /** Clusters that had no routable backend in the last published snapshot. */
  #unroutable = new Set<string>();

  constructor(deps: ControlPlaneDeps) {
    this.#deps = deps;
    this.#log = deps.log.child({ component: 'health' });
    this.#controlLog = deps.log.child({ component: 'controlplane' });
    this.#now = deps.now ?? monotonicNow;
    this.#config = deps.config;
    this.#registry = new BackendRegistry(deps.config, deps.slots);
    const scheduler: ConstructorParameters<typeof ProbeScheduler>[0] = {
      probe: deps.probe ?? realProbe,
      onResult: (id, result) => {
        this.#onProbeResult(id, result);
      },
    };
    this.#scheduler = new ProbeScheduler(deps.random === undefined ? scheduler : { ...scheduler, random: deps.random });
  }

  get registry(): BackendRegistry {
    return this.#registry;
  }

  /** Builds the initial state (probing first where checks are active), publishes it, starts checks. */
  async start(): Promise<number> {
    const recovered = this.#deps.recovered;
    if (recovered === undefined) await this.#loadConfigBackends();
    else this.#recover(recovered);
    const version = this.#publish(this.#registry.snapshotContent(this.#now()));
    for (const backend of this.#registry.all()) this.#schedule(backend);
    this.#tickTimer = setInterval(() => {
      this.tick();
    }, this.#deps.tickMs ?? TICK_MS);
    return version;
  }

  stop(): void {
    clearInterval(this.#tickTimer);
    this.#scheduler.stop();
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
    for (const backend of [...this.#registry.all()]) {
      const cluster = this.#clusterOf(backend);
      const delta = readPassive(counters, backend.slot, backend.passive);
      if (delta.failures > 0 || delta.successes > 0) this.#apply(backend, cluster, { type: 'passive', ...delta, now });
      this.#apply(backend, cluster, { type: 'tick', activeConnections: counters.activeConnections(backend.slot), now });
      ramping = this.#stepRamp(backend, cluster, now) || ramping;
    }
    this.#releaseRetiredSlots();
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

  async #loadConfigBackends(): Promise<void> {
    const entries = [...this.#registry.clusters()].flatMap((cluster) => cluster.config.backends.map((entry) => ({ cluster, entry })));
    // Probed together, added in config order (the order snapshots and GET /backends show).
    const verdicts = await Promise.all(entries.map(async ({ cluster, entry }) => this.#firstVerdict(cluster, entry.address)));
    entries.forEach(({ cluster, entry }, i) => {
      this.#addBackend(cluster, entry.address, entry.weight, verdicts[i] as HealthRecord);
    });
  }

  /** The health a backend enters with: healthy without active checks, else its first probe decides. */
  async #firstVerdict(cluster: Cluster, address: string): Promise<HealthRecord> {
    const check = cluster.config.health_check;
    if (check.type === 'none') return initialRecord(true, 'no active check', this.#now());
    const target = targetOf(address);
    const result = await this.#scheduler.probeOnce(target, check);
    const id = `${cluster.name}:${address}`;
    if (!result.ok) this.#log.warn({ backend: id, detail: result.detail }, 'backend failed its first probe: not routed to until it passes');
    return initialRecord(result.ok, `first probe ${result.ok ? 'passed' : 'failed'}: ${result.detail}`, this.#now());
  }

  #addBackend(cluster: Cluster, address: string, weight: number, health: HealthRecord): Backend {
    const backend = this.#registry.add({ cluster: cluster.name, address, weight, health, passive: { failures: 0, successes: 0 } });
    // A reused slot still holds the totals of the backend that had it before.
    this.#deps.counters.resetBackendSlot(backend.slot);
    this.#dirty = true;
    return backend;
  }

  /** A replacement worker continues from the last snapshot, so routing does not change under the data plane. */
  #recover(snapshot: Snapshot): void {
    for (const cluster of snapshot.clusters) {
      if (this.#registry.cluster(cluster.name) === undefined) continue;
      for (const b of cluster.backends) {
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
    this.#controlLog.info({ recoveredFrom: snapshot.version, backends: this.#registry.size }, 'control plane recovered state from the last snapshot');
  }

  #schedule(backend: Backend): void {
    const check = this.#clusterOf(backend).config.health_check;
    if (check.type === 'none') return;
    this.#scheduler.add({ id: backend.id, host: backend.host, port: backend.port, check });
  }

  // ── reload ───────────────────────────────────────────────────────────────────────────

  /**
   * Apply a reloaded config as a difference and publish; resolves with the version that
   * contains it. Backends that stay keep their health, slot and connections; new ones are
   * probed first like at start-up; ones the file no longer declares are drained and removed
   * through the state machine, like an operator's removal. A weight is taken from the file
   * only when the file changed it, so a reweight made at runtime survives a reload.
   */
  async applyConfig(next: Config): Promise<number> {
    const previous = this.#config;
    this.#config = next;
    this.#registry.applyConfig(next);
    const before = configuredBackends(previous);
    const wanted = configuredBackends(next);
    const now = this.#now();
    for (const id of before.keys()) {
      const backend = wanted.has(id) ? undefined : this.#registry.get(id);
      if (backend !== undefined) this.#apply(backend, this.#clusterOf(backend), { type: 'remove', force: false, now });
    }
    const added: { cluster: Cluster; address: string; weight: number }[] = [];
    for (const [id, entry] of wanted) {
      const backend = this.#registry.get(id);
      const cluster = this.#registry.cluster(entry.cluster);
      if (cluster === undefined) continue;
      if (backend === undefined) {
        added.push({ cluster, address: entry.address, weight: entry.weight });
        continue;
      }
      if (before.get(id)?.weight !== entry.weight) backend.weight = entry.weight;
      this.#scheduler.remove(backend.id);
      this.#schedule(backend);
    }
    const verdicts = await Promise.all(added.map(async (a) => this.#firstVerdict(a.cluster, a.address)));
    added.forEach((a, i) => {
      this.#schedule(this.#addBackend(a.cluster, a.address, a.weight, verdicts[i] as HealthRecord));
    });
    this.#dirty = true;
    this.#publishIfChanged(this.#now());
    return this.#deps.writer.version();
  }

  // ── events ───────────────────────────────────────────────────────────────────────────

  #onProbeResult(id: string, result: ProbeResult): void {
    const backend = this.#registry.get(id);
    if (backend === undefined) return;
    this.#apply(backend, this.#clusterOf(backend), { type: 'probe', ok: result.ok, detail: result.detail, now: this.#now() });
    if (this.#dirty) this.#publishIfChanged(this.#now());
  }

  #apply(backend: Backend, cluster: Cluster, event: HealthEvent): void {
    const before = backend.health;
    const after = transition(before, event, cluster.policy);
    if (after === before) return;
    backend.health = after;
    if (after.state === before.state && after.drained === before.drained && after.admin === before.admin && after.reason === before.reason) return;
    this.#dirty = true;
    if (after.state === before.state) return;
    this.#transitions++;
    this.#log.info({ backend: backend.id, from: before.state, to: after.state, reason: after.reason }, 'backend health changed');
    if (after.state === 'removed') this.#forget(backend);
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
    const content = this.#registry.snapshotContent(now);
    this.#dirty = false;
    if (!contentChanged(this.#published, content)) return undefined;
    return this.#publish(content);
  }

  #publish(content: Content): number {
    const version = this.#deps.writer.publish(content);
    this.#deps.slots.published();
    this.#published = content;
    this.#dirty = false;
    this.#publishes++;
    this.#controlLog.debug({ version }, 'snapshot published');
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

/** Every backend a config declares, by id. */
function configuredBackends(config: Config): Map<string, { cluster: string; address: string; weight: number }> {
  const byId = new Map<string, { cluster: string; address: string; weight: number }>();
  for (const cluster of config.clusters) {
    for (const b of cluster.backends) byId.set(backendId(cluster.name, b.address), { cluster: cluster.name, address: b.address, weight: b.weight });
  }
  return byId;
}

function targetOf(address: string): ProbeTarget {
  const target = parseHostPort(address);
  if (target === undefined) throw new SluiceError('SLUICE_CONFIG_INVALID', `bad backend address ${address}`);
  return target;
}
