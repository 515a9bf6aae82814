/**
 * Read a Prometheus text exposition (what GET /metrics answers) into samples a test can
 * filter by name and labels.
 */
export interface PromSample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parsePrometheus(text: string): PromSample[] {
  const samples: PromSample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = SAMPLE.exec(line);
    if (match === null) throw new Error(`not a Prometheus sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const label of (match[2] ?? '').matchAll(LABEL)) labels[label[1]!] = label[2]!.replace(/\\(.)/g, (_m, c: string) => (c === 'n' ? '\n' : c));
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

/** Samples of `name` whose labels include every label in `where`. */
export function select(samples: readonly PromSample[], name: string, where: Readonly<Record<string, string>> = {}): PromSample[] {
  return samples.filter((s) => s.name === name && Object.entries(where).every(([k, v]) => s.labels[k] === v));
}

/** Sum of the values of `name` over the matching series (0 when there is none). */
export function total(samples: readonly PromSample[], name: string, where: Readonly<Record<string, string>> = {}): number {
  return select(samples, name, where).reduce((sum, s) => sum + s.value, 0);
}

export function seriesKey(sample: PromSample): string {
  const labels = Object.entries(sample.labels)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}="${v}"`)
    .join(',');
  return `${sample.name}{${labels}}`;
}

export async function scrape(adminUrl: string): Promise<PromSample[]> {
  const response = await fetch(`${adminUrl}/metrics`);
  if (!response.ok) throw new Error(`GET /metrics: HTTP ${response.status}`);
  return parsePrometheus(await response.text());
}
