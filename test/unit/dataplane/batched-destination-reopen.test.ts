import { closeSync, mkdtempSync, openSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BatchedDestination } from '../../../src/dataplane/batched-destination.ts';

const fds: number[] = [];
const destinations: BatchedDestination[] = [];
afterEach(async () => {
  for (const destination of destinations.splice(0)) {
    destination.flushSync();
    await until(() => destination.buffered === 0);
  }
  for (const fd of fds.splice(0)) closeSync(fd);
});

async function until(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
}

function file(): { fd: number; read: () => string } {
  const name = path.join(mkdtempSync(path.join(tmpdir(), 'sluice-reopen-')), 'out.log');
  const fd = openSync(name, 'a');
  fds.push(fd);
  return { fd, read: () => readFileSync(name, 'utf8') };
}

function destinationOn(fd: number): BatchedDestination {
  const destination = new BatchedDestination({
    fd,
    bufferBytes: 64,
    flushIntervalMs: 60_000,
    maxBufferedBytes: 4096,
    onDrop: () => {
      throw new Error('dropped');
    },
    onError: (error) => {
      throw error;
    },
  });
  destinations.push(destination);
  return destination;
}

const line = (n: number): string => `line ${String(n).padStart(3, '0')}\n`;

describe('BatchedDestination.reopen', () => {
  it('resolves only once every earlier line is in the old file; later lines go to the new one', async () => {
    const old = file();
    const next = file();
    const destination = destinationOn(old.fd);
    // 30 lines of 9 bytes: several full 64-byte buffers queued behind a write in flight.
    for (let i = 0; i < 30; i++) destination.write(line(i));
    const reopened = destination.reopen(next.fd);
    for (let i = 30; i < 40; i++) destination.write(line(i));
    await reopened;
    expect(old.read()).toBe(Array.from({ length: 30 }, (_, i) => line(i)).join(''));
    destination.flush();
    await until(() => destination.buffered === 0);
    expect(next.read()).toBe(Array.from({ length: 10 }, (_, i) => line(30 + i)).join(''));
  });

  it('resolves at once when nothing waits', async () => {
    const destination = destinationOn(file().fd);
    await expect(destination.reopen(file().fd)).resolves.toBeUndefined();
  });

  it('two reopens in a row both resolve, and each file holds exactly its own lines', async () => {
    const [a, b, c] = [file(), file(), file()];
    const destination = destinationOn(a.fd);
    destination.write(line(1));
    const first = destination.reopen(b.fd);
    const second = destination.reopen(c.fd);
    destination.write(line(2));
    await Promise.all([first, second]);
    destination.flush();
    await until(() => destination.buffered === 0);
    expect([a.read(), b.read(), c.read()]).toEqual([line(1), '', line(2)]);
  });
});
