/**
 * DNS discovery end to end: the real daemon, a real dnsmasq on a loopback port, real
 * backends on 127.0.0.2/127.0.0.3 (A records carry no port, so each backend has its own
 * loopback address on one port), and a client loop that must see no failure through every
 * change: a record added, a record removed, the DNS server gone.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startBackend } from '../helpers/backends.ts';
import { clientLoop, eventually, getJson, roundTrip } from '../helpers/client.ts';
import { startDaemon } from '../helpers/daemon.ts';
import { startDnsmasq } from '../helpers/dnsmasq.ts';
import { freePort, freePorts } from '../helpers/ports.ts';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A backend on `host:port` that answers every connection with its own address. */
async function namedBackend(host: string, port: number): Promise<{ accepted: () => number }> {
  let accepted = 0;
  const open = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    accepted++;
    open.add(socket);
    socket.on('close', () => open.delete(socket));
    socket.on('error', () => socket.destroy());
    // Read (and drop) what the client sends, so its FIN is seen and the socket closes.
    socket.resume();
    socket.end(`${host}:${port}`);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  cleanups.push(async () => {
    for (const s of open) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  return { accepted: () => accepted };
}

interface BackendRow {
  id: string;
  state: string;
}

interface ClusterRow {
  name: string;
  source: string;
  discovery?: { up: boolean; synced: boolean; last_error: string | null; answer: { address: string }[] };
}

describe('DNS discovery (real dnsmasq)', () => {
  it('follows A records as they come and go, keeps the last set when DNS is down, and no client connection fails', async () => {
    const backendPort = await freePort();
    const a = await namedBackend('127.0.0.2', backendPort);
    const b = await namedBackend('127.0.0.3', backendPort);
    const dns = await startDnsmasq({ hosts: ['127.0.0.2 api.sluice.test'], localTtl: 1 });
    cleanups.push(async () => dns.stop());
    const [listenPort, adminPort] = (await freePorts(2)) as [number, number];
    const daemon = await startDaemon(
      `workers: 2
admin: {listen: 127.0.0.1:${adminPort}}
listeners: [{name: api, listen: 127.0.0.1:${listenPort}, cluster: api}]
clusters:
  - name: api
    drain_timeout: 5s
    discovery:
      type: dns
      name: api.sluice.test
      record: a
      port: ${backendPort}
      resolvers: [${dns.address}]
      refresh: {min: 200ms, max: 1s, default: 500ms}
      hold_obsolete: 1s
`,
      adminPort,
    );
    cleanups.push(async () => daemon.stop('SIGKILL'));
    const url = daemon.adminUrl;
    const backends = async () => getJson<BackendRow[]>(`${url}/backends`);
    const states = async () => Object.fromEntries((await backends()).map((r) => [r.id, r.state]));
    const idA = `api:127.0.0.2:${backendPort}`;
    const idB = `api:127.0.0.3:${backendPort}`;

    // Ready only once the source answered: the cluster already holds the answer.
    await eventually(async () => (await fetch(`${url}/readyz`)).status, (s) => s === 200);
    expect(await states()).toEqual({ [idA]: 'healthy' });
    expect((await roundTrip(listenPort, Buffer.alloc(0))).toString()).toBe(`127.0.0.2:${backendPort}`);

    const loop = clientLoop(listenPort, 4);
    cleanups.push(async () => loop.stop());

    // A record added: the new backend takes connections.
    const added = Date.now();
    await dns.setHosts(['127.0.0.2 api.sluice.test', '127.0.0.3 api.sluice.test']);
    await eventually(() => Promise.resolve(b.accepted()), (n) => n > 0, 15_000);
    console.log(`DNS change -> first connection routed to the new backend: ${Date.now() - added} ms (refresh min 200 ms, TTL 1 s)`);

    // A record removed: drains at once, removed after hold_obsolete. The drain lasts only the
    // hold (1 s), so its steps are read from the backend's history rather than caught live.
    await dns.setHosts(['127.0.0.3 api.sluice.test']);
    await eventually(states, (s) => !(idA in s) && s[idB] === 'healthy', 15_000);
    const history = await getJson<{ transitions: { from: string; to: string; reason: string }[] }>(`${url}/backends/${encodeURIComponent(idA)}/history`);
    const drained = history.transitions.find((t) => t.from === 'healthy' && t.to === 'draining');
    expect(drained?.reason).toMatch(/gone from the dns a api\.sluice\.test answer; removed after 1s/);
    expect(history.transitions.at(-1)?.to).toBe('removed');
    const routedToA = a.accepted();

    // DNS down: the last known set stays, the outage shows in /clusters and /metrics.
    await dns.stop();
    const down = await eventually(
      async () => (await getJson<ClusterRow[]>(`${url}/clusters`)).find((c) => c.name === 'api'),
      (c) => c?.discovery?.up === false,
      15_000,
    );
    expect(down).toMatchObject({ source: 'discovery', discovery: { synced: true, answer: [{ address: `127.0.0.3:${backendPort}` }] } });
    expect(down?.discovery?.last_error).toBeTruthy();
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toMatch(/^sluice_discovery_up\{cluster="api"\} 0$/m);
    expect(metrics).toMatch(/^sluice_discovery_refreshes_total\{cluster="api",result="error"\} [1-9]/m);
    expect(metrics).toMatch(/^sluice_cluster_backends\{cluster="api",source="discovery"\} 1$/m);
    expect(await states()).toEqual({ [idB]: 'healthy' });

    const { ok, failed } = await loop.stop();
    expect(failed).toEqual([]);
    expect(ok).toBeGreaterThan(0);
    expect(a.accepted()).toBe(routedToA);

    // One source per cluster: backends of a discovered cluster are not added by hand.
    const refused = await fetch(`${url}/backends`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ cluster: 'api', address: '127.0.0.9:1' }) });
    expect(refused.status).toBe(409);
    expect(((await refused.json()) as { message: string }).message).toMatch(/takes its backends from discovery \(dns a api\.sluice\.test\)/);
  });

  it('SRV: the backup tier takes connections only while the primary tier is down', async () => {
    const [primaryPort, backupPort] = (await freePorts(2)) as [number, number];
    const primary = await startBackend('name', primaryPort);
    cleanups.push(async () => primary.close());
    const backup = await startBackend('name', backupPort);
    cleanups.push(async () => backup.close());
    const dns = await startDnsmasq({
      hosts: ['127.0.0.1 node.sluice.test'],
      srv: [`_api._tcp.sluice.test,node.sluice.test,${primaryPort},10,5`, `_api._tcp.sluice.test,node.sluice.test,${backupPort},20,5`],
    });
    cleanups.push(async () => dns.stop());
    const [listenPort, adminPort] = (await freePorts(2)) as [number, number];
    const daemon = await startDaemon(
      `workers: 1
admin: {listen: 127.0.0.1:${adminPort}}
listeners: [{name: api, listen: 127.0.0.1:${listenPort}, cluster: api}]
clusters:
  - name: api
    health_check: {type: tcp, interval: 300ms, timeout: 200ms, rise: 1, fall: 1}
    discovery: {type: dns, name: _api._tcp.sluice.test, record: srv, resolvers: [${dns.address}]}
`,
      adminPort,
    );
    cleanups.push(async () => daemon.stop('SIGKILL'));
    await eventually(async () => (await fetch(`${daemon.adminUrl}/readyz`)).status, (s) => s === 200);
    // Health probes connect to both tiers; only the replies tell who served a client.
    const served = async (): Promise<string> => (await roundTrip(listenPort, Buffer.alloc(0))).toString();
    for (let i = 0; i < 10; i++) expect(await served()).toBe(primary.address);

    // The primary tier goes down: once its probe fails, the backup tier takes over.
    await primary.close();
    await eventually(async () => served().catch(() => 'refused'), (who) => who === backup.address, 15_000);
    const backend = (await getJson<{ id: string; state: string; reason: string }[]>(`${daemon.adminUrl}/backends`)).find((b) => b.id === `api:127.0.0.1:${primaryPort}`);
    expect(backend?.state).not.toBe('healthy');
  });

  it('stays not ready while its source has never answered', async () => {
    const dnsPort = await freePort(); // nothing listens there: every lookup times out or is refused
    const [listenPort, adminPort] = (await freePorts(2)) as [number, number];
    const daemon = await startDaemon(
      `admin: {listen: 127.0.0.1:${adminPort}}
listeners: [{name: api, listen: 127.0.0.1:${listenPort}, cluster: api}]
clusters:
  - name: api
    discovery: {type: dns, name: api.sluice.test, record: a, port: 80, resolvers: [127.0.0.1:${dnsPort}], refresh: {min: 100ms, max: 500ms, default: 200ms}}
`,
      adminPort,
    );
    cleanups.push(async () => daemon.stop('SIGKILL'));
    const failing = await eventually(
      async () => (await getJson<ClusterRow[]>(`${daemon.adminUrl}/clusters`)).find((c) => c.name === 'api'),
      (c) => (c?.discovery?.last_error ?? null) !== null,
      15_000,
    );
    expect(failing?.discovery?.synced).toBe(false);
    const ready = await fetch(`${daemon.adminUrl}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toEqual({ status: 'starting', waiting_for: ['discovery:api'] });
  });
});
