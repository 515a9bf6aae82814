import { Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { renderFamilies, formatValue } from '../../../src/controlplane/admin/metrics/exposition.ts';
import { histogramSamples, label, type MetricFamily, type MetricSources } from '../../../src/controlplane/admin/metrics/families.ts';
import { parsePrometheus, seriesKey } from '../../helpers/metrics.ts';

/** The families need no sources for these fixed samples. */
const NO_SOURCES = {} as MetricSources;

describe('the text exposition of Sluice families', () => {
  it('writes labels, escapes and help exactly as prom-client does', async () => {
    const registry = new Registry();
    const counter = new Counter({ name: 'x_total', help: 'h\\elp\nline', labelNames: ['cluster', 'backend'], registers: [registry] });
    counter.inc({ cluster: 'a"b', backend: 'x\\y\nz' }, 3);
    const family: MetricFamily = {
      name: 'x_total',
      help: 'h\\elp\nline',
      type: 'counter',
      collect: () => [{ suffix: '', labels: `${label('cluster', 'a"b')},${label('backend', 'x\\y\nz')}`, value: 3 }],
    };
    expect(renderFamilies([family], NO_SOURCES)).toBe(await registry.metrics());
  });

  it('writes a histogram with the same series and values as prom-client', async () => {
    const registry = new Registry();
    const histogram = new Histogram({ name: 'd_seconds', help: 'd', labelNames: ['cluster', 'backend'], buckets: [0.001, 0.01], registers: [registry] });
    histogram.observe({ cluster: 'c', backend: 'b' }, 0.005);
    histogram.observe({ cluster: 'c', backend: 'b' }, 0.5);
    const family: MetricFamily = {
      name: 'd_seconds',
      help: 'd',
      type: 'histogram',
      // The shared histograms count in milliseconds.
      collect: () => histogramSamples('cluster="c",backend="b"', { bounds: [1, 10], cumulative: [0, 1], count: 2, sum: 505 }),
    };
    const ours = parsePrometheus(renderFamilies([family], NO_SOURCES));
    const theirs = parsePrometheus(await registry.metrics());
    const byKey = (samples: typeof ours) => new Map(samples.map((s) => [seriesKey(s), s.value]));
    expect(byKey(ours)).toEqual(byKey(theirs));
  });

  it.each([
    [3, '3'],
    [0.505, '0.505'],
    [2 ** 53, '9007199254740992'],
    [Number.POSITIVE_INFINITY, '+Inf'],
    [Number.NEGATIVE_INFINITY, '-Inf'],
    [Number.NaN, 'NaN'],
  ])('writes the value %d as %s', (value, text) => {
    expect(formatValue(value)).toBe(text);
  });
});
