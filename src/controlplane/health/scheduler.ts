/**
 * When active probes run: every backend of a cluster with an active check is probed once per
 * `interval`, at its own phase, with at most `maxInFlight` probes open at a time.
 *
 * - Jitter: a backend's first probe comes at a random point of its first interval, and each
 *   later one after interval × (1 − JITTER × random), so probes of many backends spread
 *   over the interval instead of firing in lock-step, and no backend waits longer than its
 *   interval between two probes being due.
 * - Bounded: a probe settles within the check's timeout (checkers.ts); beyond `maxInFlight`
 *   open probes, due probes wait in a FIFO queue; a backend whose previous probe has not
 *   settled yet skips its turn (counted as `skipped`) instead of piling up.
 * - A result is delivered only if its backend is still scheduled under the same entry, so
 *   a removed or re-added backend never gets a stale verdict.
 * Cost: one timer per backend; O(1) work per probe.
 */
import type { ActiveHealthCheckConfig } from '../../shared/config/schema.ts';
import type { ProbeResult, ProbeTarget } from './checkers.ts';

/** Up to this fraction of the interval is taken off each period at random. */
export const JITTER = 0.1;
export const DEFAULT_MAX_IN_FLIGHT = 256;

export interface ScheduledTarget extends ProbeTarget {
  readonly id: string;
  readonly check: ActiveHealthCheckConfig;
}

export interface SchedulerOptions {
  readonly probe: (target: ProbeTarget, check: ActiveHealthCheckConfig) => Promise<ProbeResult>;
  readonly onResult: (id: string, result: ProbeResult) => void;
  readonly random?: () => number;
  readonly maxInFlight?: number;
}

export interface SchedulerStats {
  readonly scheduled: number;
  readonly probes: number;
  readonly failures: number;
  readonly skipped: number;
  readonly inFlight: number;
  readonly queued: number;
}

interface Entry {
  readonly target: ScheduledTarget;
  timer: NodeJS.Timeout | undefined;
  busy: boolean;
}

export class ProbeScheduler {
  readonly #options: SchedulerOptions;
  readonly #random: () => number;
  readonly #maxInFlight: number;
  readonly #entries = new Map<string, Entry>();
  /** Probes waiting for an in-flight slot, in order. */
  readonly #waiting: (() => void)[] = [];
  #inFlight = 0;
  #probes = 0;
  #failures = 0;
  #skipped = 0;
  #stopped = false;

  constructor(options: SchedulerOptions) {
    this.#options = options;
    this.#random = options.random ?? Math.random;
    this.#maxInFlight = options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
  }

  /** Start probing `target` (replacing any earlier schedule for its id). */
  add(target: ScheduledTarget): void {
    if (this.#stopped) return;
    this.remove(target.id);
    const entry: Entry = { target, timer: undefined, busy: false };
    this.#entries.set(target.id, entry);
    this.#arm(entry, this.#random() * target.check.interval);
  }

  remove(id: string): void {
    const entry = this.#entries.get(id);
    if (entry === undefined) return;
    clearTimeout(entry.timer);
    this.#entries.delete(id);
  }

  has(id: string): boolean {
    return this.#entries.has(id);
  }

  /** One probe outside the schedule (a new backend's first), under the same in-flight bound. */
  async probeOnce(target: ProbeTarget, check: ActiveHealthCheckConfig): Promise<ProbeResult> {
    await this.#acquire();
    try {
      if (this.#stopped) return { ok: false, detail: 'health checks stopped' };
      return await this.#run(target, check);
    } finally {
      this.#release();
    }
  }

  stop(): void {
    this.#stopped = true;
    for (const entry of this.#entries.values()) clearTimeout(entry.timer);
    this.#entries.clear();
    // Waiters are let through; their results are dropped because no entry matches.
    for (const wake of this.#waiting.splice(0)) wake();
  }

  stats(): SchedulerStats {
    return {
      scheduled: this.#entries.size,
      probes: this.#probes,
      failures: this.#failures,
      skipped: this.#skipped,
      inFlight: this.#inFlight,
      queued: this.#waiting.length,
    };
  }

  #arm(entry: Entry, delayMs: number): void {
    entry.timer = setTimeout(() => {
      this.#due(entry);
    }, delayMs);
  }

  #due(entry: Entry): void {
    if (this.#entries.get(entry.target.id) !== entry) return;
    const { interval } = entry.target.check;
    this.#arm(entry, interval * (1 - JITTER * this.#random()));
    if (entry.busy) {
      this.#skipped++;
      return;
    }
    entry.busy = true;
    void this.#probeEntry(entry);
  }

  async #probeEntry(entry: Entry): Promise<void> {
    await this.#acquire();
    try {
      if (this.#entries.get(entry.target.id) !== entry) return;
      const result = await this.#run(entry.target, entry.target.check);
      if (this.#entries.get(entry.target.id) === entry) this.#options.onResult(entry.target.id, result);
    } finally {
      entry.busy = false;
      this.#release();
    }
  }

  async #run(target: ProbeTarget, check: ActiveHealthCheckConfig): Promise<ProbeResult> {
    this.#probes++;
    const result = await this.#options.probe(target, check);
    if (!result.ok) this.#failures++;
    return result;
  }

  #acquire(): Promise<void> {
    if (this.#inFlight < this.#maxInFlight) {
      this.#inFlight++;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.#waiting.push(() => {
        this.#inFlight++;
        resolve();
      });
    });
  }

  #release(): void {
    this.#inFlight--;
    this.#waiting.shift()?.();
  }
}
