import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cachedStrip } from '../../../src/supervisor/stripped-cache.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'sluice-stripped-cache-'));
  dirs.push(dir);
  return dir;
}

/** A stand-in stripper that counts its calls. */
function countingStrip(): { strip: (typescript: string) => string; calls: () => number } {
  let calls = 0;
  return {
    strip: (typescript) => {
      calls++;
      return typescript.replace(': number', '');
    },
    calls: () => calls,
  };
}

describe('cachedStrip', () => {
  it('strips a text once: a later start (a new cachedStrip on the same directory) reads it back', () => {
    const dir = tempDir();
    const counter = countingStrip();
    expect(cachedStrip(dir, counter.strip)('const a: number = 1;')).toBe('const a = 1;');
    expect(cachedStrip(dir, counter.strip)('const a: number = 1;')).toBe('const a = 1;');
    expect(counter.calls()).toBe(1);
    expect(readdirSync(path.join(dir, 'sluice-stripped')).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('strips a changed text again instead of serving the old one', () => {
    const dir = tempDir();
    const counter = countingStrip();
    const strip = cachedStrip(dir, counter.strip);
    strip('const a: number = 1;');
    expect(strip('const b: number = 2;')).toBe('const b = 2;');
    expect(counter.calls()).toBe(2);
  });

  it('strips every time without a cache directory', () => {
    const counter = countingStrip();
    const strip = cachedStrip(undefined, counter.strip);
    strip('const a: number = 1;');
    strip('const a: number = 1;');
    expect(counter.calls()).toBe(2);
  });

  it('strips, and does not throw, when the cache directory cannot be created', () => {
    const blocker = path.join(tempDir(), 'a-file');
    writeFileSync(blocker, '');
    const counter = countingStrip();
    const strip = cachedStrip(blocker, counter.strip);
    expect(strip('const a: number = 1;')).toBe('const a = 1;');
    expect(strip('const a: number = 1;')).toBe('const a = 1;');
    expect(counter.calls()).toBe(2);
  });
});
