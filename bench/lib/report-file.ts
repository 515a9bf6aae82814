/**
 * Writing a generated report into a file that also holds hand-written text: only what lies
 * between the two markers is replaced; everything before and after them is kept as it is.
 * `npm run bench` (docs/benchmarks.md) and `node bench/udp.ts` (docs/benchmarks-udp.md) both
 * write this way, so notes added by hand below a report survive the next run.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export const BEGIN_MARKER = '<!-- BEGIN GENERATED: rewritten by the command named below; edit outside these markers -->';
export const END_MARKER = '<!-- END GENERATED -->';

export type Merged =
  | { readonly ok: true; readonly text: string }
  | { readonly ok: false; readonly error: 'BENCH_REPORT_MARKERS'; readonly message: string };

/** The file's new text (pure): `existing` undefined means the file does not exist yet. */
export function mergeGenerated(existing: string | undefined, generated: string, file: string): Merged {
  const block = `${BEGIN_MARKER}\n${generated.trimEnd()}\n${END_MARKER}`;
  if (existing === undefined || existing.trim() === '') return { ok: true, text: `${block}\n` };
  const begin = existing.indexOf(BEGIN_MARKER);
  const end = existing.indexOf(END_MARKER);
  const fail = (why: string): Merged => ({
    ok: false,
    error: 'BENCH_REPORT_MARKERS',
    message: `${file}: ${why}; the generated report goes between a line "${BEGIN_MARKER}" and a line "${END_MARKER}" (add them around the generated part, or write elsewhere with --out), so that nothing written by hand is overwritten`,
  });
  if (begin === -1 && end === -1) return fail('has no markers');
  if (begin === -1 || end === -1) return fail(`has only the ${begin === -1 ? 'end' : 'begin'} marker`);
  if (end < begin) return fail('has the end marker before the begin marker');
  if (existing.indexOf(BEGIN_MARKER, begin + 1) !== -1 || existing.indexOf(END_MARKER, end + 1) !== -1) return fail('has a marker twice');
  return { ok: true, text: `${existing.slice(0, begin)}${block}${existing.slice(end + END_MARKER.length)}` };
}

/** Write `generated` into `file` between the markers; throws (leaving the file alone) when it cannot. */
export function writeGenerated(file: string, generated: string): void {
  const existing = existsSync(file) ? readFileSync(file, 'utf8') : undefined;
  const merged = mergeGenerated(existing, generated, file);
  if (!merged.ok) throw new Error(`${merged.error}: ${merged.message}`);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, merged.text);
}
