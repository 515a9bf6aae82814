/**
 * `GET /metrics`: Node's default process metrics from a prom-client registry, followed by
 * every Sluice family (families.ts), read from shared memory at scrape time and written in
 * the same text format (exposition.ts).
 */
import { collectDefaultMetrics, Registry } from 'prom-client';
import { renderFamilies } from './exposition.ts';
import { DISCOVERY_FAMILIES } from './discovery-families.ts';
import { METRIC_FAMILIES, type MetricSources } from './families.ts';
import { REGISTRY_FAMILIES } from './registry-families.ts';
import { PROPAGATION_FAMILIES } from './propagation-families.ts';

export interface Metrics {
  readonly contentType: string;
  render(): Promise<string>;
}

export interface MetricsOptions {
  /**
   * Node's default process metrics (CPU, memory, event loop lag, GC). They start an event
   * loop delay monitor for the life of the process, so only the daemon turns them on.
   */
  readonly processMetrics: boolean;
}

/** Every family, declared in one file per area. */
const ALL_FAMILIES = [...METRIC_FAMILIES, ...DISCOVERY_FAMILIES, ...PROPAGATION_FAMILIES, ...REGISTRY_FAMILIES];

export function createMetrics(sources: () => MetricSources, options: MetricsOptions): Metrics {
  const registry = new Registry();
  if (options.processMetrics) collectDefaultMetrics({ register: registry });
  return {
    contentType: registry.contentType,
    render: async () => {
      const process = options.processMetrics ? await registry.metrics() : '';
      return process + renderFamilies(ALL_FAMILIES, sources());
    },
  };
}
