/**
 * Runs the discovery sources of a control plane and turns their reports into backend
 * changes. One entry per cluster with `discovery:`; each report goes through the reconciler
 * (hold_obsolete, hold_failure, last known set on errors) and then, on the control plane's
 * serial queue (the same one operators' commands use), into adds, drains, removals and
 * listings. Network work happens in the sources; nothing here waits on it, and a source
 * that fails only reports an error.
 *
 * Cost (issue #16): a tick does nothing until something is due: it relists only clusters whose
 * backends' availability changed (the control plane says so, `availabilityChanged`) and looks
 * at the entries only once the earliest hold deadline has passed. A refresh whose answer did
 * not change reports its status without the answer. Clusters that ask the same question share
 * one lookup (sources.ts).
 *
 * Readiness: a cluster is `ready` at its first answer, or at its first error when the state
 * file held its last good answer for the same question: it then serves that copy, reconciled
 * like an answer, until the source answers. Each changed answer is stored for the next start.
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
import { sameAnswer, type DiscoveredAddress, type DiscoveryStatus, type DiscoveryStatusUpdate } from '../../shared/discovery-status.ts';
import { MAX_STORED_ADDRESSES, type StoredAnswer } from '../state-file.ts';
import { queryKey } from './query-key.ts';
import type { DiscoveredEndpoint, DiscoveryResult, DiscoverySource } from './types.ts';

export type { DiscoveryStatus, DiscoveryStatusUpdate };

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
  /** Writes the state file (with `storedAnswers()`), when one is set; throws when it cannot. */
  persistAnswers(): Promise<void>;
}

export interface DiscoveryManagerDeps {
  readonly core: DiscoveryCore;
  readonly createSource: (cluster: string, config: DiscoveryConfig) => DiscoverySource;
  /** Runs `step` on the control plane's serial queue, after any command already queued. */
  readonly serially: (step: () => Promise<void>) => void;
  /** A cluster's status when it changed; without `answer` when only the answer stayed the same. */
  readonly onStatus: (status: DiscoveryStatusUpdate) => void;
  readonly log: Logger;
  /** Wall clock for status times (epoch ms). */
  readonly wallClock?: () => number;
}

interface Entry {
  readonly cluster: string;
  readonly config: DiscoveryConfig;
  readonly key: string;
  /** What is asked (query-key.ts): a stored answer serves only the same question. */
  readonly query: string;
  readonly source: DiscoverySource;
  state: DiscoveryState;
  desired: readonly DesiredBackend[];
  status: DiscoveryStatus;
  /** What the main thread was last told (its answer by identity: a new array is a new answer). */
  sent: DiscoveryStatus | undefined;
  /** The state file's copy of the last answer, served if the first report is an error. */
  readonly copy: readonly DiscoveredEndpoint[] | undefined;
  /** When a hold ends without a new report (control-plane clock); due once the manager's `#wakeAt` passes. */
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
  /** Entries whose backends' availability changed since the last tick: relisted at the next. */
  readonly #relistDue = new Set<Entry>();
  /** Reports not yet applied, oldest first (one applied per serial step: #nextReport). */
  readonly #reports: { readonly entry: Entry; readonly result: DiscoveryResult }[] = [];
  /** No entry's hold ends before this (may be early, never late); undefined: none pending. */
  #wakeAt: number | undefined;
  /** Each discovered cluster's last good non-empty answer: read from and written to the state file. */
  readonly #stored = new Map<string, StoredAnswer>();
  /** A stored answer changed since the state file was last written. */
  #persistWanted = false;

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

  /** The state file's answers, read at start-up: call before the first `configure`. */
  useStoredAnswers(answers: Readonly<Record<string, StoredAnswer>>): void {
    for (const [cluster, stored] of Object.entries(answers)) this.#stored.set(cluster, stored);
  }

  /**
   * The answers to keep in the state file: each discovered cluster's last good answer to the
   * question it asks now, in config order while they fit MAX_STORED_ADDRESSES together.
   */
  storedAnswers(): Record<string, StoredAnswer> {
    const out: Record<string, StoredAnswer> = {};
    let room = MAX_STORED_ADDRESSES;
    for (const entry of this.#entries.values()) {
      const stored = this.#stored.get(entry.cluster);
      if (stored === undefined || stored.query !== entry.query || stored.answer.length > room) continue;
      room -= stored.answer.length;
      out[entry.cluster] = stored;
    }
    return out;
  }

  /** Starts, restarts or stops sources so they match the clusters' `discovery:` blocks. */
  configure(clusters: readonly ClusterConfig[]): void {
    const wanted = new Map<string, DiscoveryConfig>();
    for (const cluster of clusters) if (cluster.discovery !== undefined) wanted.set(cluster.name, cluster.discovery);
    for (const name of this.#stored.keys()) if (!wanted.has(name)) this.#stored.delete(name);
    for (const [name, entry] of this.#entries) {
      const next = wanted.get(name);
      if (next !== undefined && JSON.stringify(next) === entry.key) continue;
      void this.#stopEntry(entry);
      this.#entries.delete(name);
      this.#relistDue.delete(entry);
      // A cluster that now lists its backends in config.yaml drops what discovery added.
      if (next === undefined && clusters.some((c) => c.name === name)) this.#removeAll(entry, 'the cluster no longer uses discovery');
      if (next !== undefined) this.#start(name, next, entry.state, entry.desired);
    }
    for (const [name, config] of wanted) if (!this.#entries.has(name)) this.#start(name, config, this.#held(name), []);
  }

  /**
   * A backend of `cluster` turned available or unavailable (health up/down, operator drain or
   * removal): its listings (SRV tiers, terminating endpoints) are re-evaluated at the next tick.
   */
  availabilityChanged(cluster: string): void {
    const entry = this.#entries.get(cluster);
    if (entry !== undefined) this.#relistDue.add(entry);
  }

  /**
   * Called on every control-plane tick: relists the clusters whose availability changed, and
   * queues the step of a cluster whose hold has ended. O(1) when nothing is due.
   */
  tick(now: number): void {
    if (this.#relistDue.size > 0) {
      const due = [...this.#relistDue];
      this.#relistDue.clear();
      for (const entry of due) if (!entry.stopped) this.#relist(entry);
    }
    if (this.#wakeAt === undefined || now < this.#wakeAt) return;
    let next: number | undefined;
    for (const entry of this.#entries.values()) {
      if (entry.wakeAt === undefined) continue;
      if (now >= entry.wakeAt) {
        entry.wakeAt = undefined;
        this.#deps.serially(async () => this.#onWake(entry));
      } else {
        next = next === undefined ? entry.wakeAt : Math.min(next, entry.wakeAt);
      }
    }
    this.#wakeAt = next;
  }

  async stop(): Promise<void> {
    const entries = [...this.#entries.values()];
    this.#entries.clear();
    this.#relistDue.clear();
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
    const query = queryKey(config);
    const stored = this.#stored.get(cluster);
    const entry: Entry = {
      cluster,
      config,
      key: JSON.stringify(config),
      query,
      source,
      state,
      desired,
      sent: undefined,
      copy: stored !== undefined && stored.query === query && stored.answer.length > 0 ? stored.answer : undefined,
      status: {
        cluster,
        source: describeSource(config),
        up: false,
        synced: false,
        ready: false,
        fromCopy: false,
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
      this.#reports.push({ entry, result });
      if (this.#reports.length === 1) this.#deps.serially(async () => this.#nextReport());
    });
  }

  /**
   * Takes one report off the queue per step on the control plane's serial queue, then queues
   * the next step behind whatever came meanwhile: 100 clusters sharing one lookup report at
   * once, and an operator's command must not wait behind all 100 reconciles (~0.4 ms each at
   * 1,000 records), only behind the one running.
   */
  async #nextReport(): Promise<void> {
    const next = this.#reports[0];
    if (next === undefined) return;
    try {
      await this.#onReport(next.entry, next.result);
    } finally {
      this.#reports.shift();
      if (this.#reports.length > 0) this.#deps.serially(async () => this.#nextReport());
      else if (this.#persistWanted) this.#deps.serially(async () => this.#persist());
    }
  }

  async #stopEntry(entry: Entry): Promise<void> {
    entry.stopped = true;
    await entry.source.stop();
  }

  async #onReport(entry: Entry, result: DiscoveryResult): Promise<void> {
    if (entry.stopped) return;
    const now = this.#deps.core.now();
    const policy = holdPolicy(entry.config);
    let from = entry.state;
    if (result.kind === 'error' && !entry.status.ready && entry.copy !== undefined) {
      // The copy is taken as the answer that came before this error; compared with what was
      // published (nothing yet, or a recovered set) it is a change, so it is applied.
      from = { ...reconcile(from, { kind: 'answer', endpoints: entry.copy }, now, policy).state, published: from.published };
      entry.status = { ...entry.status, fromCopy: true, ready: true, answer: sortByAddress(entry.copy) };
      this.#deps.log.warn({ cluster: entry.cluster, source: entry.status.source, endpoints: entry.copy.length }, 'discovery: first lookup failed; serving the state file\'s copy of the last answer');
    }
    this.#noteStatus(entry, result);
    if (result.kind === 'answer') this.#store(entry);
    await this.#step(entry, reconcile(from, result, now, policy));
  }

  /**
   * Keeps a good answer for the state file when it differs from the kept one (an empty answer
   * keeps none: there is nothing to serve from); one write for the reports queued together.
   */
  #store(entry: Entry): void {
    const { answer } = entry.status;
    const stored = this.#stored.get(entry.cluster);
    const same = stored !== undefined && stored.query === entry.query && sameAnswer(stored.answer, answer);
    if (answer.length === 0 ? stored === undefined : same) return;
    if (answer.length === 0) this.#stored.delete(entry.cluster);
    else this.#stored.set(entry.cluster, { query: entry.query, answered_at: new Date(this.#wallClock()).toISOString(), answer });
    // Written once the reports queued with this one are applied (#nextReport).
    this.#persistWanted = true;
  }

  async #persist(): Promise<void> {
    this.#persistWanted = false;
    try {
      await this.#deps.core.persistAnswers();
    } catch (error) {
      this.#deps.log.warn({ err: error }, 'discovery: the state file could not be written; the answers are written again at the next change');
    }
  }

  async #onWake(entry: Entry): Promise<void> {
    if (entry.stopped) return;
    await this.#step(entry, expire(entry.state, this.#deps.core.now(), holdPolicy(entry.config)));
  }

  async #step(entry: Entry, output: ReconcileOutput): Promise<void> {
    entry.state = output.state;
    // Unchanged and nothing to retry: the listings stand (availability changes relist at the
    // tick), so an unchanged refresh costs the reconcile and nothing per backend here.
    if (output.changed || entry.retry) {
      entry.desired = output.desired;
      entry.retry = !(await this.#apply(entry, output.desired));
      this.#relist(entry);
      this.#deps.core.publish();
    }
    entry.wakeAt = output.wakeAt;
    if (output.wakeAt !== undefined && (this.#wakeAt === undefined || output.wakeAt < this.#wakeAt)) this.#wakeAt = output.wakeAt;
    this.#sendStatus(entry);
  }

  /** Tells the main thread what changed: the answer only when it is a new one, nothing when nothing moved. */
  #sendStatus(entry: Entry): void {
    const { status, sent } = entry;
    if (status === sent) return;
    entry.sent = status;
    if (sent === undefined || status.answer !== sent.answer) {
      this.#deps.onStatus(status);
      return;
    }
    const { answer: _answer, ...rest } = status;
    this.#deps.onStatus(rest);
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
    const sorted = sortByAddress(result.endpoints);
    if (!before.up || before.answer.length !== sorted.length) {
      this.#deps.log.info({ cluster: entry.cluster, source: before.source, endpoints: sorted.length }, before.up ? 'discovery: answer changed size' : 'discovery: source answered');
    }
    // The same content keeps the same array: its identity is what says "unchanged" downstream.
    const answer = sameAnswer(before.answer, sorted) ? before.answer : sorted;
    const kind = answer.length === 0 ? 'empty' : 'answer';
    entry.status = { ...before, up: true, synced: true, ready: true, fromCopy: false, lastSyncAt: now, answer, refreshes: { ...refreshes, [kind]: refreshes[kind] + 1 } };
  }
}

function sortByAddress(endpoints: readonly DiscoveredAddress[]): DiscoveredAddress[] {
  return [...endpoints].sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
}

function unlistedReason(member: { tier: number; condition: DiscoveredEndpoint['condition'] }, activeRank: number): string {
  if (member.condition === 'not_ready') return 'not ready (endpoint conditions)';
  if (member.condition === 'terminating') return 'terminating: used only while no ready endpoint is available';
  const activeTier = Number.isFinite(activeRank) ? Math.floor(activeRank / 2) : 0;
  return `standby: tier ${member.tier} serves only while tier ${activeTier} has no available backend`;
}
