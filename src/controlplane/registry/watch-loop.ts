/**
 * Keeps an instance's registry state equal to etcd's under the prefix and delivers each
 * difference once, as `(changes, revision)`.
 *
 * The cycle (one `sync`): read the whole prefix, diff it against what is applied (synthetic
 * deletes included), deliver, then watch from the read's revision + 1. Watch events are
 * gathered for `coalesceMs` after the first of a burst and delivered as one batch with only
 * each key's net change. Any watch trouble (disconnect, cancellation, compaction: etcd3
 * reports all of them as 'disconnected' or 'error') drops the watcher and runs the cycle
 * again after a jittered backoff; nothing is trusted from the broken watcher. A periodic
 * re-read with jitter runs the cycle too, because an etcd3 watcher can stall without any
 * event (microsoft/etcd3#72); changes it finds are logged as missed by the watch.
 *
 * While etcd is away the applied state stays as it was, `up` is false, and the cycle is
 * retried until a read succeeds; the diff then converges on whatever etcd holds.
 */
import type { Etcd3, IKeyValue, IWatchResponse, Watcher } from 'etcd3';
import { applyEvents, applyFullRead, emptyRegistryState, type RawEvent, type RawKv, type RegistryChange, type RegistryState } from './registry-state.ts';

/** The part of a pino logger the loop uses (a test passes a recorder). */
export interface RegistryLog {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

export interface RegistryStatus {
  /** The last read succeeded and the watch has not failed since. */
  readonly up: boolean;
  /** The etcd revision the applied state reflects (0 before the first read). */
  readonly revision: number;
  /** Why the registry is down, while it is. */
  readonly lastError: string | undefined;
}

export interface WatchLoopOptions {
  readonly client: Etcd3;
  readonly prefix: string;
  /** Names the registry in logs: `etcd http://127.0.0.1:2379`. */
  readonly describe: string;
  readonly log: RegistryLog;
  /** Called with each non-empty batch of changes; it must not throw (a throw is logged). */
  readonly onChanges: (changes: readonly RegistryChange[], revision: number) => void;
  /**
   * Called after every read and every delivered batch, changes or not, with the revision the
   * applied state now reflects: a writer waits for its write's revision here, since a put
   * that leaves a value as it was delivers no change.
   */
  readonly onRevision?: (revision: number) => void;
  /** Called when `up` flips (for the `sluice_registry_up` gauge and logs). */
  readonly onStatus?: (status: RegistryStatus) => void;
  readonly coalesceMs?: number;
  readonly resyncEveryMs?: number;
  readonly retryMinMs?: number;
  readonly retryMaxMs?: number;
  /** In [0, 1); spreads retries and re-reads so a fleet does not hit etcd in step. */
  readonly random?: () => number;
  /**
   * Awaited between a read and the watch that follows it: the window in which etcd can
   * compact past the watch's start revision. Tests hold it open to make that happen.
   */
  readonly beforeWatch?: () => Promise<void>;
}

const DEFAULTS = { coalesceMs: 25, resyncEveryMs: 60_000, retryMinMs: 100, retryMaxMs: 2000 };
/** A periodic re-read lands within ±20% of `resyncEveryMs`. */
const RESYNC_JITTER = 0.2;
/** close() waits this long for etcd to confirm a watcher's cancellation, then closes anyway. */
const CANCEL_WAIT_MS = 1000;

/** The delay before retry number `failures` (1-based): doubling, capped, jittered into [50%, 100%]. */
export function retryDelay(failures: number, minMs: number, maxMs: number, random: number): number {
  const base = Math.min(maxMs, minMs * 2 ** Math.max(0, failures - 1));
  return Math.round(base * (0.5 + random / 2));
}

/** The delay before the next periodic re-read: `everyMs` ±20%. */
export function resyncDelay(everyMs: number, random: number): number {
  return Math.round(everyMs * (1 - RESYNC_JITTER + 2 * RESYNC_JITTER * random));
}

export class WatchLoop {
  private readonly options: WatchLoopOptions;
  private readonly settings: typeof DEFAULTS;
  private readonly random: () => number;
  private registry: RegistryState;
  private up = false;
  private lastError: string | undefined = 'not read yet';
  /** Bumped by every cycle; callbacks of an older cycle see a different number and do nothing. */
  private generation = 0;
  private watcher: Watcher | undefined;
  private pending: RawEvent[] = [];
  private pendingRevision = 0;
  private flushTimer: NodeJS.Timeout | undefined;
  private cycleTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  private closed = false;
  private resolveSynced: (() => void) | undefined;
  /** Resolves after the first successful read (a `required` registry waits for it). */
  readonly synced: Promise<void>;

  constructor(options: WatchLoopOptions) {
    this.options = options;
    this.settings = {
      coalesceMs: options.coalesceMs ?? DEFAULTS.coalesceMs,
      resyncEveryMs: options.resyncEveryMs ?? DEFAULTS.resyncEveryMs,
      retryMinMs: options.retryMinMs ?? DEFAULTS.retryMinMs,
      retryMaxMs: options.retryMaxMs ?? DEFAULTS.retryMaxMs,
    };
    this.random = options.random ?? Math.random;
    this.registry = emptyRegistryState(options.prefix);
    this.synced = new Promise((resolve) => (this.resolveSynced = resolve));
  }

  start(): void {
    void this.cycle('start');
  }

  status(): RegistryStatus {
    return { up: this.up, revision: this.registry.revision, lastError: this.up ? undefined : this.lastError };
  }

  /** The applied state (for guarded writes: each entry carries its mod revision). */
  state(): RegistryState {
    return this.registry;
  }

  /**
   * A caller saw etcd fail (a write timed out): re-run the cycle now rather than wait for the
   * watch to notice, since a stalled watch may never notice.
   */
  reportUnreachable(error: unknown): void {
    if (this.closed) return;
    this.markDown(error);
    this.schedule(0, 'reported unreachable');
  }

  /** Stop watching. Cancels the watcher before the caller closes the client, so the process can exit. */
  async close(): Promise<void> {
    this.closed = true;
    this.generation++;
    clearTimeout(this.flushTimer);
    clearTimeout(this.cycleTimer);
    this.pending = [];
    await this.dropWatcher();
  }

  private async cycle(reason: string): Promise<void> {
    const generation = ++this.generation;
    clearTimeout(this.cycleTimer);
    clearTimeout(this.flushTimer);
    this.pending = [];
    // The full read below covers whatever the old watcher had not delivered.
    void this.dropWatcher();
    let read: { kvs: RawKv[]; revision: number };
    try {
      read = await readPrefix(this.options.client, this.options.prefix);
    } catch (error) {
      if (generation !== this.generation) return;
      this.markDown(error);
      this.failures++;
      this.schedule(retryDelay(this.failures, this.settings.retryMinMs, this.settings.retryMaxMs, this.random()), 'retry');
      return;
    }
    if (generation !== this.generation) return;
    const step = applyFullRead(this.registry, read.kvs, read.revision);
    this.registry = step.state;
    this.failures = 0;
    this.report(step.problems);
    if (reason === 'periodic' && step.changes.length > 0) {
      this.options.log.warn({ registry: this.options.describe, changes: step.changes.length, revision: read.revision }, 'registry re-read found changes the watch missed');
    }
    this.markUp();
    this.deliver(step.changes);
    this.options.onRevision?.(this.registry.revision);
    this.resolveSynced?.();
    if (this.options.beforeWatch !== undefined) {
      await this.options.beforeWatch();
      if (generation !== this.generation) return;
    }
    this.watch(generation, read.revision + 1);
    this.schedule(resyncDelay(this.settings.resyncEveryMs, this.random()), 'periodic');
  }

  private watch(generation: number, fromRevision: number): void {
    const watcher = this.options.client.watch().prefix(this.options.prefix).startRevision(String(fromRevision)).withPreviousKV().watcher();
    this.watcher = watcher;
    watcher.on('data', (response: IWatchResponse) => {
      if (generation === this.generation) this.gather(response);
    });
    // The stream broke: etcd (or the way to it) is away until a read says otherwise.
    watcher.on('disconnected', (error: Error) => {
      if (generation !== this.generation) return;
      this.markDown(error);
      this.failures++;
      this.schedule(retryDelay(this.failures, this.settings.retryMinMs, this.settings.retryMaxMs, this.random()), 'watch disconnected');
    });
    // etcd canceled this watch while answering (a compaction past its start revision, a
    // server-side limit): etcd is up, the events since the read are not to be had; re-read now.
    watcher.on('error', (error: Error) => {
      if (generation !== this.generation) return;
      this.options.log.warn({ registry: this.options.describe, error: error.message, from_revision: fromRevision }, 'registry watch canceled by etcd; re-reading');
      this.schedule(0, 'watch canceled');
    });
  }

  private gather(response: IWatchResponse): void {
    const revision = Number(response.header.revision);
    if (response.events.length === 0 && this.pending.length === 0) {
      // A progress notification: nothing changed under the prefix up to `revision`.
      if (revision > this.registry.revision) {
        this.registry = { ...this.registry, revision };
        this.options.onRevision?.(revision);
      }
      return;
    }
    for (const event of response.events) this.pending.push(rawEvent(event.type, event.kv));
    this.pendingRevision = Math.max(this.pendingRevision, revision);
    this.flushTimer ??= setTimeout(() => this.flush(), this.settings.coalesceMs);
  }

  private flush(): void {
    this.flushTimer = undefined;
    const events = this.pending;
    this.pending = [];
    const step = applyEvents(this.registry, events, this.pendingRevision);
    this.registry = step.state;
    this.report(step.problems);
    this.deliver(step.changes);
    this.options.onRevision?.(this.registry.revision);
  }

  private deliver(changes: readonly RegistryChange[]): void {
    if (changes.length === 0) return;
    try {
      this.options.onChanges(changes, this.registry.revision);
    } catch (error) {
      this.options.log.warn({ registry: this.options.describe, err: error }, 'registry change handler failed');
    }
  }

  private report(problems: RegistryStep['problems']): void {
    for (const p of problems) {
      this.options.log.warn({ registry: this.options.describe, key: p.key, mod_revision: p.modRevision, problem: p.problem }, 'registry value ignored');
    }
  }

  private schedule(ms: number, reason: string): void {
    if (this.closed) return;
    clearTimeout(this.cycleTimer);
    this.cycleTimer = setTimeout(() => void this.cycle(reason), ms);
  }

  private markUp(): void {
    if (this.up) return;
    this.up = true;
    this.lastError = undefined;
    this.options.log.info({ registry: this.options.describe, revision: this.registry.revision }, 'registry up');
    this.options.onStatus?.(this.status());
  }

  private markDown(error: unknown): void {
    this.lastError = error instanceof Error ? error.message : String(error);
    if (!this.up) return;
    this.up = false;
    this.options.log.warn({ registry: this.options.describe, error: this.lastError, revision: this.registry.revision }, 'registry down; keeping the last state');
    this.options.onStatus?.(this.status());
  }

  private async dropWatcher(): Promise<void> {
    const watcher = this.watcher;
    this.watcher = undefined;
    if (watcher === undefined) return;
    // A cancel needs etcd's confirmation; with etcd away it may never come, and the
    // client's close() tears the stream down anyway.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      watcher.cancel().catch(() => undefined),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, CANCEL_WAIT_MS))),
    ]);
    clearTimeout(timer);
  }
}

type RegistryStep = ReturnType<typeof applyEvents>;

function rawEvent(type: 'Put' | 'Delete', kv: IKeyValue): RawEvent {
  const key = kv.key.toString();
  const modRevision = Number(kv.mod_revision);
  return type === 'Put' ? { type: 'put', key, value: kv.value.toString(), modRevision } : { type: 'delete', key, modRevision };
}

async function readPrefix(client: Etcd3, prefix: string): Promise<{ kvs: RawKv[]; revision: number }> {
  const response = await client.getAll().prefix(prefix).exec();
  return {
    kvs: response.kvs.map((kv) => ({ key: kv.key.toString(), value: kv.value.toString(), modRevision: Number(kv.mod_revision) })),
    revision: Number(response.header.revision),
  };
}
