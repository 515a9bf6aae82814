import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import {
  Admission,
  createIpLimitBuffer,
  IpLimitTable,
  ratePolicy,
  TICKS_PER_SECOND,
  type IpLimitPolicy,
} from '../../../src/shared/ip-limits.ts';
import { parseIpInto } from '../../../src/shared/ip-address.ts';
import type { RacerData } from '../../fixtures/ip-limits-racer.ts';

function ip(text: string): Int32Array {
  const out = new Int32Array(4);
  if (parseIpInto(text, out) === 0) throw new Error(`bad test address ${text}`);
  return out;
}

function table(workers = 2, capacity = 1024, worker = 0): { buffer: SharedArrayBuffer; view: IpLimitTable } {
  const buffer = createIpLimitBuffer({ workers, listenerSlots: 8, capacity }, 12345);
  return { buffer, view: new IpLimitTable(buffer, worker) };
}

const connections = (n: number): IpLimitPolicy => ({ perIpConnections: n, intervalTicks: 0, toleranceTicks: 0 });
const rate = (perSecond: number, burst: number): IpLimitPolicy => ({ perIpConnections: 0, ...ratePolicy(perSecond, burst) });
const ms = (n: number): number => (n * TICKS_PER_SECOND) / 1000;

describe('per-IP connection counts', () => {
  it('admits 10 connections from one address, refuses the 11th, and admits again after one closes', () => {
    const { view } = table();
    const a = ip('127.0.0.2');
    const held = Array.from({ length: 10 }, () => view.admitIp(0, a, 0, connections(10)));
    expect(held.every((entry) => entry >= 0)).toBe(true);
    expect(view.admitIp(0, a, 0, connections(10))).toBe(Admission.refusedPerIpConnections);
    expect(view.connectionsOf(0, a)).toBe(10);
    view.releaseIp(held[0]!);
    expect(view.admitIp(0, a, 0, connections(10))).toBeGreaterThanOrEqual(0);
    expect(view.connectionsOf(0, a)).toBe(10);
  });

  it('counts addresses and listeners apart', () => {
    const { view } = table();
    for (let i = 0; i < 3; i++) view.admitIp(0, ip('127.0.0.2'), 0, connections(3));
    expect(view.admitIp(0, ip('127.0.0.2'), 0, connections(3))).toBe(Admission.refusedPerIpConnections);
    expect(view.admitIp(0, ip('127.0.0.3'), 0, connections(3))).toBeGreaterThanOrEqual(0);
    expect(view.admitIp(1, ip('127.0.0.2'), 0, connections(3))).toBeGreaterThanOrEqual(0);
    expect(view.admitIp(0, ip('::ffff:127.0.0.3'), 0, connections(3))).toBeGreaterThanOrEqual(0);
    expect(view.connectionsOf(0, ip('127.0.0.3'))).toBe(2);
  });

  it('shares counts between the views of different workers on one buffer', () => {
    const { buffer, view } = table(2);
    const other = new IpLimitTable(buffer, 1);
    const a = ip('2001:db8::7');
    for (let i = 0; i < 2; i++) view.admitIp(0, a, 0, connections(4));
    for (let i = 0; i < 2; i++) other.admitIp(0, a, 0, connections(4));
    expect(view.admitIp(0, a, 0, connections(4))).toBe(Admission.refusedPerIpConnections);
    expect(other.admitIp(0, a, 0, connections(4))).toBe(Admission.refusedPerIpConnections);
  });
});

describe('per-IP rate (GCRA)', () => {
  it('admits a burst of 20 at once, then 20 per second', () => {
    const { view } = table();
    const a = ip('127.0.0.2');
    const policy = rate(20, 20);
    let admitted = 0;
    for (let i = 0; i < 30; i++) if (view.admitIp(0, a, 0, policy) === Admission.admitted) admitted++;
    expect(admitted).toBe(20);
    // Over the next 3 s, one attempt per millisecond: 20/s get through.
    let later = 0;
    let refused = 0;
    for (let t = 1; t <= 3000; t++) {
      const outcome = view.admitIp(0, a, ms(t), policy);
      if (outcome === Admission.admitted) later++;
      if (outcome === Admission.refusedPerIpRate) refused++;
    }
    expect(later).toBe(60);
    expect(refused).toBe(3000 - 60);
  });

  it('refills completely after idling, and a refused attempt costs no token', () => {
    const { view } = table();
    const a = ip('10.0.0.1');
    const policy = rate(10, 5);
    for (let i = 0; i < 5; i++) expect(view.admitIp(0, a, 0, policy)).toBe(Admission.admitted);
    for (let i = 0; i < 100; i++) expect(view.admitIp(0, a, 0, policy)).toBe(Admission.refusedPerIpRate);
    expect(view.admitIp(0, a, ms(100), policy)).toBe(Admission.admitted);
    let admitted = 0;
    for (let i = 0; i < 10; i++) if (view.admitIp(0, a, ms(60_000), policy) === Admission.admitted) admitted++;
    expect(admitted).toBe(5);
  });

  it('keeps working across the wrap of the 32-bit tick clock', () => {
    const { view } = table();
    const a = ip('10.0.0.2');
    const policy = rate(10, 2);
    const nearWrap = 0x7fffffff - ms(50);
    expect(view.admitIp(0, a, nearWrap, policy)).toBe(Admission.admitted);
    expect(view.admitIp(0, a, nearWrap, policy)).toBe(Admission.admitted);
    expect(view.admitIp(0, a, nearWrap, policy)).toBe(Admission.refusedPerIpRate);
    const afterWrap = (nearWrap + ms(100)) | 0;
    expect(afterWrap).toBeLessThan(0);
    expect(view.admitIp(0, a, afterWrap, policy)).toBe(Admission.admitted);
    expect(view.admitIp(0, a, afterWrap, policy)).toBe(Admission.refusedPerIpRate);
  });

  it('applies the connection count before the rate, and releases the pin of a rate refusal', () => {
    const { view } = table();
    const a = ip('10.0.0.3');
    const both: IpLimitPolicy = { perIpConnections: 2, ...ratePolicy(1, 1) };
    const first = view.admitIp(0, a, 0, both);
    expect(first).toBeGreaterThanOrEqual(0);
    expect(view.admitIp(0, a, 0, both)).toBe(Admission.refusedPerIpRate);
    expect(view.connectionsOf(0, a)).toBe(1);
  });
});

describe('table bounds', () => {
  it('fails open, and says so, when every slot of the probe window is held', () => {
    const { view } = table(1, 32);
    const held: number[] = [];
    for (let i = 0; i < 32; i++) held.push(view.admitIp(0, ip(`10.1.0.${i}`), 0, connections(5)));
    expect(held.every((entry) => entry >= 0)).toBe(true);
    expect(view.admitIp(0, ip('10.2.0.1'), 0, connections(5))).toBe(Admission.admittedTableFull);
    view.releaseIp(held[7]!);
    expect(view.admitIp(0, ip('10.2.0.1'), 0, connections(5))).toBeGreaterThanOrEqual(0);
  });

  it('reuses an entry once nothing holds it and its bucket is full again, not before', () => {
    const { view } = table(1, 32);
    const policy = rate(10, 1);
    for (let i = 0; i < 32; i++) expect(view.admitIp(0, ip(`10.1.0.${i}`), 0, policy)).toBe(Admission.admitted);
    // Every bucket is refilling for 100 ms: a new address has no slot.
    expect(view.admitIp(0, ip('10.2.0.1'), ms(50), policy)).toBe(Admission.admittedTableFull);
    // Refilled: the new address takes a slot, and an old one starts with a full bucket.
    expect(view.admitIp(0, ip('10.2.0.1'), ms(100), policy)).toBe(Admission.admitted);
    expect(view.admitIp(0, ip('10.2.0.1'), ms(100), policy)).toBe(Admission.refusedPerIpRate);
    expect(view.copiesOf(0, ip('10.2.0.1'))).toBe(1);
  });

  it('bounds per-listener totals (max_connections) across workers', () => {
    const { buffer, view } = table(2);
    const other = new IpLimitTable(buffer, 1);
    expect(view.acquireListener(3, 2)).toBe(true);
    expect(other.acquireListener(3, 2)).toBe(true);
    expect(view.acquireListener(3, 2)).toBe(false);
    expect(view.acquireListener(4, 2)).toBe(true);
    other.releaseListener(3);
    expect(view.acquireListener(3, 2)).toBe(true);
    expect(view.listenerConnections(3)).toBe(2);
  });

  it('gives back what a dead worker held, and leaves the others counts alone', () => {
    const { buffer, view } = table(2);
    const dead = new IpLimitTable(buffer, 1);
    const a = ip('127.0.0.9');
    for (let i = 0; i < 3; i++) view.admitIp(0, a, 0, connections(10));
    for (let i = 0; i < 4; i++) dead.admitIp(0, a, 0, connections(10));
    dead.acquireListener(0, 100);
    view.acquireListener(0, 100);
    expect(view.connectionsOf(0, a)).toBe(7);
    view.releaseWorker(1);
    expect(view.connectionsOf(0, a)).toBe(3);
    expect(view.listenerConnections(0)).toBe(1);
  });

  it('frees the table lock and a half-written entry of a worker that died inside an insert', () => {
    const { buffer, view } = table(2, 32);
    const cells = new Int32Array(buffer);
    // Simulate worker 1 killed mid-insert: lock taken by it (owner 2), entry 5 BUSY.
    cells[0] = 2;
    const entryBase = 8 + 5 * 8;
    cells[entryBase] = 2;
    expect(view.admitIp(0, ip('10.9.9.9'), 0, connections(5))).toBe(Admission.admittedTableFull);
    view.releaseWorker(1);
    expect(cells[0]).toBe(0);
    expect(cells[entryBase]).toBe(1);
    expect(view.admitIp(0, ip('10.9.9.9'), 0, connections(5))).toBeGreaterThanOrEqual(0);
  });
});

describe('a lock holder that is preempted', () => {
  // Worker 1's thread takes the table lock, and once worker 0 is about to admit, holds it
  // 2 ms more: what a holder preempted inside its insert looks like to the others.
  const holder = `
    const { workerData } = require('node:worker_threads');
    const cells = new Int32Array(workerData.buffer);
    const control = new Int32Array(workerData.control);
    Atomics.store(cells, 0, 2);
    Atomics.store(control, 0, 1);
    Atomics.notify(control, 0);
    Atomics.wait(control, 1, 0);
    Atomics.wait(control, 2, 0, 2);
    Atomics.store(cells, 0, 0);
    Atomics.notify(cells, 0);
  `;

  it('is waited for: the connection is tracked, not admitted untracked as when the table is full', async () => {
    const { buffer } = table(2, 1024);
    // A wait limit no loaded machine reaches, so only the waiting is under test.
    const view = new IpLimitTable(buffer, 0, 60_000);
    const control = new Int32Array(new SharedArrayBuffer(12));
    const thread = new Worker(holder, { eval: true, workerData: { buffer, control: control.buffer } });
    const exited = new Promise((resolve) => thread.once('exit', resolve));
    await Atomics.waitAsync(control, 0, 0).value;
    Atomics.store(control, 1, 1);
    Atomics.notify(control, 1);
    const entry = view.admitIp(0, ip('10.1.2.3'), 0, connections(5));
    await exited;
    expect(entry).toBeGreaterThanOrEqual(0);
    expect(view.connectionsOf(0, ip('10.1.2.3'))).toBe(1);
  });
});

describe('racing threads on one table', () => {
  const started: Worker[] = [];
  afterEach(async () => {
    await Promise.all(started.splice(0).map(async (w) => w.terminate()));
  });

  async function race(threads: number, data: Omit<RacerData, 'buffer' | 'control' | 'worker'>): Promise<{ counts: number[][]; view: IpLimitTable }> {
    const buffer = createIpLimitBuffer({ workers: threads + 1, listenerSlots: 1, capacity: 4096 }, 99);
    const control = new SharedArrayBuffer(8);
    const flags = new Int32Array(control);
    const results = Array.from({ length: threads }, async (_, worker) => {
      const w = new Worker(new URL('../../fixtures/ip-limits-racer.ts', import.meta.url), { workerData: { ...data, buffer, control, worker } satisfies RacerData });
      started.push(w);
      return new Promise<number[]>((resolve, reject) => {
        w.once('message', resolve);
        w.once('error', reject);
      });
    });
    const deadline = Date.now() + 20_000;
    while (Atomics.load(flags, 1) < threads && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
    Atomics.store(flags, 0, 1);
    Atomics.notify(flags, 0);
    return { counts: await Promise.all(results), view: new IpLimitTable(buffer, threads) };
  }

  it('never admits more than per_ip_connections for an address, whichever threads admit', async () => {
    const { counts, view } = await race(4, { addresses: 1000, attemptsPerAddress: 20, perIpConnections: 5, releaseAtEnd: false });
    const address = new Int32Array([0, 0, 0xffff, 0]);
    for (let a = 0; a < 1000; a++) {
      const total = counts.reduce((sum, perThread) => sum + (perThread[a] ?? 0), 0);
      address[3] = 0x0a000000 + a;
      expect(total).toBeLessThanOrEqual(5);
      expect(total).toBeGreaterThanOrEqual(1);
      expect(view.connectionsOf(0, address)).toBe(total);
      expect(view.copiesOf(0, address)).toBe(1);
    }
  });

  it('returns every count to 0 when all threads release what they hold', async () => {
    const { view } = await race(4, { addresses: 300, attemptsPerAddress: 10, perIpConnections: 3, releaseAtEnd: true });
    const address = new Int32Array([0, 0, 0xffff, 0]);
    for (let a = 0; a < 300; a++) {
      address[3] = 0x0a000000 + a;
      expect(view.connectionsOf(0, address)).toBe(0);
      expect(view.copiesOf(0, address)).toBeLessThanOrEqual(1);
    }
  });
});
