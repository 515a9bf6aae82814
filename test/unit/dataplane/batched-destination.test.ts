import fs from 'node:fs';
import { mkdtempSync, openSync, readFileSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { BatchedDestination, type BatchedDestinationOptions } from '../../../src/dataplane/batched-destination.ts';

const opened: { fd: number; destination: BatchedDestination }[] = [];
afterEach(async () => {
  // Pending writes must land before the descriptor closes (and its number is reused).
  for (const { fd, destination } of opened.splice(0)) {
    destination.flushSync();
    await until(() => destination.buffered === 0);
    closeSync(fd);
  }
  vi.restoreAllMocks();
});

function setup(options: Partial<BatchedDestinationOptions> = {}): { destination: BatchedDestination; read: () => string; drops: () => number } {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'sluice-batched-')), 'out.log');
  const fd = openSync(file, 'a');
  let drops = 0;
  const destination = new BatchedDestination({
    fd,
    bufferBytes: 64,
    flushIntervalMs: 60_000,
    maxBufferedBytes: 1024,
    onDrop: () => drops++,
    onError: (error) => {
      throw error;
    },
    ...options,
  });
  opened.push({ fd, destination });
  return { destination, read: () => readFileSync(file, 'utf8'), drops: () => drops };
}

async function until(check: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
}

function line(n: number, width = 20): string {
  return `${String(n).padStart(width - 1, '.')}\n`;
}

describe('BatchedDestination', () => {
  it('keeps lines in memory until a buffer is full, then writes the full buffer', async () => {
    const { destination, read } = setup();
    destination.write(line(1));
    destination.write(line(2));
    destination.write(line(3));
    expect(read()).toBe('');
    // The fourth line does not fit the 64-byte buffer beside the first three.
    destination.write(line(4));
    await until(() => destination.buffered === 20);
    expect(read()).toBe(line(1) + line(2) + line(3));
    expect(destination.buffered).toBe(20);
  });

  it('writes a waiting line after the flush interval', async () => {
    const { destination, read } = setup({ flushIntervalMs: 20 });
    const started = Date.now();
    destination.write(line(1));
    expect(read()).toBe('');
    await until(() => read() !== '');
    expect(read()).toBe(line(1));
    expect(Date.now() - started).toBeGreaterThanOrEqual(15);
  });

  it('writes only whole lines, at most one buffer a write, in order', async () => {
    const sizes: number[] = [];
    const ends: string[] = [];
    const write = fs.write.bind(fs);
    vi.spyOn(fs, 'write').mockImplementation(((fd: number, bytes: Buffer, offset: number, length: number, position: null, callback: never) => {
      sizes.push(length);
      ends.push(bytes.toString('utf8', offset + length - 1, offset + length));
      write(fd, bytes, offset, length, position, callback);
    }) as typeof fs.write);
    const { destination, read } = setup();
    const expected = Array.from({ length: 50 }, (_, i) => line(i, 7 + (i % 13))).join('');
    for (let i = 0; i < 50; i++) destination.write(line(i, 7 + (i % 13)));
    destination.flush();
    await until(() => read().length === expected.length);
    expect(read()).toBe(expected);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(64);
    expect(new Set(ends)).toEqual(new Set(['\n']));
  });

  it('writes a line longer than a buffer on its own', async () => {
    const { destination, read } = setup();
    destination.write(line(1));
    destination.write(line(2, 100));
    await until(() => read().length === 120);
    expect(read()).toBe(line(1) + line(2, 100));
  });

  it('drops lines beyond maxBufferedBytes and says so, keeping what it already holds', async () => {
    const { destination, read, drops } = setup({ bufferBytes: 64, maxBufferedBytes: 128, flushIntervalMs: 60_000 });
    // Nothing is written while the first buffer's write is pending, so 128 bytes fill up.
    for (let i = 0; i < 20; i++) destination.write(line(i, 10));
    expect(drops()).toBeGreaterThan(0);
    expect(destination.buffered).toBeLessThanOrEqual(128);
    destination.flushSync();
    await until(() => destination.buffered === 0);
    const lines = read().trim().split('\n');
    expect(lines.length + drops()).toBe(20);
    // Dropped lines are the newest ones. (flushSync may write what waited behind the write in
    // flight before that write lands, so the order is checked by the other tests.)
    const kept = lines.map((l) => Number(l.replace(/^\.+/, ''))).sort((a, b) => a - b);
    expect(kept).toEqual(Array.from({ length: lines.length }, (_, i) => i));
  });

  it('writes everything that waits at once on flushSync (a thread about to end)', () => {
    const { destination, read } = setup();
    destination.write(line(1));
    destination.write(line(2));
    destination.flushSync();
    expect(read()).toBe(line(1) + line(2));
    expect(destination.buffered).toBe(0);
  });
});
