import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startBackend, type TestBackend } from '../helpers/backends.ts';
import { eventually, getJson, openEcho, roundTrip, tryConnect } from '../helpers/client.ts';
import { startDaemon, type Daemon } from '../helpers/daemon.ts';
import { freePorts } from '../helpers/ports.ts';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function echoBackends(n: number, behaviour: 'echo' | 'name' = 'echo'): Promise<TestBackend[]> {
  const started = await Promise.all(Array.from({ length: n }, async () => startBackend(behaviour)));
  for (const b of started) cleanups.push(async () => b.close());
  return started;
}

async function daemon(yaml: string, adminPort: number, options: Parameters<typeof startDaemon>[2] = {}): Promise<Daemon> {
  const started = await startDaemon(yaml, adminPort, options);
  cleanups.push(async () => started.stop('SIGKILL'));
  return started;
}

interface ListenerSpec {
  name: string;
  port: number;
  cluster: string;
}

function config(o: {
  adminPort: number;
  listeners: ListenerSpec[];
  clusters: Record<string, string[]>;
  drainTimeout?: string;
  delay?: string;
}): string {
  const listeners = o.listeners.map((l) => `  - {name: ${l.name}, listen: 127.0.0.1:${l.port}, cluster: ${l.cluster}}`).join('\n');
  const clusters = Object.entries(o.clusters)
    .map(([name, addresses]) => `  - name: ${name}\n    backends:\n${addresses.map((a) => `      - {address: ${a}}`).join('\n')}`)
    .join('\n');
  return `workers: 2
admin: {listen: 127.0.0.1:${o.adminPort}}
shutdown: {drain_timeout: ${o.drainTimeout ?? '10s'}, delay: ${o.delay ?? '0s'}}
listeners:
${listeners}
clusters:
${clusters}
`;
}

describe('graceful drain', () => {
  it('on SIGTERM turns /readyz 503 at once, refuses new connections, lets open ones finish, exits 0', async () => {
    const [echo] = await echoBackends(1);
    const [port, adminPort] = await freePorts(2);
    const d = await daemon(config({ adminPort: adminPort!, listeners: [{ name: 'web', port: port!, cluster: 'web' }], clusters: { web: [echo!.address] }, delay: '300ms' }), adminPort!);
    const held = await Promise.all([openEcho(port!), openEcho(port!), openEcho(port!)]);
    for (const c of held) expect(await c.exchange('before')).toBe('before');

    const signalled = Date.now();
    d.child.kill('SIGTERM');
    // Logged once the daemon has taken the signal, 300 ms before its listeners close.
    await d.waitForLog((l) => l.msg === 'draining: not ready; listeners close after the shutdown delay');
    const ready = await fetch(`${d.adminUrl}/readyz`);
    expect(ready.status).toBe(503);
    console.log(`readyz answered 503 ${Date.now() - signalled} ms after SIGTERM`);

    expect(await eventually(async () => tryConnect(port!), (code) => code === 'ECONNREFUSED', 10_000, 25)).toBe('ECONNREFUSED');
    for (const c of held) expect(await c.exchange('during drain, both ways')).toBe('during drain, both ways');
    expect(d.child.exitCode).toBeNull();

    for (const c of held) c.socket.end();
    expect(await d.exited).toBe(0);
    expect(d.logs.some((l) => l.msg === 'drained; exiting')).toBe(true);
  });

  it('cuts a connection that never closes at drain_timeout and exits 0', async () => {
    const [echo] = await echoBackends(1);
    const [port, adminPort] = await freePorts(2);
    const d = await daemon(config({ adminPort: adminPort!, listeners: [{ name: 'web', port: port!, cluster: 'web' }], clusters: { web: [echo!.address] }, drainTimeout: '1s' }), adminPort!);
    const stubborn = await openEcho(port!);
    expect(await stubborn.exchange('x')).toBe('x');
    const closed = new Promise((resolve) => stubborn.socket.once('close', resolve));
    const signalled = Date.now();
    d.child.kill('SIGTERM');
    await closed;
    expect(Date.now() - signalled).toBeGreaterThanOrEqual(900);
    expect(await d.exited).toBe(0);
    expect(d.logs.some((l) => l.msg.startsWith('drain timeout'))).toBe(true);
  });

  it('drains through POST /drain as through SIGTERM', async () => {
    const [echo] = await echoBackends(1);
    const [port, adminPort] = await freePorts(2);
    const d = await daemon(config({ adminPort: adminPort!, listeners: [{ name: 'web', port: port!, cluster: 'web' }], clusters: { web: [echo!.address] } }), adminPort!);
    const response = await fetch(`${d.adminUrl}/drain`, { method: 'POST' });
    expect(response.status).toBe(202);
    expect(await d.exited).toBe(0);
  });
});

describe('SIGHUP reload', () => {
  it('adds a backend and a listener, removes another listener, and keeps a held connection working', async () => {
    const [echoA, echoB] = await echoBackends(2);
    const [named] = await echoBackends(1, 'name');
    const [keptPort, removedPort, addedPort, adminPort] = await freePorts(4);
    const before = config({
      adminPort: adminPort!,
      listeners: [
        { name: 'kept', port: keptPort!, cluster: 'echo' },
        { name: 'removed', port: removedPort!, cluster: 'echo' },
      ],
      clusters: { echo: [echoA!.address] },
    });
    const d = await daemon(before, adminPort!);
    const held = await openEcho(keptPort!);
    expect(await held.exchange('one')).toBe('one');

    writeFileSync(
      d.configFile,
      config({
        adminPort: adminPort!,
        listeners: [
          { name: 'kept', port: keptPort!, cluster: 'echo' },
          { name: 'added', port: addedPort!, cluster: 'named' },
        ],
        clusters: { echo: [echoA!.address, echoB!.address], named: [named!.address] },
      }),
    );
    d.child.kill('SIGHUP');
    await d.waitForLog((l) => l.msg === 'config reloaded');

    expect(await held.exchange('two')).toBe('two');
    expect((await roundTrip(addedPort!, Buffer.from('hi'))).toString()).toBe(named!.address);
    expect(await eventually(async () => tryConnect(removedPort!), (code) => code === 'ECONNREFUSED', 10_000, 25)).toBe('ECONNREFUSED');
    // The added backend takes new connections of the kept listener.
    const acceptedBefore = echoB!.accepted;
    await Promise.all(Array.from({ length: 6 }, async () => roundTrip(keptPort!, Buffer.from('x'))));
    expect(echoB!.accepted).toBeGreaterThan(acceptedBefore);
    expect(await held.exchange('three')).toBe('three');
    held.socket.destroy();
  });

  it('does not open a listener it adds on a port another process shares through SO_REUSEPORT, and opens the others', async () => {
    const [echo] = await echoBackends(1);
    const [port, sharedPort, freePort, adminPort] = await freePorts(4);
    const squatter = net.createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => squatter.listen({ port: sharedPort, host: '127.0.0.1', reusePort: true }, resolve));
    cleanups.push(async () => new Promise((resolve) => squatter.close(resolve)));
    const listeners = [{ name: 'web', port: port!, cluster: 'web' }];
    const d = await daemon(config({ adminPort: adminPort!, listeners, clusters: { web: [echo!.address] } }), adminPort!);
    const added = [...listeners, { name: 'shared', port: sharedPort!, cluster: 'web' }, { name: 'fresh', port: freePort!, cluster: 'web' }];
    writeFileSync(d.configFile, config({ adminPort: adminPort!, listeners: added, clusters: { web: [echo!.address] } }));

    const reloaded = await fetch(`${d.adminUrl}/config/reload`, { method: 'POST' });
    expect(reloaded.status).toBe(200);
    expect(((await reloaded.json()) as { failures: string[] }).failures).toEqual([`listener shared: 127.0.0.1:${sharedPort} is already in use (EADDRINUSE)`]);
    expect((await roundTrip(freePort!, Buffer.from('fresh'))).toString()).toBe('fresh');
    expect((await roundTrip(port!, Buffer.from('web'))).toString()).toBe('web');
  });

  it('rejects a broken config whole, keeps serving, and reports the errors', async () => {
    const [echo] = await echoBackends(1);
    const [port, adminPort] = await freePorts(2);
    const good = config({ adminPort: adminPort!, listeners: [{ name: 'web', port: port!, cluster: 'web' }], clusters: { web: [echo!.address] } });
    const d = await daemon(good, adminPort!);
    writeFileSync(d.configFile, good.replace('cluster: web', 'cluster: nowhere'));
    d.child.kill('SIGHUP');
    const rejected = await d.waitForLog((l) => l.msg === 'reload rejected: the running config stays');
    expect(JSON.stringify(rejected)).toContain('listeners[0].cluster: unknown cluster \\"nowhere\\"');
    expect((await roundTrip(port!, Buffer.from('still here'))).toString()).toBe('still here');

    const viaApi = await fetch(`${d.adminUrl}/config/reload`, { method: 'POST' });
    expect(viaApi.status).toBe(400);
    expect(((await viaApi.json()) as { message: string }).message).toContain('unknown cluster "nowhere"');
    expect((await getJson<unknown[]>(`${d.adminUrl}/backends`)).length).toBe(1);
  });

  it('drains a backend the file no longer declares: its open connection keeps flowing, then it is gone', async () => {
    const [stay, leave] = await echoBackends(2);
    const [port, adminPort] = await freePorts(2);
    const listeners = [{ name: 'web', port: port!, cluster: 'web' }];
    const d = await daemon(config({ adminPort: adminPort!, listeners, clusters: { web: [stay!.address, leave!.address] } }), adminPort!);
    const held = await Promise.all(Array.from({ length: 4 }, async () => openEcho(port!)));
    for (const c of held) expect(await c.exchange('a')).toBe('a');
    expect(leave!.open.size).toBeGreaterThan(0);

    writeFileSync(d.configFile, config({ adminPort: adminPort!, listeners, clusters: { web: [stay!.address] } }));
    d.child.kill('SIGHUP');
    await d.waitForLog((l) => l.msg === 'config reloaded');
    type View = { address: string; state: string };
    const during = await getJson<View[]>(`${d.adminUrl}/backends`);
    expect(during.find((b) => b.address === leave!.address)?.state).toBe('draining');
    expect(during.find((b) => b.address === stay!.address)?.state).toBe('healthy');
    const acceptedBefore = leave!.accepted;
    await Promise.all(Array.from({ length: 6 }, async () => roundTrip(port!, Buffer.from('x'))));
    expect(leave!.accepted).toBe(acceptedBefore);
    for (const c of held) expect(await c.exchange('still flowing')).toBe('still flowing');

    for (const c of held) c.socket.end();
    const after = await eventually(
      async () => getJson<View[]>(`${d.adminUrl}/backends`),
      (list) => list.length === 1,
      10_000,
      25,
    );
    expect(after.map((b) => b.address)).toEqual([stay!.address]);
  });
});
