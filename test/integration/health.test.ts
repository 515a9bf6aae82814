/**
 * Backend health through the real daemon: active probes, passive ejection, drains, panic
 * mode and slow start, against real backends on 127.0.0.1.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  startBackend,
  startHttpBackend,
  startKillableBackend,
  type HttpTestBackend,
  type KillableBackend,
} from '../helpers/backends.ts';
import { eventually, getJson, HeldHttpConnection, readAll } from '../helpers/client.ts';
import { startDaemon, type Daemon, type LogLine } from '../helpers/daemon.ts';
import { freePorts } from '../helpers/ports.ts';

interface BackendJson {
  id: string;
  address: string;
  weight: number;
  effective_weight: number;
  state: string;
  admin: string;
  reason: string;
  active_connections: number;
  connections_total: number;
}
interface StatsJson {
  controlplane: { snapshotPublishes: number; snapshotVersion: number; probesSkipped: number };
}

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function later<T extends { close?: () => Promise<void>; kill?: () => Promise<void> }>(backend: T): T {
  cleanups.push(async () => (backend.close ?? backend.kill)?.call(backend));
  return backend;
}

interface Setup {
  daemon: Daemon;
  port: number;
  backends: () => Promise<BackendJson[]>;
  backend: (address: string) => Promise<BackendJson | undefined>;
  transitions: (address: string) => LogLine[];
}

/** A daemon with one listener `web` on cluster `web`; `cluster` holds the cluster's extra YAML lines. */
async function daemonWith(addresses: string[], cluster: string[], workers = 2): Promise<Setup> {
  const [port, adminPort] = await freePorts(2);
  if (port === undefined || adminPort === undefined) throw new Error('no ports');
  const yaml = [
    `workers: ${workers}`,
    `admin: {listen: "127.0.0.1:${adminPort}"}`,
    'shutdown: {drain_timeout: 1s}',
    'listeners:',
    `  - {name: web, listen: "127.0.0.1:${port}", cluster: web}`,
    'clusters:',
    '  - name: web',
    '    connect_timeout: 1s',
    ...cluster.map((line) => `    ${line}`),
    '    backends:',
    ...addresses.map((a) => `      - {address: "${a}"}`),
    '',
  ].join('\n');
  const daemon = await startDaemon(yaml, adminPort);
  cleanups.push(async () => daemon.stop('SIGKILL'));
  const backends = async (): Promise<BackendJson[]> => getJson<BackendJson[]>(`${daemon.adminUrl}/backends`);
  return {
    daemon,
    port,
    backends,
    backend: async (address) => (await backends()).find((b) => b.address === address),
    transitions: (address) => daemon.logs.filter((l) => l.msg === 'backend health changed' && l['backend'] === `web:${address}`),
  };
}

/** The time (ms) of the log line of `address`'s transition to `to`, once it has been written. */
async function transitionTime(setup: Setup, address: string, to: string): Promise<number> {
  const line = await setup.daemon.waitForLog((l) => l.msg === 'backend health changed' && l['backend'] === `web:${address}` && l['to'] === to);
  return line['time'] as number;
}

async function stateOf(setup: Setup, address: string, state: string, timeoutMs = 10_000): Promise<BackendJson | undefined> {
  return eventually(async () => setup.backend(address), (b) => b?.state === state, timeoutMs);
}

async function publishes(daemon: Daemon): Promise<number> {
  return (await getJson<StatsJson>(`${daemon.adminUrl}/debug/controlplane`)).controlplane.snapshotPublishes;
}

/**
 * Clients that each connect, read the backend's name to the end, and go again, until stopped;
 * `served()` counts the replies so far, for a test to wait on traffic instead of on time.
 */
function steadyLoad(port: number, lanes: number): { served: () => number; stop: () => Promise<{ replies: string[]; failures: string[] }> } {
  const replies: string[] = [];
  const failures: string[] = [];
  let running = true;
  const lane = async (): Promise<void> => {
    while (running) {
      try {
        replies.push(await readAll(port));
      } catch (error) {
        failures.push(String(error));
      }
    }
  };
  const all = Promise.all(Array.from({ length: lanes }, lane));
  return {
    served: () => replies.length,
    stop: async () => {
      running = false;
      await all;
      return { replies, failures };
    },
  };
}

/** Resolves once `load` has served `n` more clients than now. */
async function moreServed(load: { served: () => number }, n: number): Promise<void> {
  const target = load.served() + n;
  await eventually(async () => Promise.resolve(load.served()), (served) => served >= target, 20_000, 10);
}

describe('active and passive health checks', () => {
  it('loses no client when one of three backends dies under load, and takes it back after rise passed probes', async () => {
    const interval = 1_000;
    const fall = 2;
    const killable: KillableBackend[] = await Promise.all([startKillableBackend(), startKillableBackend(), startKillableBackend()]);
    for (const b of killable) later(b);
    const [, victim] = killable as [KillableBackend, KillableBackend, KillableBackend];
    const setup = await daemonWith(
      killable.map((b) => b.address),
      [`health_check: {type: tcp, interval: ${interval}ms, timeout: 300ms, rise: 2, fall: ${fall}}`, 'passive: {consecutive_failures: 3}'],
    );
    const names = new Set(killable.map((b) => b.address));

    // Clients come and go before the kill, while it is detected, and after.
    const load = steadyLoad(setup.port, 6);
    await moreServed(load, 30);
    const killedAt = Date.now();
    await victim.kill();
    const down = await stateOf(setup, victim.address, 'unhealthy');
    const unhealthyAt = await transitionTime(setup, victim.address, 'unhealthy');
    await moreServed(load, 30);
    const { replies, failures } = await load.stop();

    expect(failures).toEqual([]);
    expect(replies.length).toBeGreaterThanOrEqual(60);
    expect(replies.every((r) => names.has(r))).toBe(true);
    expect(down?.state).toBe('unhealthy');
    // Taken out by the rule, whichever signal got there first: `fall` failed probes or the
    // passive limit. How long that took is printed, not asserted: probe timers fire late on
    // a loaded machine, and the rule, not the machine, is what this test is about.
    const takenOut = setup.transitions(victim.address).find((l) => l['to'] === 'draining');
    // (The passive streak is reported as the control plane reads it: 3 or more.)
    expect(takenOut?.['reason']).toMatch(new RegExp(`^(${fall} failed probes in a row|\\d+ failed connects in a row \\(passive\\))`));
    const detectedMs = unhealthyAt - killedAt;
    console.log(`kill → unhealthy: ${detectedMs} ms (interval × fall + interval = ${interval * fall + interval} ms); ${replies.length} clients served, 0 failed`);

    // Back on the same port: healthy only after `rise` (2) passed probes, i.e. at least one
    // probe period (interval less its 10% jitter) after the first passed probe.
    const reborn = later(await startKillableBackend(victim.port));
    const restartedAt = Date.now();
    const up = await stateOf(setup, reborn.address, 'healthy');
    const healthyAt = await transitionTime(setup, victim.address, 'healthy');
    expect(up?.reason).toBe('2 passed probes in a row');
    expect(healthyAt - restartedAt).toBeGreaterThanOrEqual(interval * 0.9 - 50);
    const after = await Promise.all(Array.from({ length: 30 }, async () => readAll(setup.port)));
    expect(after).toContain(reborn.address);
  });

  it('marks a dead backend unhealthy by active checks alone, after `fall` failed probes, when no client comes', async () => {
    const interval = 500;
    const fall = 3;
    const victim = later(await startKillableBackend());
    const other = later(await startHttpBackend());
    const setup = await daemonWith([victim.address, other.address], [`health_check: {type: tcp, interval: ${interval}ms, timeout: 200ms, rise: 2, fall: ${fall}}`]);
    const killedAt = Date.now();
    await victim.kill();
    await stateOf(setup, victim.address, 'unhealthy');
    const unhealthyAt = await transitionTime(setup, victim.address, 'unhealthy');
    const draining = setup.transitions(victim.address).find((l) => l['to'] === 'draining');
    expect(draining?.['reason']).toMatch(/^3 failed probes in a row: connection refused/);
    // Printed, not asserted: on an idle machine within interval × fall + interval; probe
    // timers fire late on a loaded one, and the reason above already proves the rule.
    console.log(`kill → unhealthy without traffic: ${unhealthyAt - killedAt} ms (interval × fall + interval = ${interval * fall + interval} ms)`);
    // Three failures need at least two probe periods after the first one.
    expect(unhealthyAt - killedAt).toBeGreaterThanOrEqual(2 * interval * 0.9 - 50);
  });

  it('drains a backend whose HTTP check fails while a client holds a connection to it', async () => {
    const http = [later(await startHttpBackend()), later(await startHttpBackend())];
    const setup = await daemonWith(
      http.map((b) => b.address),
      ['health_check: {type: http, path: /health, interval: 300ms, timeout: 200ms, rise: 2, fall: 2}', 'drain_timeout: 30s'],
    );
    const held = await HeldHttpConnection.open(setup.port);
    cleanups.push(() => {
      held.close();
      return Promise.resolve();
    });
    const owner = await held.get('/');
    const target = http.find((b) => b.address === owner) as HttpTestBackend;
    const other = http.find((b) => b !== target) as HttpTestBackend;
    target.health = () => false;

    const draining = await stateOf(setup, target.address, 'draining');
    expect(draining?.reason).toBe('2 failed probes in a row: HTTP 503, expected 200');
    expect(draining?.active_connections).toBe(1);
    // The held connection keeps working; new connections go elsewhere.
    expect(await held.get('/again')).toBe(target.address);
    const fresh = await Promise.all(Array.from({ length: 20 }, async () => (await HeldHttpConnection.open(setup.port)).get('/')));
    expect(fresh).toEqual(Array.from({ length: 20 }, () => other.address));
    expect((await setup.backend(target.address))?.state).toBe('draining');

    held.close();
    const after = await stateOf(setup, target.address, 'unhealthy');
    expect(after?.active_connections).toBe(0);
    expect(after?.reason).toBe('2 failed probes in a row: HTTP 503, expected 200');
  });

  it('closes a draining backend’s connections at the drain timeout and marks it unhealthy', async () => {
    const http = [later(await startHttpBackend()), later(await startHttpBackend())];
    const setup = await daemonWith(
      http.map((b) => b.address),
      ['health_check: {type: http, path: /health, interval: 300ms, timeout: 200ms, rise: 2, fall: 2}', 'drain_timeout: 1s'],
    );
    const held = await HeldHttpConnection.open(setup.port);
    cleanups.push(() => {
      held.close();
      return Promise.resolve();
    });
    const owner = await held.get('/');
    const target = http.find((b) => b.address === owner) as HttpTestBackend;
    target.health = () => false;
    await stateOf(setup, target.address, 'draining');
    const drainingAt = await transitionTime(setup, target.address, 'draining');
    expect(await held.get('/')).toBe(target.address);

    const after = await stateOf(setup, target.address, 'unhealthy');
    const unhealthyAt = await transitionTime(setup, target.address, 'unhealthy');
    await eventually(() => Promise.resolve(held.closed), (closed) => closed);
    expect(held.closed).toBe(true);
    expect(after?.state).toBe('unhealthy');
    expect(unhealthyAt - drainingAt).toBeGreaterThanOrEqual(1_000);
    const closedLog = await setup.daemon.waitForLog((l) => l.msg === 'closed connections to drained or removed backends');
    expect(closedLog['closed']).toBe(1);
    expect((await setup.backend(target.address))?.active_connections).toBe(0);
  });

  it('never routes to a backend that accepts TCP but fails its HTTP check', async () => {
    const good = later(await startHttpBackend());
    const notHttp = later(await startBackend('echo'));
    const failing = later(await startHttpBackend());
    failing.health = () => false;
    const setup = await daemonWith(
      [good.address, notHttp.address, failing.address],
      ['health_check: {type: http, path: /health, interval: 300ms, timeout: 200ms, rise: 2, fall: 2}'],
    );
    // From the first snapshot on: the first probe decides before anything is published.
    const first = await setup.backends();
    expect(first.map((b) => [b.address, b.state])).toEqual([
      [good.address, 'healthy'],
      [notHttp.address, 'unhealthy'],
      [failing.address, 'unhealthy'],
    ]);
    expect(first[1]?.reason).toBe('first probe failed: not an HTTP response');
    expect(first[2]?.reason).toBe('first probe failed: HTTP 503, expected 200');

    const replies = await Promise.all(
      Array.from({ length: 40 }, async () => {
        const c = await HeldHttpConnection.open(setup.port);
        try {
          return await c.get('/');
        } finally {
          c.close();
        }
      }),
    );
    // Two more probe rounds of the failing backend after the clients came and went.
    const probed = failing.healthRequests;
    await eventually(async () => Promise.resolve(failing.healthRequests), (n) => n >= probed + 2, 20_000);
    expect(replies).toEqual(Array.from({ length: 40 }, () => good.address));
    expect(failing.requests).toBe(0);
    expect(failing.healthRequests).toBeGreaterThanOrEqual(2);
    const last = await setup.backends();
    expect(last.map((b) => b.connections_total)).toEqual([40, 0, 0]);
  });

  it('does not flap the routable set for a backend whose probes alternate', async () => {
    const steady = later(await startHttpBackend());
    const flappy = later(await startHttpBackend());
    flappy.health = (i) => i % 2 === 0; // passes, fails, passes, ...
    const setup = await daemonWith(
      [steady.address, flappy.address],
      ['health_check: {type: http, path: /health, interval: 200ms, timeout: 150ms, rise: 2, fall: 2}'],
    );
    const before = await publishes(setup.daemon);
    await eventually(() => Promise.resolve(flappy.healthRequests), (n) => n >= 16, 15_000);
    expect(flappy.healthRequests).toBeGreaterThanOrEqual(16);
    expect(setup.transitions(flappy.address)).toEqual([]);
    expect((await setup.backend(flappy.address))?.state).toBe('healthy');
    expect(await publishes(setup.daemon)).toBe(before);
  });
});

describe('no healthy backend', () => {
  it('refuses clients quickly, with a counter and a logged reason', async () => {
    const failing = later(await startHttpBackend());
    failing.health = () => false;
    const setup = await daemonWith([failing.address], ['health_check: {type: http, path: /health, interval: 300ms, timeout: 200ms}'], 1);
    const results = await Promise.allSettled(Array.from({ length: 5 }, async () => readAll(setup.port)));
    // Refused: the connection ends without a byte, or is reset; never left hanging.
    expect(results.map((r) => (r.status === 'fulfilled' ? r.value : String(r.reason)))).not.toContainEqual(expect.stringMatching(/no end within/));
    expect(results.every((r) => r.status === 'rejected' || r.value === '')).toBe(true);
    expect(failing.requests).toBe(0);
    const refusal = await setup.daemon.waitForLog((l) => l.msg === 'refused a client: no healthy backend (panic_mode refuse)');
    expect(refusal['cluster']).toBe('web');
    expect(setup.daemon.logs.some((l) => l.msg === 'cluster has no healthy backend: new connections are refused' && l['cluster'] === 'web')).toBe(true);
  });

  it('routes to every backend with panic_mode route_all', async () => {
    const failing = [later(await startKillableBackend()), later(await startKillableBackend())];
    // Probes look for a reply these backends never send, so every probe fails; clients are still served.
    const setup = await daemonWith(
      failing.map((b) => b.address),
      ['health_check: {type: tcp, send: "PING\\r\\n", expect: "+PONG", interval: 300ms, timeout: 200ms}', 'panic_mode: route_all'],
      1,
    );
    expect((await setup.backends()).map((b) => b.state)).toEqual(['unhealthy', 'unhealthy']);
    const replies = await Promise.all(Array.from({ length: 10 }, async () => readAll(setup.port)));
    expect(new Set(replies)).toEqual(new Set(failing.map((b) => b.address)));
    expect(setup.daemon.logs.some((l) => l.msg === 'cluster has no healthy backend: routing to every backend (panic_mode route_all)')).toBe(true);
  });
});

describe('passive ejection without active checks', () => {
  it('takes a refusing backend out after consecutive failures and re-admits it after the ejection time', async () => {
    const good = later(await startKillableBackend());
    const [refusedPort] = await freePorts(1);
    const refused = `127.0.0.1:${refusedPort}`;
    const setup = await daemonWith([good.address, refused], ['passive: {consecutive_failures: 2}', 'outlier: {base_ejection_time: 1s}'], 1);
    // Round robin sends every other client to the refusing backend first; each is retried on the good one.
    const replies = await Promise.all(Array.from({ length: 6 }, async () => readAll(setup.port)));
    expect(replies).toEqual(Array.from({ length: 6 }, () => good.address));
    await stateOf(setup, refused, 'unhealthy');
    await transitionTime(setup, refused, 'unhealthy');
    const ejected = setup.transitions(refused).find((l) => l['to'] === 'draining');
    expect(ejected?.['reason']).toMatch(/failed connects in a row \(passive\)$/);

    // It comes back to life; it is re-admitted by time (there is no probe to tell).
    const revived = later(await startKillableBackend(refusedPort));
    const back = await stateOf(setup, refused, 'healthy');
    expect(back?.reason).toBe('re-admitted after a 1s ejection');
    const readmittedAt = await transitionTime(setup, refused, 'healthy');
    expect(readmittedAt - (ejected?.['time'] as number)).toBeGreaterThanOrEqual(1_000);
    const after = await Promise.all(Array.from({ length: 4 }, async () => readAll(setup.port)));
    expect(after).toContain(revived.address);
  });
});

describe('slow start', () => {
  it('ramps a backend that turns healthy up over the window in a few published steps', async () => {
    const steady = later(await startHttpBackend());
    const [latePort] = await freePorts(1);
    const late = `127.0.0.1:${latePort}`;
    const setup = await daemonWith(
      [steady.address, late],
      ['health_check: {type: http, path: /health, interval: 200ms, timeout: 150ms, rise: 1, fall: 2}', 'slow_start: 2s'],
    );
    expect((await setup.backend(late))?.state).toBe('unhealthy');
    const before = await publishes(setup.daemon);
    later(await startHttpBackend(latePort));
    const seen: number[] = [];
    await eventually(
      async () => setup.backend(late),
      (b) => {
        if (b !== undefined && b.state === 'healthy' && seen.at(-1) !== b.effective_weight) seen.push(b.effective_weight);
        return b?.state === 'healthy' && b.effective_weight === 1;
      },
      10_000,
      20,
    );
    expect(seen[0]).toBeLessThan(1);
    expect(seen.at(-1)).toBe(1);
    expect(seen).toEqual([...seen].sort((a, b) => a - b));
    // One publish for the turn to healthy and one per later step (4), nothing per tick.
    const ramp = (await publishes(setup.daemon)) - before;
    console.log(`slow start 2s: effective weights seen ${seen.join(' → ')}; ${ramp} snapshots published`);
    expect(ramp).toBeLessThanOrEqual(5);
    expect((await setup.backend(late))?.weight).toBe(1);
  });
});
