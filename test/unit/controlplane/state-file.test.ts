import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { EMPTY_RUNTIME_STATE, type RuntimeState } from '../../../src/controlplane/runtime-state.ts';
import { parseStateText, readStateFile, serializeState, writeStateFile } from '../../../src/controlplane/state-file.ts';

const STATE: RuntimeState = {
  added: [{ cluster: 'web', address: '[::1]:9009', weight: 3 }],
  removed: ['web:127.0.0.1:9001'],
  drained: ['web:[::1]:9009'],
  weights: { 'web:127.0.0.1:9002': 7 },
  routes: { web: [{ cluster: 'web', weight: 90 }, { cluster: 'canary', weight: 10 }] },
};

function tempDir(): string {
  return mkdtempSync(path.join(tmpdir(), 'sluice-state-'));
}

describe('state file', () => {
  it('round-trips a state through an atomic write, leaving no temp file', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'state.json');
    await writeStateFile(file, STATE);
    await writeStateFile(file, { ...STATE, removed: [] });
    expect(readdirSync(dir)).toEqual(['state.json']);
    expect(await readStateFile(file)).toEqual({ ok: true, found: true, state: { ...STATE, removed: [] } });
  });

  it('reads a file written before routes could change at runtime as having no route changes', () => {
    const { routes: _routes, ...older } = STATE;
    expect(parseStateText(serializeState({ ...older, routes: {} }).replace(/,\n {2}"routes": \{\}/, ''))).toEqual({ ...older, routes: {} });
  });

  it('reads a missing file as an empty state', async () => {
    expect(await readStateFile(path.join(tempDir(), 'absent.json'))).toEqual({ ok: true, found: false, state: EMPTY_RUNTIME_STATE });
  });

  const full = serializeState(STATE);
  it.each([
    ['a truncated file', full.slice(0, full.length / 2), /^not valid JSON/],
    ['an empty file', '', /the file is empty$/],
    ['a list', '[]', /^unexpected content at \(root\)/],
    ['an unknown format', full.replace('"format": 1', '"format": 2'), /^unexpected content at format/],
    ['a weight out of range', full.replace('"web:127.0.0.1:9002": 7', '"web:127.0.0.1:9002": 70000'), /^unexpected content at weights/],
    ['a bad address', full.replace('[::1]:9009"', 'nowhere"'), /^unexpected content at added\.0\.address: expected host:port/],
    ['a route weight out of range', full.replace('"weight": 90', '"weight": -1'), /^unexpected content at routes\.web\.0\.weight/],
  ])('reports %s, sets it aside and starts empty', async (_name, text, problem) => {
    expect(parseStateText(text)).toMatch(problem);
    const dir = tempDir();
    const file = path.join(dir, 'state.json');
    writeFileSync(file, text);
    const read = await readStateFile(file, new Date('2026-01-02T03:04:05.678Z'));
    expect(read.ok).toBe(false);
    expect(read.state).toEqual(EMPTY_RUNTIME_STATE);
    if (read.ok) return;
    expect(read.problem).toMatch(problem);
    expect(read.setAsideTo).toBe(`${file}.corrupt-2026-01-02T03-04-05-678Z`);
    expect(readdirSync(dir)).toEqual(['state.json.corrupt-2026-01-02T03-04-05-678Z']);
    expect(readFileSync(read.setAsideTo!, 'utf8')).toBe(text);
  });
});
