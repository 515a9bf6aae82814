/**
 * Each backend's recent health transitions, so an operator asking "why was this backend out
 * at 03:12?" gets the answer from the daemon. The control plane reports transitions with the
 * snapshot version that published them; the main thread keeps them here, so the history
 * survives a control-plane restart.
 *
 * Bounded twice: `perBackend` entries per backend (oldest dropped first) and `maxBackends`
 * backends (the one whose history was least recently written is forgotten first, which keeps
 * a removed backend's last transitions for as long as there is room).
 */
import type { AdminIntent, BackendState } from './snapshot/types.ts';

/** `new`: the backend did not exist before (added by config, the admin API or discovery). */
export type HistoryState = BackendState | 'removed' | 'new';

export interface BackendTransition {
  /** Wall-clock time of the transition, ISO 8601. */
  readonly at: string;
  readonly from: HistoryState;
  readonly to: HistoryState;
  /** What an operator asked at the time: none, drain or remove. */
  readonly admin: AdminIntent;
  /** The probe result, passive failure count or command that caused it. */
  readonly reason: string;
  /** The first snapshot version that routed by the new state. */
  readonly snapshot_version: number;
}

export interface TransitionReport extends BackendTransition {
  readonly backend: string;
}

export const HISTORY_PER_BACKEND = 64;
export const HISTORY_MAX_BACKENDS = 20_000;

export class BackendHistory {
  private readonly byBackend = new Map<string, BackendTransition[]>();
  private readonly perBackend: number;
  private readonly maxBackends: number;

  constructor(perBackend = HISTORY_PER_BACKEND, maxBackends = HISTORY_MAX_BACKENDS) {
    this.perBackend = perBackend;
    this.maxBackends = maxBackends;
  }

  record(report: TransitionReport): void {
    const { backend, ...transition } = report;
    const entries = this.byBackend.get(backend) ?? [];
    // Re-inserting moves the backend to the most recently written end of the map.
    this.byBackend.delete(backend);
    this.byBackend.set(backend, entries);
    entries.push(transition);
    if (entries.length > this.perBackend) entries.splice(0, entries.length - this.perBackend);
    if (this.byBackend.size > this.maxBackends) {
      const oldest = this.byBackend.keys().next().value;
      if (oldest !== undefined) this.byBackend.delete(oldest);
    }
  }

  /** Oldest first; undefined when the backend has no recorded transition. */
  of(backend: string): readonly BackendTransition[] | undefined {
    return this.byBackend.get(backend);
  }
}
