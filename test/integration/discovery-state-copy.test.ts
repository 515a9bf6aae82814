/**
 * Readiness from the state file's copy of a discovered cluster's last answer: a daemon that
 * ran with its DNS server up keeps the answer in its state file; a restart while the server
 * is down becomes ready at the first failed lookup and routes to the copy's backend. Without
 * a copy it stays not ready, waiting for that cluster. Real daemon, real dnsmasq, real bytes.
 */
import { mkdtempSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startBackend } from '../helpers/backends.ts';
import { eventually, getJson, roundTrip } from '../helpers/client.ts';
import { startDaemon } from '../helpers/daemon.ts';
import { startDnsmasq } from '../helpers/dnsmasq.ts';
import { freePort, freePorts } from '../helpers/ports.ts';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface ClusterRow {
  name: string;
  discovery?: { up: boolean; synced: boolean; from_copy: boolean; last_error: string | null; answer: { address: string }[] };
}

function config(adminPort: number, listenPort: number, resolver: string, stateFile: string): string {
  // SRV carries the backend's port, so the backend can be on 127.0.0.1 with a kernel port.
  return `workers: 1
admin: {listen: 127.0.0.1:${adminPort}}
state_file: ${stateFile}
listeners: [{name: api, listen: 127.0.0.1:${listenPort}, cluster: api}]
clusters:
  - name: api
    health_check: {type: none}
    discovery: {type: dns, name: _api._tcp.sluice.test, record: srv, resolvers: [${resolver}], refresh: {min: 100ms, max: 500ms, default: 200ms}}
`;
}

async function readIfThere(file: string): Promise<string> {
  return readFile(file, 'utf8').catch(() => '');
}

function tempStateFile(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'sluice-state-copy-'));
  cleanups.push(async () => rm(dir, { recursive: true, force: true }));
  return path.join(dir, 'state.json');
}

describe('discovery readiness from the state file copy', () => {
  it('a restart with DNS down serves the last answer kept in the state file: ready at the first error, and a connection reaches the backend', async () => {
    const backend = await startBackend('name');
    cleanups.push(async () => backend.close());
    const dns = await startDnsmasq({ srv: [`_api._tcp.sluice.test,localhost.sluice.test,${backend.port},0,1`], hosts: ['127.0.0.1 localhost.sluice.test'] });
    let dnsUp = true;
    cleanups.push(async () => (dnsUp ? dns.stop() : undefined));
    const stateFile = tempStateFile();

    const [adminPort, listenPort] = (await freePorts(2)) as [number, number];
    const first = await startDaemon(config(adminPort, listenPort, dns.address, stateFile), adminPort);
    cleanups.push(async () => first.stop('SIGKILL'));
    await eventually(async () => (await fetch(`${first.adminUrl}/readyz`)).status, (s) => s === 200, 15_000);
    // The answer reaches the file without any operator change.
    const kept = await eventually(async () => readIfThere(stateFile), (text) => text.includes(backend.address), 15_000);
    expect(JSON.parse(kept)).toMatchObject({ discovered: { api: { answer: [{ address: backend.address, tier: 0, condition: 'ready' }] } } });
    expect(await first.stop()).toBe(0);
    await dns.stop();
    dnsUp = false;

    const [adminPort2, listenPort2] = (await freePorts(2)) as [number, number];
    const second = await startDaemon(config(adminPort2, listenPort2, dns.address, stateFile), adminPort2);
    cleanups.push(async () => second.stop('SIGKILL'));
    const ready = await eventually(async () => fetch(`${second.adminUrl}/readyz`), (r) => r.status === 200, 20_000);
    expect(ready.status).toBe(200);
    const cluster = (await getJson<ClusterRow[]>(`${second.adminUrl}/clusters`)).find((c) => c.name === 'api');
    expect(cluster?.discovery).toMatchObject({ up: false, synced: false, from_copy: true, answer: [{ address: backend.address }] });
    expect(cluster?.discovery?.last_error).toBeTruthy();
    const accepted = backend.accepted;
    expect((await roundTrip(listenPort2, Buffer.alloc(0))).toString()).toBe(backend.address);
    expect(backend.accepted).toBe(accepted + 1);
    expect(second.logs.some((l) => l.msg.includes("serving the state file's copy"))).toBe(true);
  });

  it('without a copy in the state file, a failing source keeps the process not ready, waiting for that cluster', async () => {
    const dnsPort = await freePort(); // nothing listens there: every lookup fails
    const [adminPort, listenPort] = (await freePorts(2)) as [number, number];
    const daemon = await startDaemon(config(adminPort, listenPort, `127.0.0.1:${dnsPort}`, tempStateFile()), adminPort);
    cleanups.push(async () => daemon.stop('SIGKILL'));
    await eventually(
      async () => (await getJson<ClusterRow[]>(`${daemon.adminUrl}/clusters`)).find((c) => c.name === 'api'),
      (c) => (c?.discovery?.last_error ?? null) !== null,
      15_000,
    );
    const readyz = await fetch(`${daemon.adminUrl}/readyz`);
    expect(readyz.status).toBe(503);
    expect(await readyz.json()).toEqual({ status: 'starting', waiting_for: ['discovery:api'] });
  });
});
