/**
 * Discovery's metrics, read at scrape time from the latest status of each discovered cluster
 * (the control plane reports one after every refresh) and from the snapshot.
 */
import type { MetricFamily, Sample } from './families.ts';
import { label } from './families.ts';

const RESULTS = ['answer', 'empty', 'error'] as const;

function sample(value: number, labels: string): Sample {
  return { suffix: '', labels, value };
}

export const DISCOVERY_FAMILIES: readonly MetricFamily[] = [
  {
    name: 'sluice_discovery_up',
    help: 'Whether the last refresh of the cluster\'s discovery source succeeded (1) or failed (0; the last known set stays).',
    type: 'gauge',
    collect: (s) => (s.discovery ?? []).map((d) => sample(d.up ? 1 : 0, label('cluster', d.cluster))),
  },
  {
    name: 'sluice_discovery_last_sync_timestamp_seconds',
    help: 'When the cluster\'s discovery source last answered successfully (Unix time); absent before its first answer.',
    type: 'gauge',
    collect: (s) => (s.discovery ?? []).filter((d) => d.lastSyncAt !== undefined).map((d) => sample((d.lastSyncAt ?? 0) / 1000, label('cluster', d.cluster))),
  },
  {
    name: 'sluice_discovery_refreshes_total',
    help: 'Refreshes of the cluster\'s discovery source, by result: answer, empty (a good answer with no address) or error.',
    type: 'counter',
    collect: (s) => (s.discovery ?? []).flatMap((d) => RESULTS.map((result) => sample(d.refreshes[result], `${label('cluster', d.cluster)},${label('result', result)}`))),
  },
  {
    name: 'sluice_discovery_answer_addresses',
    help: 'Addresses in the last good answer of the cluster\'s discovery source.',
    type: 'gauge',
    collect: (s) => (s.discovery ?? []).map((d) => sample(d.answer.length, label('cluster', d.cluster))),
  },
  {
    name: 'sluice_cluster_backends',
    help: 'Backends of the cluster in the routing snapshot, by source: static (config.yaml and the admin API) or discovery.',
    type: 'gauge',
    collect: (s) => {
      const discovered = new Set((s.discovery ?? []).map((d) => d.cluster));
      return s.snapshot.clusters.map((c) => sample(c.backends.length, `${label('cluster', c.name)},${label('source', discovered.has(c.name) ? 'discovery' : 'static')}`));
    },
  },
];
