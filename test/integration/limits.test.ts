/**
 * Connection limits and the queue through the real daemon (two data-plane workers): the
 * limit is global, reserved with compare-and-swap on a counter every worker shares, and
 * connections that find every backend full wait in a bounded queue.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startBackend, type TestBackend } from '../helpers/backends.ts';
import { eventually, getJson, openEcho, type EchoConnection } from '../helpers/client.ts';
import { startDaemon, type Daemon } from '../helpers/daemon.ts';
import { freePorts } from '../helpers/ports.ts';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function destroyAfter(connections: readonly EchoConnection[]): void {
  cleanups.push(() => {
    for (const connection of connections) connection.socket.destroy();
    return Promise.resolve();
  });
}

async function echoBackend(): Promise<TestBackend> {
  const backend = await startBackend('echo');
  cleanups.push(async () => backend.close());
  return backend;
}

async function daemon(o: { backend: string; queue?: string; maxConnections: number; faults?: boolean }): Promise<{ d: Daemon; port: number }> {
  const [port, adminPort] = await freePorts(2);
  const yaml = `workers: 2
admin: {listen: 127.0.0.1:${adminPort!}}
shutdown: {drain_timeout: 2s}
listeners:
  - {name: web, listen: 127.0.0.1:${port!}, cluster: web}
clusters:
  - name: web
    max_connections: ${o.maxConnections}
${o.queue === undefined ? '' : `    queue: ${o.queue}\n`}    backends:
      - {address: ${o.backend}}
`;
  const d = await startDaemon(yaml, adminPort!, o.faults === true ? { env: { SLUICE_FAULT_INJECTION: '1' } } : {});
  cleanups.push(async () => d.stop('SIGKILL'));
  return { d, port: port! };
}

interface BackendJson {
  active_connections: number;
}

interface ClusterJson {
  queue?: Record<string, number>;
}

/**
 * Whether an echo arrives: false as soon as the proxy closes the connection, or after `ms`
 * (a bound for a hang only; a queued client is told apart by the queue's statistics).
 */
async function echoes(connection: EchoConnection, text: string, ms: number): Promise<boolean> {
  try {
    return (await connection.exchange(text, ms)) === text;
  } catch {
    return false;
  }
}

/** Resolves with how long the socket stayed open after `since`, once it closes. */
function closedAfter(socket: net.Socket, since: number): Promise<number> {
  return new Promise((resolve) => {
    if (socket.destroyed) resolve(Date.now() - since);
    else socket.once('close', () => resolve(Date.now() - since));
  });
}

function connectRaw(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Wait until `done` holds (the assertion after it says what failed if it never does). */
async function until(done: () => boolean): Promise<void> {
  await eventually(async () => Promise.resolve(done()), (d) => d, 20_000, 10);
}

describe('max_connections with a queue', () => {
  it('serves 15 concurrent clients with max_connections 10 and a queue of 5 (5 after waiting); the next waits and is closed after the 1s timeout', async () => {
    const backend = await echoBackend();
    const { d, port } = await daemon({ backend: backend.address, maxConnections: 10, queue: '{size: 5, timeout: 1s}' });

    // 15 clients connect and send at once; each records whether its echo came back.
    const clients = await Promise.all(
      Array.from({ length: 15 }, async (_, i) => {
        const socket = await connectRaw(port);
        const client = { socket, echoed: false };
        socket.on('data', () => (client.echoed = true));
        socket.write(`hello ${i}`);
        return client;
      }),
    );
    cleanups.push(() => {
      for (const c of clients) c.socket.destroy();
      return Promise.resolve();
    });
    const echoedCount = (): number => clients.filter((c) => c.echoed).length;

    // Only 10 reach the backend, whichever worker accepted them.
    await until(() => echoedCount() >= 10 && backend.open.size >= 10);
    const served = clients.filter((c) => c.echoed);
    const waiting = clients.filter((c) => !c.echoed);
    expect(served).toHaveLength(10);
    expect(backend.open.size).toBe(10);
    const [view] = await getJson<BackendJson[]>(`${d.adminUrl}/backends`);
    expect(view?.active_connections).toBe(10);

    // Five of the first ten leave; the five waiting clients get their slots.
    for (const c of served.slice(0, 5)) c.socket.destroy();
    await until(() => waiting.every((c) => c.echoed));
    expect(waiting.map((c) => c.echoed)).toEqual([true, true, true, true, true]);
    expect(waiting.every((c) => !c.socket.destroyed)).toBe(true);
    await until(() => backend.open.size === 10);
    expect(backend.open.size).toBe(10);
    expect(backend.accepted).toBe(15);

    // Every slot is taken again and nobody leaves: the next client waits, then is closed.
    const late = await openEcho(port);
    destroyAfter([late]);
    const startedAt = Date.now();
    const gotEcho = echoes(late, 'anyone?', 20_000);
    const openFor = await closedAfter(late.socket, startedAt);
    expect(await gotEcho).toBe(false);
    console.log(`queued client closed ${openFor} ms after it asked`);
    // Not before the queue timeout; that the timeout (not something else) closed it, the
    // statistics below say (timed_out_total), so no upper bound on a loaded machine.
    expect(openFor).toBeGreaterThanOrEqual(900);
    expect(backend.accepted).toBe(15);

    // The queue's statistics, over both workers.
    const [cluster] = await getJson<ClusterJson[]>(`${d.adminUrl}/clusters`);
    expect(cluster?.queue).toEqual({
      size: 5,
      timeout_ms: 1000,
      length: 0,
      queued_total: 6,
      served_after_wait_total: 5,
      timed_out_total: 1,
      overflow_total: 0,
      abandoned_total: 0,
    });
  });

  it('closes at once a client that finds the queue full', async () => {
    const backend = await echoBackend();
    // A queue timeout far beyond the test's: a client closed here was not timed out.
    const { d, port } = await daemon({ backend: backend.address, maxConnections: 2, queue: '{size: 1, timeout: 10m}' });
    const clients = await Promise.all(Array.from({ length: 3 }, async () => openEcho(port)));
    destroyAfter(clients);
    let echoed = 0;
    const answers = clients.map(async (c) => {
      const ok = await echoes(c, 'x', 60_000);
      if (ok) echoed++;
      return ok;
    });
    // Two hold the slots, one waits in the queue; a fourth finds the queue full.
    await until(() => echoed === 2);
    const queued = await eventually(
      async () => (await getJson<ClusterJson[]>(`${d.adminUrl}/clusters`))[0]?.queue,
      (q) => q?.['length'] === 1,
    );
    expect(queued).toMatchObject({ length: 1, queued_total: 1 });
    const extra = await openEcho(port);
    destroyAfter([extra]);
    await closedAfter(extra.socket, Date.now());
    expect(backend.accepted).toBe(2);
    const [cluster] = await getJson<ClusterJson[]>(`${d.adminUrl}/clusters`);
    expect(cluster?.queue).toMatchObject({ length: 1, queued_total: 1, overflow_total: 1, timed_out_total: 0 });
    // The queued client never got an echo; it is let go here, which settles its exchange.
    for (const c of clients) c.socket.destroy();
    expect((await Promise.all(answers)).filter(Boolean)).toHaveLength(2);
  });
});

describe('max_connections without a queue', () => {
  it('holds the limit over both workers and refuses the rest at once', async () => {
    const backend = await echoBackend();
    const { port } = await daemon({ backend: backend.address, maxConnections: 4 });
    const clients = await Promise.all(Array.from({ length: 12 }, async () => openEcho(port)));
    destroyAfter(clients);
    // Each answer is an event: the echo, or the proxy closing a refused connection.
    const answers = await Promise.all(clients.map(async (c) => echoes(c, 'x', 20_000)));
    expect(answers.filter(Boolean)).toHaveLength(4);
    expect(clients.filter((c) => c.socket.destroyed)).toHaveLength(8);
    expect(backend.open.size).toBe(4);
    expect(backend.accepted).toBe(4);
  });
});

describe('a crashed worker’s connections', () => {
  it('leave the global count, so the limit frees their places for the other workers', async () => {
    const backend = await echoBackend();
    const { d, port } = await daemon({ backend: backend.address, maxConnections: 4, faults: true });
    const held = await Promise.all(Array.from({ length: 4 }, async () => openEcho(port)));
    destroyAfter(held);
    for (const c of held) expect(await echoes(c, 'x', 20_000)).toBe(true);
    const { workers } = await getJson<{ workers: { worker: number; connections: number }[] }>(`${d.adminUrl}/debug/resources`);
    // Crash the worker that holds the most of the four (one of them holds at least two).
    const victim = workers.reduce((a, b) => (b.connections > a.connections ? b : a));
    const lost = victim.connections;
    expect(lost).toBeGreaterThanOrEqual(2);
    expect((await fetch(`${d.adminUrl}/debug/workers/${victim.worker}/crash`, { method: 'POST' })).status).toBe(202);
    await d.waitForLog((l) => l.msg === 'data-plane worker crashed');

    // The survivors' connections still count; the dead worker's do not.
    await until(() => held.filter((c) => c.socket.destroyed).length === lost);
    const readBack = async (): Promise<number> => (await getJson<BackendJson[]>(`${d.adminUrl}/backends`))[0]?.active_connections ?? -1;
    expect(await eventually(readBack, (active) => active === 4 - lost)).toBe(4 - lost);

    // Their places are free again: as many new clients are served, and no more.
    const fresh = await Promise.all(Array.from({ length: lost + 1 }, async () => openEcho(port)));
    destroyAfter(fresh);
    const answers = await Promise.all(fresh.map(async (c) => echoes(c, 'y', 20_000)));
    expect(answers.filter(Boolean)).toHaveLength(lost);
  });
});

describe('a queued client and a backend that refuses', () => {
  interface RefusalSetup {
    readonly d: Daemon;
    readonly port: number;
    readonly echoId: string;
    /** Failed connects at the refusing backend so far. */
    readonly refusals: () => Promise<number>;
    /** A client holding the echo backend's one place. */
    readonly holder: EchoConnection;
  }

  /**
   * An echo backend with room for one connection and a backend that refuses every connect
   * (passive ejection far away, so nothing but the session's own rule bounds its attempts),
   * and a client holding the echo backend's place (after a refusal, if it went there first).
   */
  async function refusalSetup(): Promise<RefusalSetup> {
    const backend = await echoBackend();
    const [port, adminPort, refusingPort] = (await freePorts(3)) as [number, number, number];
    const refusing = `127.0.0.1:${refusingPort}`;
    const yaml = `workers: 2
admin: {listen: 127.0.0.1:${adminPort}}
shutdown: {drain_timeout: 2s}
listeners:
  - {name: web, listen: 127.0.0.1:${port}, cluster: web}
clusters:
  - name: web
    passive: {consecutive_failures: 1000}
    queue: {size: 5, timeout: 10m}
    backends:
      - {address: ${backend.address}, max_connections: 1}
      - {address: ${refusing}, max_connections: 1}
`;
    const d = await startDaemon(yaml, adminPort);
    cleanups.push(async () => d.stop('SIGKILL'));
    const refusals = async (): Promise<number> =>
      (await getJson<{ address: string; connect_failures_total: number }[]>(`${d.adminUrl}/backends`)).find((b) => b.address === refusing)?.connect_failures_total ?? -1;
    const holder = await openEcho(port);
    destroyAfter([holder]);
    expect(await echoes(holder, 'first', 20_000)).toBe(true);
    return { d, port, echoId: `web:${backend.address}`, refusals, holder };
  }

  /** A second client, refused once by the refusing backend and now waiting in the queue. */
  async function queuedAfterRefusal(setup: RefusalSetup, before: number): Promise<{ waiter: EchoConnection; answer: Promise<boolean> }> {
    const waiter = await openEcho(setup.port);
    destroyAfter([waiter]);
    const answer = echoes(waiter, 'second', 60_000);
    await eventually(async () => (await getJson<ClusterJson[]>(`${setup.d.adminUrl}/clusters`))[0]?.queue?.['length'], (length) => length === 1);
    await eventually(setup.refusals, (n) => n >= before + 1);
    return { waiter, answer };
  }

  it('tries the refusing backend once, then waits for the full one instead of retrying the refusal in a loop', async () => {
    const setup = await refusalSetup();
    const before = await setup.refusals();
    const { answer } = await queuedAfterRefusal(setup, before);

    // The holder leaves; the waiter gets its place, having been refused once on the way.
    setup.holder.socket.destroy();
    expect(await answer).toBe(true);
    expect(await setup.refusals()).toBe(before + 1);
  });

  it('refuses the waiter as connect_failure, not at the queue timeout, once only backends that failed it are left', async () => {
    const setup = await refusalSetup();
    const before = await setup.refusals();
    const { waiter, answer } = await queuedAfterRefusal(setup, before);

    // Draining the full backend leaves only the one that refused: nothing to wait for.
    expect((await fetch(`${setup.d.adminUrl}/backends/${setup.echoId}/drain`, { method: 'POST' })).status).toBe(200);
    expect(await answer).toBe(false);
    expect(waiter.socket.destroyed).toBe(true);
    // The worker closes the client, then takes it out of the queue: poll for the second.
    const queue = await eventually(async () => (await getJson<ClusterJson[]>(`${setup.d.adminUrl}/clusters`))[0]?.queue, (q) => q?.['length'] === 0);
    expect(queue).toMatchObject({ length: 0, queued_total: 1, timed_out_total: 0, served_after_wait_total: 0 });
    const listener = await getJson<{ refused_total: Record<string, number> }>(`${setup.d.adminUrl}/listeners/web`);
    expect(listener.refused_total['all_backends_failed']).toBe(1);
    expect(await setup.refusals()).toBe(before + 1);
  });
});
