import { closeSync, mkdtempSync, openSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { accessLinePrefix, formatAccessLine } from '../../../src/dataplane/access-line.ts';
import { AccessLog, roundMs, type AccessRecord } from '../../../src/dataplane/access-log.ts';
import { CounterTables, createCounterBuffer, WorkerCounter } from '../../../src/shared/counters.ts';
import { flushLogs } from '../../../src/shared/logger.ts';

const DIMS = { workers: 1, backendSlots: 4, listenerSlots: 2 };

function counters(): CounterTables {
  return new CounterTables(createCounterBuffer(DIMS), DIMS);
}

function accessLog(settings: { enabled: boolean; sampling: number; fd?: number }, random: () => number = Math.random): AccessLog {
  const tables = counters();
  return new AccessLog({ fd: 1, ...settings }, { worker: 0, counters: tables.forWorker(0), onError: () => undefined }, random);
}

/** A random source that returns these values in turn. */
function sequence(values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length] ?? 0;
}

describe('AccessLog.sample', () => {
  it.each([
    ['disabled', { enabled: false, sampling: 1 }, [0], [false, false, false]],
    ['enabled with sampling 0', { enabled: true, sampling: 0 }, [0], [false, false, false]],
    ['enabled with sampling 1', { enabled: true, sampling: 1 }, [0.999], [true, true, true]],
    ['sampling 0.25 against draws 0.1, 0.25, 0.9', { enabled: true, sampling: 0.25 }, [0.1, 0.25, 0.9], [true, false, false]],
  ])('%s', (_name, settings, draws, expected) => {
    const log = accessLog(settings, sequence(draws));
    expect([log.sample(), log.sample(), log.sample()]).toEqual(expected);
  });

  it('never draws a random number when every connection is logged', () => {
    let draws = 0;
    const log = accessLog({ enabled: true, sampling: 1 }, () => {
      draws++;
      return 0;
    });
    for (let i = 0; i < 10; i++) log.sample();
    expect(draws).toBe(0);
  });
});

describe('AccessLog.write', () => {
  it('appends one JSON line per record to its file descriptor and counts it', () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'sluice-access-unit-')), 'access.log');
    const fd = openSync(file, 'a');
    const tables = counters();
    const log = new AccessLog({ enabled: true, sampling: 1, fd }, { worker: 3, counters: tables.forWorker(0), onError: () => undefined });
    const record: AccessRecord = {
      listener: 'web',
      client: '127.0.0.1:50000',
      cluster: 'web',
      backend: '127.0.0.1:9001',
      attempts: 1,
      bytes_from_client: 10,
      bytes_to_client: 20,
      duration_ms: 1.5,
      connect_ms: 0.25,
      reason: 'client_close',
    };
    log.write(record);
    log.write({ ...record, reason: 'drain' });
    flushLogs();
    closeSync(fd);
    const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({ ...record, level: 30, worker: 3, log: 'access', msg: 'access' });
    expect(lines[1]?.['reason']).toBe('drain');
    expect(tables.workerTotal(WorkerCounter.accessLogLines)).toBe(2);
  });
});

const RECORD: AccessRecord = {
  listener: 'web',
  client: '127.0.0.1:50000',
  cluster: 'web',
  backend: '127.0.0.1:9001',
  attempts: 1,
  bytes_from_client: 10,
  bytes_to_client: 20,
  duration_ms: 1.5,
  connect_ms: 0.25,
  reason: 'client_close',
};

describe('formatAccessLine', () => {
  it.each<[string, AccessRecord]>([
    ['a proxied connection', RECORD],
    ['a connection that reached no backend', { ...RECORD, backend: null, connect_ms: null, attempts: 3, reason: 'connect_failure' }],
    ['a refused connection of an unknown cluster', { ...RECORD, cluster: null, backend: null, attempts: 0, connect_ms: null, reason: 'no_backend' }],
    ['an IPv6 client', { ...RECORD, client: '[::1]:40000' }],
    ['strings that need escaping', { ...RECORD, listener: 'a"b\\c', client: 'x\ny\u0001', backend: 'ümlaut:1' }],
    ['large and fractional numbers', { ...RECORD, bytes_from_client: 2 ** 52, duration_ms: 123456.789, connect_ms: 0.001 }],
  ])('writes exactly what pino writes for %s', (_name, record) => {
    let written = '';
    const logger = pino(
      { base: { pid: 4242, worker: 3, log: 'access' }, timestamp: () => ',"time":1700000000123' },
      { write: (line: string) => (written = line) },
    );
    logger.info(record, 'access');
    expect(formatAccessLine(1_700_000_000_123, accessLinePrefix(4242, 3), record)).toBe(written);
  });
});

describe('roundMs', () => {
  it.each([
    [1.23456789, 1.235],
    [0, 0],
    [1000.0004, 1000],
  ])('%f ms -> %f', (input, output) => {
    expect(roundMs(input)).toBe(output);
  });
});
