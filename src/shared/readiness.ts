/**
 * What /readyz answers. Ready means an outer balancer may send traffic now: every listener
 * is bound on every data-plane worker, the first snapshot is published, and every
 * condition registered at start-up (e.g. a discovery source's first sync) has been met.
 * Draining is final: once the process drains it never becomes ready again.
 */
export type ReadinessStatus = 'starting' | 'ready' | 'draining';

export interface ReadinessView {
  readonly status: ReadinessStatus;
  /** The conditions still unmet while starting, e.g. `listeners`, `discovery:api`. */
  readonly waiting_for: readonly string[];
}

export class Readiness {
  private readonly pending = new Set<string>();
  private draining = false;

  constructor(conditions: Iterable<string>) {
    for (const condition of conditions) this.pending.add(condition);
  }

  /** Adds a condition that must be met before the process is ready (before it first is). */
  require(condition: string): void {
    this.pending.add(condition);
  }

  met(condition: string): void {
    this.pending.delete(condition);
  }

  drain(): void {
    this.draining = true;
  }

  view(): ReadinessView {
    if (this.draining) return { status: 'draining', waiting_for: [] };
    if (this.pending.size > 0) return { status: 'starting', waiting_for: [...this.pending] };
    return { status: 'ready', waiting_for: [] };
  }
}
