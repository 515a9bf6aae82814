/**
 * Runs the discovery sources of a control plane and turns their reports into backend
 * changes. One entry per cluster with `discovery:`; each report goes through the reconciler
 * (hold_obsolete, hold_failure, last known set on errors) and then, on the control plane's
 * serial queue (the same one operators' commands use), into adds, drains, removals and
 * listings. Network work happens in the sources; nothing here waits on it, and a source
 * that fails only reports an error.
 *
 * Ownership: a discovered cluster's backends belong to its source. Operators may drain,
 * undrain and reweight them (the control plane keeps those over what the source says) but
 * not add or remove them; a reload never adds or removes them either.
 */
import type { Logger } from 'pino';
import type { ClusterConfig } from '../../shared/config/schema.ts';
import type { DiscoveryConfig } from '../../shared/config/discovery-schema.ts';
import { formatDuration } from '../../shared/duration.ts';
import type { HealthRecord } from '../health/state-machine.ts';
import { EMPTY_STATE, expire, reconcile, type DesiredBackend, type DiscoveryState, type HoldPolicy, type KnownAddress, type ReconcileOutput } from './reconciler.ts';
import { listedAddresses, rankOf } from './tiers.ts';
import type { DiscoveryStatus } from '../../shared/discovery-status.ts';
import type { DiscoveredEndpoint, DiscoveryResult, DiscoverySource } from './types.ts';

export type { DiscoveryStatus };

/** What the manager needs of the control plane (backend-registry writes go through it). */
export interface DiscoveryCore {
  now(): number;
  /** The backends the cluster holds now (say, recovered from the last snapshot after a restart). */
  addresses(cluster: string): readonly { readonly address: string; readonly weight: number }[];
  /** The backend's health, or undefined when the cluster has no backend at that address. */
  health(cluster: string, address: string): HealthRecord | undefined;
  /** Adds a backend, probing it first when the cluster has an active check; false when no slot is left. */
  add(cluster: string, address: string, weight: number): Promise<boolean>;
  /** The source's weight; an operator's weight for the backend stays in force over it. */
  setWeight(cluster: string, address: string, weight: number): void;
  setListed(cluster: string, address: string, listed: boolean, detail: string): void;
  remove(cluster: string, address: string, reason: string): void;
  /** Publishes a snapshot if routing changed. */
  publish(): void;
}

export interface DiscoveryManagerDeps {
  readonly core: DiscoveryCore;
  readonly createSource: (cluster: string, config: DiscoveryConfig) => DiscoverySource;
  /** Runs `step` on the control plane's serial queue, after any command already queued. */
  readonly serially: (step: () => Promise<void>) => void;
  readonly onStatus: (status: DiscoveryStatus) => void;
  readonly log: Logger;
  /** Wall clock for status times (epoch ms). */
  readonly wallClock?: () => number;
}

interface Entry {
  readonly cluster: string;
  readonly config: DiscoveryConfig;
  readonly key: string;
  readonly source: DiscoverySource;
  state: DiscoveryState;
  desired: readonly DesiredBackend[];
  status: DiscoveryStatus;
  /** When a hold ends without a new report (control-plane clock); checked on every tick. */
  wakeAt: number | undefined;
  /** An add failed (no slot): apply the desired set again at the next report. */
  retry: boolean;
  stopped: boolean;
}

export function describeSource(config: DiscoveryConfig): string {
  if (config.type === 'dns') return `dns ${config.record} ${config.name}`;
  return `kubernetes ${config.namespace}/${config.service} port ${config.port}`;
}

function holdPolicy(config: DiscoveryConfig): HoldPolicy {
  return config.type === 'dns' ? { holdObsolete: config.hold_obsolete, holdFailure: config.hold_failure } : { holdObsolete: 0, holdFailure: 0 };
}

export class DiscoveryManager {
  readonly #deps: DiscoveryManagerDeps;
  readonly #entries = new Map<string, Entry>();
  readonly #wallClock: () => number;

  constructor(deps: DiscoveryManagerDeps) {
    this.#deps = deps;
    this.#wallClock = deps.wallClock ?? Date.now;
  }

  /** The discovered clusters now, for readiness (every one must sync once). */
  clusters(): string[] {
    return [...this.#entries.keys()];
  }

  isDiscovered(cluster: string): boolean {
    return this.#entries.has(cluster);
  }

  /** Starts, restarts or stops sources so they match the clusters' `discovery:` blocks. */
  configure(clusters: readonly ClusterConfig[]): void {
    const wanted = new Map<string, DiscoveryConfig>();
    for (const cluster of clusters) if (cluster.discovery !== undefined) wanted.set(cluster.name, cluster.discovery);
    for (const [name, entry] of this.#entries) {
      const next = wanted.get(name);
      if (next !== undefined && JSON.stringify(next) === entry.key) continue;
      void this.#stopEntry(entry);
      this.#entries.delete(name);
      // A cluster that now lists its backends in config.yaml drops what discovery added.
      if (next === undefined && clusters.some((c) => c.name === name)) this.#removeAll(entry, 'the cluster no longer uses discovery');
      if (next !== undefined) this.#start(name, next, entry.state, entry.desired);
    }
    for (const [name, config] of wanted) if (!this.#entries.has(name)) this.#start(name, config, this.#held(name), []);
  }

  /**
   * Called on every control-plane tick: re-evaluates listings (SRV tiers, terminating
   * endpoints) after health changed, and queues the step of a cluster whose hold has ended.
   */
  tick(now: number): void {
    for (const entry of this.#entries.values()) {
      this.#relist(entry);
      if (entry.wakeAt !== undefined && now >= entry.wakeAt) {
        entry.wakeAt = undefined;
        this.#deps.serially(async () => this.#onWake(entry));
      }
    }
  }

  async stop(): Promise<void> {
    const entries = [...this.#entries.values()];
    this.#entries.clear();
    await Promise.all(entries.map(async (entry) => this.#stopEntry(entry)));
  }

  /**
   * What a new entry starts from: the backends the cluster already holds (recovered after a
   * restart), known to the reconciler so the first answer keeps them or drains them like any
   * address gone from an answer. Nothing is published yet, so the first answer counts as a change.
   */
  #held(cluster: string): DiscoveryState {
    const known = new Map<string, KnownAddress>();
    for (const { address, weight } of this.#deps.core.addresses(cluster)) known.set(address, { endpoint: { address, weight, tier: 0, condition: 'ready' } });
    return { ...EMPTY_STATE, known };
  }

  #start(cluster: string, config: DiscoveryConfig, state: DiscoveryState, desired: readonly DesiredBackend[]): void {
    const source = this.#deps.createSource(cluster, config);
    const entry: Entry = {
      cluster,
      config,
      key: JSON.stringify(config),
      source,
      state,
      desired,
      status: {
        cluster,
        source: describeSource(config),
        up: false,
        synced: false,
        lastSyncAt: undefined,
        lastErrorAt: undefined,
        lastError: undefined,
        answer: [],
        refreshes: { answer: 0, empty: 0, error: 0 },
      },
      wakeAt: undefined,
      retry: false,
      stopped: false,
    };
    this.#entries.set(cluster, entry);
    source.start((result) => {
      if (entry.stopped) return;
      this.#deps.serially(async () => this.#onReport(entry, result));
    });
  }

  async #stopEntry(entry: Entry): Promise<void> {
    entry.stopped = true;
    await entry.source.stop();
  }

  async #onReport(entry: Entry, result: DiscoveryResult): Promise<void> {
    if (entry.stopped) return;
    this.#noteStatus(entry, result);
    await this.#step(entry, reconcile(entry.state, result, this.#deps.core.now(), holdPolicy(entry.config)));
  }

  async #onWake(entry: Entry): Promise<void> {
    if (entry.stopped) return;
    await this.#step(entry, expire(entry.state, this.#deps.core.now(), holdPolicy(entry.config)));
  }

  async #step(entry: Entry, output: ReconcileOutput): Promise<void> {
    entry.state = output.state;
    if (output.changed || entry.retry) {
      entry.desired = output.desired;
      entry.retry = !(await this.#apply(entry, output.desired));
    }
    this.#relist(entry);
    this.#deps.core.publish();
    entry.wakeAt = output.wakeAt;
    this.#deps.onStatus(entry.status);
  }

  /** Adds, drains and removes as `desired` says; false when an add found no free slot. */
  async #apply(entry: Entry, desired: readonly DesiredBackend[]): Promise<boolean> {
    const { core } = this.#deps;
    const { cluster } = entry;
    const serve = desired.filter((d) => d.action === 'serve');
    const added = await Promise.all(serve.map(async (d) => core.health(cluster, d.address) !== undefined || (await core.add(cluster, d.address, d.weight))));
    const refused = serve.filter((_, i) => added[i] !== true).map((d) => d.address);
    // Said once per shortage: the adds are retried at every refresh, and one line per address
    // per refresh was 1,000 error lines a second per cluster at 1,000 records.
    if (refused.length > 0 && !entry.retry) {
      this.#deps.log.error({ cluster, refused: refused.length, first: refused.slice(0, 5) }, 'discovery: no counter slot left for discovered backends; they are not routed (retried at every refresh, logged again after it clears)');
    }
    if (refused.length === 0 && entry.retry) this.#deps.log.info({ cluster }, 'discovery: every discovered backend has a counter slot again');
    for (const d of serve) core.setWeight(cluster, d.address, d.weight);
    const hold = formatDuration(holdPolicy(entry.config).holdObsolete);
    for (const d of desired) {
      if (d.action === 'drain') core.setListed(cluster, d.address, false, `gone from the ${entry.status.source} answer; removed after ${hold}`);
      if (d.action === 'remove') core.remove(cluster, d.address, `gone from the ${entry.status.source} answer for ${hold}`);
    }
    return refused.length === 0;
  }

  #relist(entry: Entry): void {
    const { core } = this.#deps;
    const members = [];
    for (const d of entry.desired) {
      if (d.action !== 'serve') continue;
      const health = core.health(entry.cluster, d.address);
      if (health === undefined) continue;
      members.push({ address: d.address, tier: d.tier, condition: d.condition, available: health.up && health.admin === 'none' });
    }
    const listed = listedAddresses(members);
    const activeRank = Math.min(...members.filter((m) => listed.has(m.address)).map(rankOf));
    for (const m of members) {
      const on = listed.has(m.address);
      core.setListed(entry.cluster, m.address, on, on ? `listed by ${entry.status.source}` : unlistedReason(m, activeRank));
    }
  }

  #removeAll(entry: Entry, reason: string): void {
    for (const d of entry.desired) if (d.action !== 'remove') this.#deps.core.remove(entry.cluster, d.address, reason);
    this.#deps.core.publish();
  }

  #noteStatus(entry: Entry, result: DiscoveryResult): void {
    const before = entry.status;
    const now = this.#wallClock();
    const { refreshes } = before;
    if (result.kind === 'error') {
      if (before.up || before.lastError !== result.message) {
        this.#deps.log.warn({ cluster: entry.cluster, source: before.source, error: result.message }, 'discovery: lookup failed; keeping the last known set');
      }
      entry.status = { ...before, up: false, lastError: result.message, lastErrorAt: now, refreshes: { ...refreshes, error: refreshes.error + 1 } };
      return;
    }
    const answer = [...result.endpoints].sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
    if (!before.up || before.answer.length !== answer.length) {
      this.#deps.log.info({ cluster: entry.cluster, source: before.source, endpoints: answer.length }, before.up ? 'discovery: answer changed size' : 'discovery: source answered');
    }
    const kind = answer.length === 0 ? 'empty' : 'answer';
    entry.status = { ...before, up: true, synced: true, lastSyncAt: now, answer, refreshes: { ...refreshes, [kind]: refreshes[kind] + 1 } };
  }
}

function unlistedReason(member: { tier: number; condition: DiscoveredEndpoint['condition'] }, activeRank: number): string {
  if (member.condition === 'not_ready') return 'not ready (endpoint conditions)';
  if (member.condition === 'terminating') return 'terminating: used only while no ready endpoint is available';
  const activeTier = Number.isFinite(activeRank) ? Math.floor(activeRank / 2) : 0;
  return `standby: tier ${member.tier} serves only while tier ${activeTier} has no available backend`;
}
