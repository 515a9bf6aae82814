/**
 * The control plane's link to the registry: owns the etcd client, the watch loop, the guarded
 * writer and this instance's fleet membership, and runs every step that touches the control
 * plane on its serial queue (the worker's), so registry deliveries, discovery and operators'
 * commands never interleave.
 *
 * Invariants:
 * - local state changes only from the watch: a write goes to etcd and its effect arrives like
 *   any other instance's change, so every instance applies the same sequence;
 * - a writer's answer waits until this instance applied a revision >= the write's (`applied`),
 *   off the queue, because the step that applies it runs on that queue;
 * - the fleet report's revision is that of the last operator intent applied, never of a fleet
 *   key: reporting fleet revisions would make every report trigger every other one.
 */
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import type { EtcdRegistryConfig } from '../../shared/config/registry-schema.ts';
import type { RegistryStatusReport } from '../../shared/registry-status.ts';
import { connectEtcd, type EtcdConnection } from './etcd-client.ts';
import { RegistryError, registryUnavailable } from './errors.ts';
import { FleetMember, fleetFromState } from './fleet.ts';
import type { Mutation, NoMutation } from './intent.ts';
import type { RegistryChange, RegistryState } from './registry-state.ts';
import { WatchLoop } from './watch-loop.ts';
import { RegistryWriter, type WriteResult } from './writes.ts';

/** How long start-up waits for a first read before it starts without the registry. */
export const START_WAIT_MS = 3000;
/** How long a write's answer waits for this instance to apply it. */
export const APPLY_WAIT_MS = 10_000;

export interface RegistryLinkDeps {
  readonly config: EtcdRegistryConfig;
  readonly log: Logger;
  readonly serially: (step: () => Promise<void>) => void;
  /** Apply the operator intent `state` holds (runs on the serial queue). */
  readonly applyState: (state: RegistryState) => Promise<void>;
  /** The hash of what this instance routes now (fleet-comparable: no local health in it). */
  readonly snapshotHash: () => string;
  readonly onStatus: (status: RegistryStatusReport) => void;
  readonly connect?: (config: EtcdRegistryConfig) => EtcdConnection;
  readonly startWaitMs?: number;
}

/** What a write came to: written at `revision`, refused by its guard, or etcd unreachable. */
export type LinkWrite =
  | { readonly ok: true; readonly revision: number }
  | { readonly ok: false; readonly error: 'UNAVAILABLE'; readonly message: string }
  /** `currentRevision`: etcd's revision when the guard failed (applied up to it, this instance holds the winner). */
  | { readonly ok: false; readonly error: 'CONFLICT'; readonly message: string; readonly currentRevision: number };

export class RegistryLink {
  readonly #deps: RegistryLinkDeps;
  readonly #connection: EtcdConnection;
  readonly #loop: WatchLoop;
  readonly #writer: RegistryWriter;
  readonly #fleet: FleetMember;
  #fleetStarted = false;
  #fleetStarting = false;
  /** The watch revision the control plane has applied. */
  #applied = 0;
  /** The revision of the last operator intent applied (0: none yet). */
  #intentRevision = 0;
  /** Set by a delivery that changes operator intent; the next step applies it. */
  #pendingIntent: number | undefined;
  #waiters: { revision: number; resolve: (applied: boolean) => void; timer: NodeJS.Timeout }[] = [];
  #stopped = false;

  constructor(deps: RegistryLinkDeps) {
    this.#deps = deps;
    this.#connection = (deps.connect ?? connectEtcd)(deps.config);
    const { client, describe, prefix, instance } = this.#connection;
    this.#loop = new WatchLoop({
      client,
      prefix,
      describe,
      log: deps.log,
      onChanges: (changes, revision) => this.#onChanges(changes, revision),
      onRevision: (revision) => this.#onRevision(revision),
      onStatus: (status) => {
        if (status.up) this.#startFleet();
        this.#report();
      },
    });
    this.#writer = new RegistryWriter({ client, prefix, describe, health: this.#loop });
    this.#fleet = new FleetMember({ client, prefix, instance, describe, log: deps.log, version: sluiceVersion() }, { revision: 0, snapshotHash: '' });
  }

  get describe(): string {
    return this.#connection.describe;
  }

  /** The applied registry state (guarded writes compare against its mod revisions). */
  state(): RegistryState {
    return this.#loop.state();
  }

  /**
   * Starts watching and waits a bounded time for the first read. Resolves true when the
   * registry answered; false when it did not (the caller starts on what it has); throws when
   * the registry is `required` and did not answer.
   */
  async start(): Promise<boolean> {
    this.#loop.start();
    let timer: NodeJS.Timeout | undefined;
    const waited = this.#deps.startWaitMs ?? START_WAIT_MS;
    const synced = await Promise.race([
      this.#loop.synced.then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), waited))),
    ]);
    clearTimeout(timer);
    if (synced) return true;
    const why = this.#loop.status().lastError ?? 'no answer';
    if (this.#deps.config.required) {
      throw new RegistryError('SLUICE_REGISTRY_UNAVAILABLE', `registry ${this.describe} is required (registry.etcd.required: true) and did not answer within ${waited} ms: ${why}`);
    }
    return false;
  }

  /** One guarded write; a NoMutation is "written" at the revision already applied. */
  async write(mutation: Mutation | NoMutation): Promise<LinkWrite> {
    let result: WriteResult;
    try {
      if (mutation.op === 'none') return { ok: true, revision: this.#applied };
      result = mutation.op === 'put' ? await this.#writer.put(mutation.entry, mutation.expectedModRevision) : await this.#writer.delete(mutation.key, mutation.expectedModRevision);
    } catch (error) {
      if (error instanceof RegistryError) return { ok: false, error: 'UNAVAILABLE', message: `${error.message}; nothing was changed` };
      throw error;
    }
    if (result.ok) return result;
    const current = result.current.text === null ? 'absent' : result.current.text;
    return {
      ok: false,
      error: 'CONFLICT',
      message: `${result.message}; current value: ${current} (another operator changed it: look and retry)`,
      currentRevision: result.revision,
    };
  }

  /** Resolves true once this instance applied `revision`, false after `APPLY_WAIT_MS` (or on stop). */
  applied(revision: number): Promise<boolean> {
    if (this.#applied >= revision) return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiter = {
        revision,
        resolve,
        timer: setTimeout(() => {
          this.#waiters = this.#waiters.filter((w) => w !== waiter);
          resolve(false);
        }, APPLY_WAIT_MS),
      };
      this.#waiters.push(waiter);
    });
  }

  /** The refusal of a write whose revision this instance did not apply in time. */
  notAppliedMessage(revision: number): string {
    return `written to registry ${this.describe} at revision ${revision}, but not applied by this instance within ${APPLY_WAIT_MS} ms; it applies it once its watch delivers it`;
  }

  /** Leaves the fleet (the instance key goes at once) and closes the client. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const w of this.#waiters) {
      clearTimeout(w.timer);
      w.resolve(false);
    }
    this.#waiters = [];
    await this.#loop.close();
    if (this.#fleetStarted) await this.#fleet.stop();
    this.#connection.client.close();
  }

  /** For an admin write while etcd is away: the message names the registry and its endpoints. */
  unavailable(operation: string): string {
    return registryUnavailable(this.describe, operation).message;
  }

  #onChanges(changes: readonly RegistryChange[], revision: number): void {
    let intent: number | undefined;
    for (const change of changes) {
      const kind = change.type === 'put' ? change.entry.key.kind : change.key.kind;
      if (kind === 'instance') continue;
      // A delete carries no mod revision of its own: the batch's stands for it.
      const at = change.type === 'put' ? change.modRevision : revision;
      intent = Math.max(intent ?? 0, at);
    }
    if (intent !== undefined) this.#pendingIntent = Math.max(this.#pendingIntent ?? 0, intent);
  }

  #onRevision(revision: number): void {
    this.#deps.serially(async () => {
      if (this.#stopped) return;
      const pending = this.#pendingIntent;
      if (pending !== undefined) {
        this.#pendingIntent = undefined;
        await this.#deps.applyState(this.#loop.state());
        this.#intentRevision = Math.max(this.#intentRevision, pending);
      }
      this.#applied = Math.max(this.#applied, revision);
      this.#resolveWaiters();
      this.#updateFleet();
      this.#report();
    });
  }

  #resolveWaiters(): void {
    const ready = this.#waiters.filter((w) => w.revision <= this.#applied);
    if (ready.length === 0) return;
    this.#waiters = this.#waiters.filter((w) => w.revision > this.#applied);
    for (const w of ready) {
      clearTimeout(w.timer);
      w.resolve(true);
    }
  }

  #startFleet(): void {
    if (this.#fleetStarted || this.#fleetStarting || this.#stopped) return;
    this.#fleetStarting = true;
    this.#fleet
      .start()
      .then(() => {
        this.#fleetStarted = true;
        this.#updateFleet();
      })
      .catch((error: unknown) => {
        // Tried again the next time the registry comes up.
        this.#deps.log.warn({ registry: this.describe, error: (error as Error).message }, 'could not join the fleet listing');
      })
      .finally(() => (this.#fleetStarting = false));
  }

  #updateFleet(): void {
    if (!this.#fleetStarted || this.#stopped) return;
    this.#fleet.update({ revision: this.#intentRevision, snapshotHash: this.#deps.snapshotHash() }).catch(() => {
      // etcd is away; the watch loop reports that. The next applied revision reports again.
    });
  }

  #report(): void {
    const status = this.#loop.status();
    const now = Date.now();
    this.#deps.onStatus({
      registry: this.describe,
      instance: this.#connection.instance,
      up: status.up,
      lastError: status.lastError,
      revision: this.#applied,
      appliedRevision: this.#intentRevision,
      snapshotHash: this.#deps.snapshotHash(),
      fleet: fleetFromState(this.#loop.state(), new Date(now)),
      reportedAt: now,
    });
  }
}

let version: string | undefined;

/** Sluice's own version (package.json), for the fleet listing. */
function sluiceVersion(): string {
  if (version !== undefined) return version;
  try {
    version = (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    version = 'unknown';
  }
  return version;
}
