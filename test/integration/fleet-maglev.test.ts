/**
 * Consistent hashing across a fleet, through three real daemons on the same cluster config
 * whose backends were added through the admin API in different orders: a client address
 * lands on the same backend whichever instance takes it, and a drain on one instance moves
 * only the drained backend's clients, and only on that instance.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { hashAddress } from '../../src/shared/balancer/hash.ts';
import { buildMaglevTable, DEFAULT_MAGLEV_TABLE_SIZE, pickMaglev } from '../../src/shared/balancer/maglev.ts';
import { startBackend, type TestBackend } from '../helpers/backends.ts';
import { eventually, getJson } from '../helpers/client.ts';
import { startDaemon, type Daemon } from '../helpers/daemon.ts';
import { exchange } from '../helpers/edge.ts';
import { freePorts } from '../helpers/ports.ts';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** 127.0.0.2 … 127.0.0.20: distinct client addresses on the loopback network. */
const CLIENTS = Array.from({ length: 19 }, (_, i) => `127.0.0.${i + 2}`);

interface Instance {
  readonly daemon: Daemon;
  readonly port: number;
}

function config(port: number, adminPort: number): string {
  return `workers: 1
admin: {listen: 127.0.0.1:${adminPort}}
shutdown: {drain_timeout: 2s}
listeners:
  - name: web
    listen: 127.0.0.1:${port}
    cluster: web
clusters:
  - name: web
    algorithm: consistent_hash
    hash_key: source_ip
    backends: []
`;
}

async function post(instance: Instance, path: string, body?: unknown): Promise<number> {
  const response = await fetch(`${instance.daemon.adminUrl}${path}`, {
    method: 'POST',
    ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  });
  await response.text();
  return response.status;
}

/** Wait until the instance's snapshot has `eligible` eligible backends in cluster web. */
async function untilEligible(instance: Instance, eligible: number): Promise<void> {
  const read = async (): Promise<number> => (await getJson<{ eligible: number }[]>(`${instance.daemon.adminUrl}/clusters`))[0]?.eligible ?? -1;
  expect(await eventually(read, (n) => n === eligible)).toBe(eligible);
}

/** Add the backends to the instance in this order, and wait until all of them are routed to. */
async function addInOrder(instance: Instance, backends: readonly TestBackend[], order: readonly number[]): Promise<void> {
  for (const i of order) expect(await post(instance, '/backends', { cluster: 'web', address: backends[i]!.address })).toBe(201);
  await untilEligible(instance, backends.length);
}

/** The backend (its address) each client lands on through this instance. */
async function landings(instance: Instance): Promise<Map<string, string>> {
  const landed = new Map<string, string>();
  for (const client of CLIENTS) {
    const { reply } = await exchange(instance.port, client, Buffer.from('x'));
    landed.set(client, reply.toString());
  }
  return landed;
}

describe('consistent hashing across a fleet', () => {
  it('lands each client on the same backend on every instance, and a drain on one instance moves only the drained backend’s clients there', async () => {
    const backends = await Promise.all(Array.from({ length: 5 }, async () => startBackend('name')));
    for (const b of backends) cleanups.push(async () => b.close());
    const ports = await freePorts(6);
    const instances: Instance[] = [];
    for (let i = 0; i < 3; i++) {
      const port = ports[2 * i]!;
      const daemon = await startDaemon(config(port, ports[2 * i + 1]!), ports[2 * i + 1]!);
      cleanups.push(async () => daemon.stop('SIGKILL'));
      instances.push({ daemon, port });
    }
    const [a, b, c] = instances as [Instance, Instance, Instance];
    await addInOrder(a, backends, [0, 1, 2, 3, 4]);
    await addInOrder(b, backends, [4, 3, 2, 1, 0]);
    await addInOrder(c, backends, [2, 0, 4, 1, 3]);

    const onA = await landings(a);
    expect(await landings(b)).toEqual(onA);
    expect(await landings(c)).toEqual(onA);
    // The mapping is the one any process computes from the ids alone, and it spreads the clients.
    const table = buildMaglevTable(
      backends.map((backend) => ({ key: `web:${backend.address}`, weight: 1 })),
      DEFAULT_MAGLEV_TABLE_SIZE,
    );
    for (const [client, landed] of onA) expect(landed).toBe(backends[pickMaglev(table, hashAddress(client))]!.address);
    expect(new Set(onA.values()).size).toBeGreaterThanOrEqual(3);

    // Drain, on b only, the backend with the most clients.
    const counts = new Map<string, number>();
    for (const landed of onA.values()) counts.set(landed, (counts.get(landed) ?? 0) + 1);
    const [drained] = [...counts].sort((x, y) => y[1] - x[1])[0]!;
    expect(await post(b, `/backends/web:${drained}/drain`)).toBe(200);
    await untilEligible(b, backends.length - 1);

    const onB = await landings(b);
    for (const [client, landed] of onA) {
      if (landed === drained) expect(onB.get(client)).not.toBe(drained);
      else expect(onB.get(client)).toBe(landed);
    }
    expect(await landings(a)).toEqual(onA);
    expect(await landings(c)).toEqual(onA);
  });
});
