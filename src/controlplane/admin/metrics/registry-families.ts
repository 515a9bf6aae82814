/**
 * The registry's and the fleet's metrics, read at scrape time from the control plane's last
 * registry report (absent without `registry:`).
 */
import type { MetricFamily, Sample } from './families.ts';
import { label } from './families.ts';

function sample(value: number, labels = ''): Sample {
  return { suffix: '', labels, value };
}

export const REGISTRY_FAMILIES: readonly MetricFamily[] = [
  {
    name: 'sluice_registry_up',
    help: 'Whether the registry (etcd) answers this instance (1) or not (0: routing stays on the last snapshot, writes answer 503).',
    type: 'gauge',
    collect: (s) => (s.registry === undefined ? [] : [sample(s.registry.status.up ? 1 : 0, label('registry', s.registry.status.registry))]),
  },
  {
    name: 'sluice_registry_revision',
    help: 'The etcd revision this instance has applied from its watch.',
    type: 'gauge',
    collect: (s) => (s.registry === undefined ? [] : [sample(s.registry.status.revision)]),
  },
  {
    name: 'sluice_fleet_instances',
    help: 'Instances the registry lists in the fleet (each keeps a leased key while it runs).',
    type: 'gauge',
    collect: (s) => (s.registry === undefined ? [] : [sample(s.registry.status.fleet.length)]),
  },
  {
    name: 'sluice_fleet_snapshot_mismatch',
    help: 'Fleet instances whose routing snapshot hash has differed from this instance\'s for more than a few seconds.',
    type: 'gauge',
    collect: (s) => (s.registry === undefined ? [] : [sample(s.registry.mismatched)]),
  },
];
