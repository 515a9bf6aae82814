import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BEGIN_MARKER, END_MARKER, mergeGenerated, writeGenerated } from '../../../bench/lib/report-file.ts';

const block = (text: string): string => `${BEGIN_MARKER}\n${text}\n${END_MARKER}`;

describe('mergeGenerated', () => {
  it.each([
    ['a new file gets the report between the markers', undefined, 'NEW', `${block('NEW')}\n`],
    ['an empty file too', '\n', 'NEW', `${block('NEW')}\n`],
    ['only the part between the markers is replaced', `${block('OLD')}\n\n## By hand\nkept\n`, 'NEW\n', `${block('NEW')}\n\n## By hand\nkept\n`],
    ['text before the begin marker is kept too', `# Title\n\n${block('OLD')}\nafter\n`, 'NEW', `# Title\n\n${block('NEW')}\nafter\n`],
  ])('%s', (_name, existing, generated, expected) => {
    expect(mergeGenerated(existing, generated, 'f.md')).toEqual({ ok: true, text: expected });
  });

  it('rewriting with the same report changes nothing', () => {
    const once = mergeGenerated(`intro\n${block('OLD')}\nnotes\n`, 'NEW', 'f.md');
    if (!once.ok) throw new Error(once.message);
    expect(mergeGenerated(once.text, 'NEW', 'f.md')).toEqual(once);
  });

  it.each([
    ['has no markers', '# Benchmarks\nnumbers\n\n## By hand\n'],
    ['has only the begin marker', `${BEGIN_MARKER}\nold\n`],
    ['has only the end marker', `old\n${END_MARKER}\n`],
    ['has the end marker before the begin marker', `${END_MARKER}\n${BEGIN_MARKER}\n`],
    ['has a marker twice', `${block('a')}\n${block('b')}\n`],
  ])('refuses a file that %s, naming the file and the markers', (why, existing) => {
    const merged = mergeGenerated(existing, 'NEW', 'docs/benchmarks.md');
    expect(merged.ok).toBe(false);
    if (merged.ok) return;
    expect(merged.error).toBe('BENCH_REPORT_MARKERS');
    expect(merged.message).toContain(`docs/benchmarks.md: ${why};`);
    expect(merged.message).toContain(BEGIN_MARKER);
  });
});

describe('writeGenerated', () => {
  let dir = '';
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps hand-written notes below the report across runs, and leaves a file without markers untouched', () => {
    dir = mkdtempSync(path.join(tmpdir(), 'sluice-report-file-'));
    const file = path.join(dir, 'benchmarks.md');
    writeGenerated(file, '# Run 1');
    writeFileSync(file, `${readFileSync(file, 'utf8')}\n## Measured by hand\nnumbers\n`);
    writeGenerated(file, '# Run 2');
    expect(readFileSync(file, 'utf8')).toBe(`${block('# Run 2')}\n\n## Measured by hand\nnumbers\n`);

    const legacy = path.join(dir, 'legacy.md');
    writeFileSync(legacy, '# Old report\n\n## Notes\n');
    expect(() => writeGenerated(legacy, '# New')).toThrow(/BENCH_REPORT_MARKERS: .*legacy\.md: has no markers/);
    expect(readFileSync(legacy, 'utf8')).toBe('# Old report\n\n## Notes\n');
  });
});
