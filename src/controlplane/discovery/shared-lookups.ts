/**
 * One source per distinct question: clusters whose discovery configs have the same lookup key
 * (query-key.ts) share one source, so N clusters on one SRV name cost one lookup per refresh
 * instead of N. Each cluster gets a handle; the shared source starts with the first handle and
 * stops with the last. A handle that joins a running source is given its last result at once
 * (asynchronously, like any report), so it does not wait a whole refresh for its first answer.
 * Cost: O(handles) per report (one call each); nothing per refresh beyond that.
 */
import type { DiscoveryResult, DiscoverySource } from './types.ts';

type Report = (result: DiscoveryResult) => void;

interface Shared {
  readonly inner: DiscoverySource;
  readonly reports: Set<Report>;
  last: DiscoveryResult | undefined;
}

export class SharedLookups {
  readonly #shared = new Map<string, Shared>();

  /** Sources running now (one per distinct lookup key in use). */
  get size(): number {
    return this.#shared.size;
  }

  /** A handle on the source for `key`; `create` builds that source when none runs yet. */
  source(key: string, create: () => DiscoverySource): DiscoverySource {
    let report: Report | undefined;
    let shared: Shared | undefined;
    return {
      start: (r) => {
        if (report !== undefined) throw new Error('a discovery source handle cannot start twice');
        report = r;
        shared = this.#join(key, create, r);
      },
      stop: async () => {
        if (shared === undefined || report === undefined) return;
        const s = shared;
        s.reports.delete(report);
        shared = undefined;
        if (s.reports.size > 0) return;
        if (this.#shared.get(key) === s) this.#shared.delete(key);
        await s.inner.stop();
      },
    };
  }

  #join(key: string, create: () => DiscoverySource, report: Report): Shared {
    const running = this.#shared.get(key);
    if (running !== undefined) {
      running.reports.add(report);
      const last = running.last;
      if (last !== undefined) {
        queueMicrotask(() => {
          if (running.reports.has(report)) report(last);
        });
      }
      return running;
    }
    const shared: Shared = { inner: create(), reports: new Set([report]), last: undefined };
    this.#shared.set(key, shared);
    shared.inner.start((result) => {
      shared.last = result;
      for (const each of shared.reports) each(result);
    });
    return shared;
  }
}
