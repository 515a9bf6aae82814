/**
 * The prom-client registry behind `GET /metrics`: Node's default process metrics plus one
 * collector per Sluice family (families.ts), each reading shared memory when scraped.
 */
import { collectDefaultMetrics, Registry, type Metric } from 'prom-client';
import { METRIC_FAMILIES, type MetricFamily, type MetricSources } from './families.ts';

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

/**
 * A prom-client metric whose values are computed at scrape time. prom-client's own metric
 * classes keep label sets in memory and are fed by `inc`/`observe`; these are fed by
 * shared memory, so they implement the part of the interface the registry uses (`name`,
 * `help`, `type`, `aggregator`, `get`, `reset`) and nothing more.
 */
function sharedCollector(family: MetricFamily, sources: () => MetricSources): Metric {
  const collector = {
    name: family.name,
    help: family.help,
    type: family.type,
    aggregator: 'sum' as const,
    get: () =>
      Promise.resolve({
        name: family.name,
        help: family.help,
        type: family.type,
        aggregator: 'sum' as const,
        values: family.collect(sources()),
      }),
    reset: () => undefined,
  };
  // The registry only reads the members above; see the comment of this function.
  return collector as unknown as Metric;
}

export function createMetrics(sources: () => MetricSources, options: MetricsOptions): Metrics {
  const registry = new Registry();
  if (options.processMetrics) collectDefaultMetrics({ register: registry });
  for (const family of METRIC_FAMILIES) registry.registerMetric(sharedCollector(family, sources));
  return {
    contentType: registry.contentType,
    render: () => registry.metrics(),
  };
}
