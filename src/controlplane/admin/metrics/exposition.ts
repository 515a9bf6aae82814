/**
 * The Prometheus text format (version 0.0.4) for Sluice's own families: `# HELP`, `# TYPE`,
 * then one line per sample. Written here rather than through prom-client's per-sample
 * formatting because a scrape of 1,000 backends has ~60,000 samples, and prom-client
 * formats every sample's labels from an object (measured: ~0.9 s for 1,000 backends, most
 * of it label formatting and garbage; this takes a small fraction of that, see the commit).
 * Label text comes preformatted from families.ts, once per backend per snapshot.
 */
import type { MetricFamily, MetricSources } from './families.ts';

function escapeHelp(help: string): string {
  return help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

/** How the text format writes a value (as prom-client does). */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (!Number.isFinite(value)) return value < 0 ? '-Inf' : '+Inf';
  return String(value);
}

export function renderFamilies(families: readonly MetricFamily[], sources: MetricSources): string {
  const parts: string[] = [];
  for (const family of families) {
    parts.push(`# HELP ${family.name} ${escapeHelp(family.help)}\n# TYPE ${family.name} ${family.type}\n`);
    for (const sample of family.collect(sources)) {
      const labels = sample.labels === '' ? '' : `{${sample.labels}}`;
      parts.push(`${family.name}${sample.suffix}${labels} ${formatValue(sample.value)}\n`);
    }
  }
  return parts.join('');
}
