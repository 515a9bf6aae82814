import { afterEach, describe, expect, it } from 'vitest';
import { startBackend } from '../helpers/backends.ts';
import { getJson } from '../helpers/client.ts';
import { startDaemon } from '../helpers/daemon.ts';
import { freePorts } from '../helpers/ports.ts';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('backend addresses', () => {
  it('refuses a wildcard address, a host name that does not resolve, and a second spelling of an endpoint the cluster has', async () => {
    const backend = await startBackend('echo');
    cleanups.push(async () => backend.close());
    const [listenPort, adminPort] = (await freePorts(2)) as [number, number];
    const daemon = await startDaemon(
      `admin: {listen: 127.0.0.1:${adminPort}}
listeners: [{name: web, listen: 127.0.0.1:${listenPort}, cluster: web}]
clusters:
  - name: web
    backends: [{address: ${backend.address}}]
`,
      adminPort,
    );
    cleanups.push(async () => daemon.stop('SIGKILL'));
    const add = async (address: string) => {
      const response = await fetch(`${daemon.adminUrl}/backends`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ cluster: 'web', address }) });
      return { status: response.status, body: (await response.json()) as { error: string; message: string } };
    };

    const wildcard = await add(`0.0.0.0:${backend.port}`);
    expect(wildcard.status).toBe(400);
    expect(wildcard.body.message).toMatch(/0\.0\.0\.0 means every interface, not a host to connect to/);

    const unresolvable = await add('no-such-backend.invalid:9001');
    expect(unresolvable).toMatchObject({ status: 400, body: { error: 'BAD_REQUEST' } });
    expect(unresolvable.body.message).toMatch(/host "no-such-backend\.invalid" does not resolve/);

    const alias = await add(`localhost:${backend.port}`);
    expect(alias).toMatchObject({ status: 409, body: { error: 'CONFLICT' } });
    expect(alias.body.message).toContain(`cluster web already has this endpoint as web:${backend.address} (both reach 127.0.0.1:${backend.port})`);

    expect((await getJson<unknown[]>(`${daemon.adminUrl}/backends`)).length).toBe(1);
  });

  it('starts a backend whose host name does not resolve out of rotation, saying why', async () => {
    const [listenPort, adminPort] = (await freePorts(2)) as [number, number];
    const daemon = await startDaemon(
      `admin: {listen: 127.0.0.1:${adminPort}}
listeners: [{name: web, listen: 127.0.0.1:${listenPort}, cluster: web}]
clusters:
  - name: web
    backends: [{address: "no-such-backend.invalid:9001"}]
`,
      adminPort,
    );
    cleanups.push(async () => daemon.stop('SIGKILL'));
    const [row] = await getJson<{ state: string; reason: string }[]>(`${daemon.adminUrl}/backends`);
    expect(row?.state).toBe('unhealthy');
    expect(row?.reason).toMatch(/host name does not resolve/);
  });
});
