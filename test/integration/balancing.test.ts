/**
 * Balancing and traffic policies through the real daemon (two data-plane workers) and real
 * sockets: weights, global least connections, consistent hashing, sticky sessions and the
 * canary split. Connection limits and the queue are in limits.test.ts.
 */
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { buildMaglevTable, DEFAULT_MAGLEV_TABLE_SIZE, pickMaglev } from '../../src/shared/balancer/maglev.ts';
import { hashAddress } from '../../src/shared/balancer/hash.ts';
import { startBackend, type TestBackend } from '../helpers/backends.ts';
import { clientLoop, eventually, getJson, manyRoundTrips, openEcho, type EchoConnection } from '../helpers/client.ts';
import { startDaemon, type Daemon } from '../helpers/daemon.ts';
import { freePorts } from '../helpers/ports.ts';
import type { ResourcesJson } from '../helpers/resources.ts';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function destroyAfter(sockets: readonly net.Socket[]): void {
  cleanups.push(() => {
    for (const socket of sockets) socket.destroy();
    return Promise.resolve();
  });
}

async function backends(n: number, behaviour: 'echo' | 'name'): Promise<TestBackend[]> {
  const started = await Promise.all(Array.from({ length: n }, async () => startBackend(behaviour)));
  for (const b of started) cleanups.push(async () => b.close());
  return started;
}

async function daemon(yaml: string, adminPort: number, configFile?: string): Promise<Daemon> {
  const started = await startDaemon(yaml, adminPort, configFile === undefined ? {} : { configFile });
  cleanups.push(async () => started.stop('SIGKILL'));
  return started;
}

interface ClusterSpec {
  name: string;
  algorithm?: string;
  extra?: string[];
  backends: { address: string; weight?: number | undefined }[];
}

function config(o: { port: number; adminPort: number; clusters: ClusterSpec[]; listener?: string }): string {
  const clusters = o.clusters
    .map((c) =>
      [
        `  - name: ${c.name}`,
        `    algorithm: ${c.algorithm ?? 'round_robin'}`,
        ...(c.extra ?? []).map((line) => `    ${line}`),
        '    backends:',
        ...c.backends.map((b) => `      - {address: ${b.address}, weight: ${b.weight ?? 1}}`),
      ].join('\n'),
    )
    .join('\n');
  return `workers: 2
admin: {listen: 127.0.0.1:${o.adminPort}}
shutdown: {drain_timeout: 2s}
listeners:
  - name: web
    listen: 127.0.0.1:${o.port}
    ${o.listener ?? `cluster: ${o.clusters[0]?.name ?? ''}`}
clusters:
${clusters}
`;
}

function shareOf(replies: readonly string[], address: string): number {
  return replies.filter((r) => r === address).length / replies.length;
}

/** Wait for the reload that follows now (log lines before `from` do not count). */
async function reload(d: Daemon, yaml: string): Promise<void> {
  const from = d.logs.length;
  writeFileSync(d.configFile, yaml);
  d.child.kill('SIGHUP');
  await d.waitForLog((l) => l.msg === 'config reloaded' && d.logs.indexOf(l) >= from);
}

/** Open sessions per data-plane worker, by worker index. */
async function sessionsByWorker(d: Daemon): Promise<number[]> {
  const { workers } = await getJson<ResourcesJson>(`${d.adminUrl}/debug/resources`);
  const counts = [0, 0];
  for (const w of workers) counts[w.worker] = w.connections;
  return counts;
}

/**
 * A backend that answers each connection with its address and keeps it open until the
 * client closes: the client learns where it landed while the connection still counts.
 */
async function namingBackends(n: number): Promise<TestBackend[]> {
  const started: TestBackend[] = [];
  for (let i = 0; i < n; i++) {
    const open = new Set<net.Socket>();
    const server = net.createServer({ allowHalfOpen: true }, (socket) => {
      backend.accepted++;
      open.add(socket);
      socket.on('close', () => open.delete(socket));
      socket.on('error', () => socket.destroy());
      socket.on('end', () => socket.end());
      socket.write(backend.address);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    const backend: TestBackend = {
      port,
      address: `127.0.0.1:${port}`,
      accepted: 0,
      open,
      close: async () => {
        for (const socket of open) socket.destroy();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      },
    };
    started.push(backend);
    cleanups.push(async () => backend.close());
  }
  return started;
}

/** Connect from `localAddress` and resolve with the first bytes (a naming backend's address). */
function landFrom(port: number, localAddress: string): Promise<{ socket: net.Socket; backend: string }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer for a client on ${localAddress}`));
    }, 10_000);
    socket.once('data', (chunk: Buffer) => {
      clearTimeout(timer);
      resolve({ socket, backend: chunk.toString() });
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

const CLIENT_ADDRESSES = Array.from({ length: 8 }, (_, i) => `127.0.0.${i + 2}`);

/** Each client address makes `perClient` held connections; returns the backends each landed on. */
async function landEverywhere(port: number, perClient: number): Promise<{ landed: Map<string, string[]>; sockets: net.Socket[] }> {
  const landed = new Map<string, string[]>();
  const sockets: net.Socket[] = [];
  for (const address of CLIENT_ADDRESSES) {
    // A client's first connection alone, then the rest at once.
    const results = [await landFrom(port, address)];
    results.push(...(await Promise.all(Array.from({ length: perClient - 1 }, async () => landFrom(port, address)))));
    landed.set(
      address,
      results.map((r) => r.backend),
    );
    sockets.push(...results.map((r) => r.socket));
  }
  destroyAfter(sockets);
  return { landed, sockets };
}

describe('weighted round robin', () => {
  it('splits 2,000 connections 25% / 75% ± 3% for weights 1:3, across both workers', async () => {
    const [light, heavy] = await backends(2, 'name');
    const [port, adminPort] = await freePorts(2);
    await daemon(
      config({ port: port!, adminPort: adminPort!, clusters: [{ name: 'web', backends: [{ address: light!.address, weight: 1 }, { address: heavy!.address, weight: 3 }] }] }),
      adminPort!,
    );
    const replies = await manyRoundTrips(port!, 2_000, 40);
    expect(replies.every((r) => r === light!.address || r === heavy!.address)).toBe(true);
    const share = shareOf(replies, light!.address);
    console.log(`weights 1:3 over 2,000 connections: ${(share * 100).toFixed(1)}% / ${((1 - share) * 100).toFixed(1)}%`);
    expect(Math.abs(share - 0.25)).toBeLessThanOrEqual(0.03);
    // Both workers accepted connections (each keeps its own rotation).
    expect(light!.accepted + heavy!.accepted).toBe(2_000);
  });

  it('sends nothing to a backend of weight 0', async () => {
    const [zero, one] = await backends(2, 'name');
    const [port, adminPort] = await freePorts(2);
    await daemon(
      config({ port: port!, adminPort: adminPort!, clusters: [{ name: 'web', backends: [{ address: zero!.address, weight: 0 }, { address: one!.address, weight: 1 }] }] }),
      adminPort!,
    );
    const replies = await manyRoundTrips(port!, 200, 20);
    expect(new Set(replies)).toEqual(new Set([one!.address]));
    expect(zero!.accepted).toBe(0);
  });
});

describe('least connections, global across workers', () => {
  it('with 50 long connections held on one backend through one worker, sends the next connections accepted by the other worker elsewhere', async () => {
    const [a, b, c] = await backends(3, 'echo');
    const [port, adminPort] = await freePorts(2);
    const yaml = (weights: [number, number, number]): string =>
      config({
        port: port!,
        adminPort: adminPort!,
        clusters: [
          {
            name: 'web',
            algorithm: 'least_connections',
            backends: [a!, b!, c!].map((backend, i) => ({ address: backend.address, weight: weights[i] })),
          },
        ],
      });
    // Only A takes connections while the 50 are opened.
    const d = await daemon(yaml([1, 0, 0]), adminPort!);

    // Keep only connections that worker 0 accepted, so worker 1 has none of A's 50: if each
    // worker counted only its own connections, worker 1 would see A as idle.
    const held: EchoConnection[] = [];
    const heldSockets: net.Socket[] = [];
    destroyAfter(heldSockets);
    for (let attempt = 0; attempt < 400 && held.length < 50; attempt++) {
      const connection = await openEcho(port!);
      expect(await connection.exchange('x')).toBe('x');
      const [onWorker0] = await sessionsByWorker(d);
      if (onWorker0 === held.length + 1) {
        held.push(connection);
        heldSockets.push(connection.socket);
        continue;
      }
      connection.socket.destroy();
      await eventually(async () => sessionsByWorker(d), (counts) => counts[0] === held.length && counts[1] === 0, 10_000, 20);
    }
    expect(held.length).toBe(50);
    expect(a!.open.size).toBe(50);
    expect(await sessionsByWorker(d)).toEqual([50, 0]);

    await reload(d, yaml([1, 1, 1]));
    const fresh: net.Socket[] = [];
    destroyAfter(fresh);
    for (let i = 0; i < 40; i++) {
      const connection = await openEcho(port!);
      fresh.push(connection.socket);
      expect(await connection.exchange('y')).toBe('y');
    }
    const [, onWorker1] = await sessionsByWorker(d);
    console.log(`least_connections: 40 new connections, ${onWorker1} accepted by the worker that holds none of A's 50`);
    expect(onWorker1).toBeGreaterThanOrEqual(5);
    expect(a!.open.size).toBe(50);
    expect(b!.open.size + c!.open.size).toBe(40);
    expect(Math.abs(b!.open.size - c!.open.size)).toBeLessThanOrEqual(2);
  });
});

describe('consistent hashing on the source address', () => {
  it('lands each client address on the same backend every time, on every worker, and after a restart', async () => {
    const named = await namingBackends(3);
    const [port, adminPort] = await freePorts(2);
    const yaml = config({
      port: port!,
      adminPort: adminPort!,
      clusters: [{ name: 'web', algorithm: 'consistent_hash', extra: ['hash_key: source_ip'], backends: named.map((b) => ({ address: b.address })) }],
    });
    const first = await daemon(yaml, adminPort!);
    const run1 = await landEverywhere(port!, 6);
    // 48 held connections from 8 addresses, from varied source ports: both workers took some.
    const perWorker = await sessionsByWorker(first);
    expect(perWorker.every((n) => n > 0)).toBe(true);

    // The mapping is the Maglev table any process builds for this backend set (keyed by id).
    const table = buildMaglevTable(
      named.map((b) => ({ key: `web:${b.address}`, weight: 1 })),
      DEFAULT_MAGLEV_TABLE_SIZE,
    );
    for (const [address, landed] of run1.landed) {
      const expected = named[pickMaglev(table, hashAddress(address))]!.address;
      expect(landed).toEqual(Array.from({ length: 6 }, () => expected));
    }
    expect(new Set([...run1.landed.values()].map((l) => l[0])).size).toBeGreaterThan(1);

    // GET /clusters shows the table this mapping comes from.
    const [view] = await getJson<{ algorithm: string; hash_key: string; maglev: { table_size: number; shares: { address: string; share: number }[] } }[]>(
      `${first.adminUrl}/clusters`,
    );
    expect(view?.algorithm).toBe('consistent_hash');
    expect(view?.hash_key).toBe('source_ip');
    expect(view?.maglev.table_size).toBe(DEFAULT_MAGLEV_TABLE_SIZE);
    expect(view?.maglev.shares.map((s) => s.address).sort()).toEqual(named.map((b) => b.address).sort());
    for (const share of view?.maglev.shares ?? []) expect(Math.abs(share.share - 1 / 3)).toBeLessThanOrEqual(0.01);

    for (const socket of run1.sockets) socket.destroy();
    expect(await first.stop('SIGTERM')).toBe(0);
    await daemon(yaml, adminPort!, first.configFile);
    const run2 = await landEverywhere(port!, 3);
    for (const [address, landed] of run2.landed) {
      expect(landed).toEqual(Array.from({ length: 3 }, () => run1.landed.get(address)![0]));
    }
  });
});

describe('sticky sessions', () => {
  it('keeps each client on its backend across workers and when backends are added, and moves it when its backend leaves rotation', async () => {
    const named = await namingBackends(4);
    const [port, adminPort] = await freePorts(2);
    const yaml = (members: { address: string; weight?: number | undefined }[]): string =>
      config({
        port: port!,
        adminPort: adminPort!,
        clusters: [{ name: 'web', algorithm: 'round_robin', extra: ['sticky: {ttl: 10m, max_entries: 1000}'], backends: members }],
      });
    const three = named.slice(0, 3).map((b) => ({ address: b.address }));
    const d = await daemon(yaml(three), adminPort!);

    // Round robin alone would rotate each client over all three backends.
    const before = await landEverywhere(port!, 5);
    expect((await sessionsByWorker(d)).every((n) => n > 0)).toBe(true);
    const home = new Map<string, string>();
    for (const [address, landed] of before.landed) {
      expect(new Set(landed).size).toBe(1);
      home.set(address, landed[0]!);
    }
    expect(new Set(home.values()).size).toBeGreaterThan(1);

    await reload(d, yaml([...three, { address: named[3]!.address }]));
    const afterAdd = await landEverywhere(port!, 4);
    for (const [address, landed] of afterAdd.landed) expect(landed).toEqual(Array.from({ length: 4 }, () => home.get(address)));
    expect(named[3]!.accepted).toBe(0);

    // A backend out of rotation (weight 0) loses its clients to the others; they stay there.
    const leaving = home.get(CLIENT_ADDRESSES[0]!)!;
    await reload(d, yaml([...three, { address: named[3]!.address }].map((b) => (b.address === leaving ? { ...b, weight: 0 } : b))));
    const moved = await landEverywhere(port!, 3);
    for (const [address, landed] of moved.landed) {
      if (home.get(address) === leaving) {
        expect(landed[0]).not.toBe(leaving);
        expect(new Set(landed).size).toBe(1);
      } else {
        expect(landed).toEqual(Array.from({ length: 3 }, () => home.get(address)));
      }
    }
  });
});

describe('sticky sessions on a cluster added by reload', () => {
  it('pins clients once the workers have the new cluster’s shared table', async () => {
    const named = await namingBackends(3);
    const [port, adminPort] = await freePorts(2);
    const plain = config({ port: port!, adminPort: adminPort!, clusters: [{ name: 'web', backends: [{ address: named[0]!.address }] }] });
    const d = await daemon(plain, adminPort!);
    // The listener moves to a new cluster that did not exist at start, with sticky sessions.
    await reload(
      d,
      config({
        port: port!,
        adminPort: adminPort!,
        listener: 'cluster: pinned',
        clusters: [
          { name: 'web', backends: [{ address: named[0]!.address }] },
          { name: 'pinned', extra: ['sticky: {ttl: 1m, max_entries: 100}'], backends: named.map((b) => ({ address: b.address })) },
        ],
      }),
    );
    const { landed } = await landEverywhere(port!, 4);
    for (const [, backends] of landed) expect(new Set(backends).size).toBe(1);
    expect(new Set([...landed.values()].map((b) => b[0])).size).toBeGreaterThan(1);
  });
});

describe('canary split', () => {
  it('sends 90% / 10% ± 2% of 5,000 connections, and moves the split by reload and by the API while traffic flows with no failed connection', async () => {
    const [stable] = await backends(1, 'name');
    const [canary] = await backends(1, 'name');
    const [port, adminPort] = await freePorts(2);
    const yaml = (stableWeight: number, canaryWeight: number): string =>
      config({
        port: port!,
        adminPort: adminPort!,
        listener: `routes: [{cluster: web, weight: ${stableWeight}}, {cluster: canary, weight: ${canaryWeight}}]`,
        clusters: [
          { name: 'web', backends: [{ address: stable!.address }] },
          { name: 'canary', backends: [{ address: canary!.address }] },
        ],
      });
    const d = await daemon(yaml(90, 10), adminPort!);
    const replies = await manyRoundTrips(port!, 5_000, 40);
    const canaryShare = shareOf(replies, canary!.address);
    console.log(`canary 90/10 over 5,000 connections: ${(canaryShare * 100).toFixed(2)}% to the canary`);
    expect(shareOf(replies, stable!.address) + canaryShare).toBe(1);
    expect(Math.abs(canaryShare - 0.1)).toBeLessThanOrEqual(0.02);

    // Connections in flight before, during and after the change.
    const traffic = clientLoop(port!, 10);
    await traffic.after(50);
    await reload(d, yaml(50, 50));
    await traffic.after(50);
    const { ok, failed } = await traffic.stop();
    expect(failed).toEqual([]);
    expect(ok).toBeGreaterThan(0);

    const after = await manyRoundTrips(port!, 1_000, 40);
    expect(Math.abs(shareOf(after, canary!.address) - 0.5)).toBeLessThanOrEqual(0.05);

    // The admin API moves it too, while traffic flows: PATCH /listeners/web/routes.
    const more = clientLoop(port!, 10);
    await more.after(50);
    const response = await fetch(`${d.adminUrl}/listeners/web/routes`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ routes: [{ cluster: 'web', weight: 20 }, { cluster: 'canary', weight: 80 }] }),
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ name: 'web', routes: [{ cluster: 'web', weight: 20 }, { cluster: 'canary', weight: 80 }] });
    await more.after(50);
    const during = await more.stop();
    expect(during.failed).toEqual([]);
    const patched = await manyRoundTrips(port!, 1_000, 40);
    console.log(`canary after PATCH 20/80: ${(shareOf(patched, canary!.address) * 100).toFixed(1)}% to the canary`);
    expect(Math.abs(shareOf(patched, canary!.address) - 0.8)).toBeLessThanOrEqual(0.05);
    const listeners = await getJson<{ name: string; routes: unknown }[]>(`${d.adminUrl}/listeners`);
    expect(listeners.map(({ name, routes }) => ({ name, routes }))).toEqual([
      { name: 'web', routes: [{ cluster: 'web', weight: 20 }, { cluster: 'canary', weight: 80 }] },
    ]);
  });
});
