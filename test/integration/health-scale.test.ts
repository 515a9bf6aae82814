/**
 * Active health checks of a cluster with 1,000 backends: every backend is probed about once
 * per interval, spread over it, without probes piling up or being skipped.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { eventually, getJson, readAll } from '../helpers/client.ts';
import { startDaemon } from '../helpers/daemon.ts';
import { freePorts } from '../helpers/ports.ts';

const BACKENDS = 1_000;
const INTERVAL_MS = 1_000;

interface ProbedServer {
  readonly address: string;
  readonly accepts: number[];
  readonly server: net.Server;
}

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A listener that records when each connection arrived and answers with its address. */
async function probedServer(): Promise<ProbedServer> {
  const accepts: number[] = [];
  const server = net.createServer((socket) => {
    accepts.push(Date.now());
    socket.on('error', () => socket.destroy());
    socket.end(entry.address);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const entry: ProbedServer = { address: `127.0.0.1:${(server.address() as net.AddressInfo).port}`, accepts, server };
  return entry;
}

describe('active checks at scale', () => {
  it('probes each of 1,000 backends once per interval, spread out, with nothing skipped', async () => {
    const servers: ProbedServer[] = [];
    for (let i = 0; i < BACKENDS; i++) servers.push(await probedServer());
    cleanups.push(async () => Promise.all(servers.map(async (s) => new Promise((resolve) => s.server.close(resolve)))));
    const [port, adminPort] = await freePorts(2);
    const yaml = [
      'workers: 1',
      `admin: {listen: "127.0.0.1:${adminPort}"}`,
      'listeners:',
      `  - {name: web, listen: "127.0.0.1:${port}", cluster: web}`,
      'clusters:',
      '  - name: web',
      `    health_check: {type: tcp, interval: ${INTERVAL_MS}ms, timeout: 500ms, rise: 2, fall: 3}`,
      '    backends:',
      ...servers.map((s) => `      - {address: "${s.address}"}`),
      '',
    ].join('\n');
    const daemon = await startDaemon(yaml, adminPort!);
    cleanups.push(async () => daemon.stop('SIGKILL'));

    const states = await getJson<{ state: string }[]>(`${daemon.adminUrl}/backends`);
    expect(states.filter((b) => b.state === 'healthy')).toHaveLength(BACKENDS);

    // Settled: every backend probed twice (at start-up and on its schedule). Then the window
    // lasts until every backend has been probed three more times: it is defined by probes,
    // so a slow machine makes it longer, not the test wrong.
    const probedAfter = (since: number, n: number) => async (): Promise<boolean> =>
      Promise.resolve(servers.every((s) => s.accepts.filter((t) => t >= since).length >= n));
    await eventually(probedAfter(0, 2), (done) => done, 20_000, 50);
    const from = Date.now();
    await eventually(probedAfter(from, 3), (done) => done, 20_000, 50);
    const to = Date.now();
    const counts = servers.map((s) => s.accepts.filter((t) => t >= from && t < to).length);
    const gaps = servers.flatMap((s) => {
      const times = s.accepts.filter((t) => t >= from - INTERVAL_MS && t < to);
      return times.slice(1).map((t, i) => t - (times[i] as number));
    });
    gaps.sort((a, b) => a - b);
    const p99 = gaps[Math.floor(gaps.length * 0.99)] as number;
    const seconds = (to - from) / 1000;
    console.log(
      `${BACKENDS} backends, interval ${INTERVAL_MS} ms: ${counts.reduce((a, b) => a + b, 0)} probes in ${seconds.toFixed(2)} s; ` +
        `per backend min ${Math.min(...counts)} max ${Math.max(...counts)}; gap p50 ${gaps[Math.floor(gaps.length / 2)]} ms, p99 ${p99} ms, max ${gaps.at(-1)} ms`,
    );
    // Never more often than jitter allows: a period is at least interval × 0.9. A slow
    // machine only delays probes, so this bound holds however loaded it is; one more is
    // allowed for a probe from before the window that a stalled test process recorded late.
    // Probing twice per interval would still show (6 or more in a 3 s window, bound 5).
    expect(Math.max(...counts)).toBeLessThanOrEqual(Math.floor((to - from) / (0.9 * INTERVAL_MS)) + 2);
    // Spread: in lock-step a whole round of 1,000 probes would land in one 100 ms slice.
    // Spread over the interval a slice holds about 100; a test process stalled for a while
    // accepts what queued meanwhile in one go, so the bound leaves room for a 400 ms stall.
    const slices = new Array<number>(Math.ceil((to - from) / 100)).fill(0);
    for (const s of servers) for (const t of s.accepts) if (t >= from && t < to) slices[Math.floor((t - from) / 100)]! += 1;
    const busy = slices.filter((n) => n > 0).length;
    console.log(`probes arrived in ${busy} of ${slices.length} 100 ms slices; the busiest held ${Math.max(...slices)}`);
    expect(Math.max(...slices)).toBeLessThan(BACKENDS / 2);

    const stats = await getJson<{ controlplane: { probesSkipped: number; probesQueued: number; snapshotPublishes: number } }>(
      `${daemon.adminUrl}/debug/controlplane`,
    );
    expect(stats.controlplane.probesSkipped).toBe(0);
    expect(stats.controlplane.snapshotPublishes).toBe(1);

    // And clients are routed across the cluster meanwhile.
    const replies = await Promise.all(Array.from({ length: 20 }, async () => readAll(port!)));
    expect(new Set(replies).size).toBe(20);
  });
});
