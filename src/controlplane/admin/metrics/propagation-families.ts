/**
 * Snapshot propagation, measured from inside (shared/snapshot/propagation.ts): one
 * observation per data-plane worker per version it took in, from the control plane starting
 * the publish to that worker decoding it. "Every worker has it" is the slowest worker's
 * observation of a version; the histogram keeps per-worker delays (its count grows by the
 * number of workers per publish), so its upper quantiles bound that.
 */
import type { MetricFamily } from './families.ts';
import { histogramSamples } from './families.ts';

export const PROPAGATION_FAMILIES: readonly MetricFamily[] = [
  {
    name: 'sluice_snapshot_propagation_seconds',
    help: 'From the control plane starting a snapshot publish to a data-plane worker taking that version in; one observation per worker per version it took in.',
    type: 'histogram',
    collect: (s) => histogramSamples('', s.counters.snapshotPropagation.read(0)),
  },
];
