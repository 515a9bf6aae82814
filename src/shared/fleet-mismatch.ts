/**
 * Which fleet instances route differently from this one, and for how long: an instance whose
 * snapshot hash differs only while a change propagates is normal; one that differs for more
 * than `graceMs` is a fleet that did not converge (`sluice_fleet_snapshot_mismatch`). Pure:
 * time is passed in.
 */
import type { RegistryStatusReport } from './registry-status.ts';

/** A difference shorter than this is a change still propagating. */
export const MISMATCH_GRACE_MS = 5000;

export class FleetMismatch {
  /** Instance -> since when its hash differs from ours (epoch ms). */
  readonly #since = new Map<string, number>();

  /** Takes a new report; `now` in epoch ms. */
  update(report: RegistryStatusReport, now: number): void {
    const seen = new Set<string>();
    for (const other of report.fleet) {
      if (other.instance === report.instance) continue;
      seen.add(other.instance);
      if (other.snapshot_hash === report.snapshotHash) this.#since.delete(other.instance);
      else if (!this.#since.has(other.instance)) this.#since.set(other.instance, now);
    }
    for (const instance of [...this.#since.keys()]) if (!seen.has(instance)) this.#since.delete(instance);
  }

  /** Instances that differed for longer than `graceMs` at `now`. */
  count(now: number, graceMs = MISMATCH_GRACE_MS): number {
    let n = 0;
    for (const since of this.#since.values()) if (now - since > graceMs) n++;
    return n;
  }
}
