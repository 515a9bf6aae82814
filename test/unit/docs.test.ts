/**
 * The YAML examples in the README and docs/ are copy-paste material: each must parse, and
 * each complete config (one with listeners and clusters) must pass the same validation as
 * `sluice validate`. A fragment (a few keys shown in context) only has to parse.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { parseConfig } from '../../src/shared/config/load.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const PAGES = ['README.md', ...readdirSync(path.join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

interface Example {
  readonly page: string;
  readonly line: number;
  readonly text: string;
}

function yamlExamples(page: string): Example[] {
  const lines = readFileSync(path.join(ROOT, page), 'utf8').split('\n');
  const examples: Example[] = [];
  let start = -1;
  lines.forEach((line, i) => {
    if (start < 0 && /^```ya?ml\s*$/.test(line)) start = i + 1;
    else if (start >= 0 && line.startsWith('```')) {
      examples.push({ page, line: start, text: lines.slice(start, i).join('\n') + '\n' });
      start = -1;
    }
  });
  return examples;
}

const examples = PAGES.flatMap(yamlExamples);

describe('YAML examples in the README and docs/', () => {
  it('there are examples to check', () => {
    expect(examples.length).toBeGreaterThan(3);
  });

  it.each(examples.map((e) => [`${e.page}:${e.line}`, e] as const))('%s parses, and validates when it is a whole config', (_where, example) => {
    // A block may hold several documents (`---`), as Kubernetes manifests do.
    const documents = parseAllDocuments(example.text);
    for (const document of documents) expect(document.errors.map((e) => e.message)).toEqual([]);
    const value: unknown = documents.length === 1 ? documents[0]?.toJS() : undefined;
    const whole = typeof value === 'object' && value !== null && 'listeners' in value && 'clusters' in value;
    if (whole) expect(() => parseConfig(example.text, `${example.page}:${example.line}`)).not.toThrow();
    else expect(documents.length).toBeGreaterThan(0);
  });
});
