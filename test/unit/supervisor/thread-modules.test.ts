import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { relativeImports, startThread, strippedGraph } from '../../../src/supervisor/thread-modules.ts';

const FIXTURE = new URL('../../fixtures/thread-modules/entry.ts', import.meta.url);
const DATA_PLANE = new URL('../../../src/dataplane/worker.ts', import.meta.url);

describe('relativeImports', () => {
  it.each([
    ["import { a } from './a.ts';", ['./a.ts']],
    ["import x, { y } from '../shared/b.ts'", ['../shared/b.ts']],
    ["export { c } from './c.ts';", ['./c.ts']],
    ["export * from './d.ts';", ['./d.ts']],
    ["import './side-effect.ts';", ['./side-effect.ts']],
    ['import {\n  a,\n  b,\n} from "./multi-line.ts";', ['./multi-line.ts']],
    ["import { pino } from 'pino';", []],
    ["import net from 'node:net';", []],
    ["const m = await import('./lazy.ts');", []],
    ["const s = 'see ./not-an-import.ts';", []],
  ])('%s', (code, expected) => {
    expect(relativeImports(code)).toEqual(expected);
  });
});

describe('strippedGraph', () => {
  it('holds the data plane worker and what it imports, as JavaScript', () => {
    const sources = strippedGraph(DATA_PLANE);
    const files = Object.keys(sources).map((url) => url.slice(url.indexOf('/src/') + 1));
    expect(files).toEqual(expect.arrayContaining(['src/dataplane/worker.ts', 'src/dataplane/tcp-proxy.ts', 'src/shared/counters.ts', 'src/shared/logger.ts']));
    expect(files.filter((f) => !f.startsWith('src/dataplane/') && !f.startsWith('src/shared/'))).toEqual([]);
    expect(sources[DATA_PLANE.href]).not.toMatch(/import type/);
  });

  it('leaves a file it cannot read to the worker', () => {
    expect(strippedGraph(new URL('./missing.ts', FIXTURE))).toEqual({});
  });
});

describe('startThread', () => {
  it('runs a TypeScript entry without loading the type stripper in the worker', async () => {
    const worker = startThread(FIXTURE, { workerData: { mine: 1 } });
    try {
      const whereLine = readFileSync(FIXTURE, 'utf8').split('\n').findIndex((line) => line.includes("new Error('where')")) + 1;
      const report = await new Promise<unknown>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      });
      expect(report).toEqual({
        result: { value: 42 },
        workerDataKeys: ['mine', 'sluiceStrippedSources'],
        typeStripperLoaded: false,
        // Stripping keeps lines and columns: stack traces point at the TypeScript source.
        stack: expect.stringMatching(new RegExp(`entry\\.ts:${whereLine}:\\d+\\)?$`)) as unknown,
      });
    } finally {
      await worker.terminate();
    }
  });
});
