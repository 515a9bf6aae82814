/**
 * /listeners through inject(): the view of a listener (settings joined with counters) and
 * acl writes, with a fake control plane that records what it is asked.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { buildAdminApp, type AdminApp } from '../../../src/controlplane/admin/app.ts';
import type { AclConfig } from '../../../src/shared/config/schema.ts';
import { CounterTables, createCounterBuffer, ListenerCounter } from '../../../src/shared/counters.ts';
import type { ListenerAclResult } from '../../../src/shared/messages.ts';
import { testAdminDeps } from '../../helpers/admin.ts';
import { testListener, testSnapshot } from '../../helpers/snapshot.ts';

const snapshot = testSnapshot({
  version: 3,
  listeners: [
    testListener({
      name: 'edge',
      acceptProxy: true,
      limits: { perIpConnections: 10, perIpRate: 20, burst: 20, maxConnections: 0 },
      acl: { allow: [], deny: ['127.0.0.4/32'] },
      sniRoutes: [{ serverName: '*.example.com', cluster: 'web' }],
    }),
    testListener({ name: 'plain' }),
  ],
});

const apps: AdminApp[] = [];
afterEach(async () => {
  for (const app of apps.splice(0)) await app.close();
});

function build(options: { token?: string; answer?: (listener: string, acl: AclConfig) => ListenerAclResult; noAcls?: boolean } = {}) {
  const received: { listener: string; acl: AclConfig }[] = [];
  const dims = { workers: 2, backendSlots: 4, listenerSlots: 4 };
  const counters = new CounterTables(createCounterBuffer(dims), dims);
  const answer = options.answer ?? ((_listener: string, acl: AclConfig): ListenerAclResult => ({ ok: true, version: 4, acl }));
  const app = buildAdminApp(
    testAdminDeps(snapshot, counters, {
      token: options.token,
      listeners: () => [
        { name: 'edge', slot: 1, host: '127.0.0.1', port: 1, protocol: 'tcp' },
        { name: 'plain', slot: 2, host: '127.0.0.1', port: 2, protocol: 'tcp' },
      ],
      ...(options.noAcls === true
        ? {}
        : {
            listenerAcls: {
              set: (listener: string, acl: AclConfig) => {
                received.push({ listener, acl });
                return Promise.resolve(answer(listener, acl));
              },
            },
          }),
    }),
  );
  apps.push(app);
  return { app, counters, received };
}

describe('GET /listeners', () => {
  it('shows each listener with its edge settings and counters summed over workers', async () => {
    const { app, counters } = build();
    const w0 = counters.forWorker(0);
    const w1 = counters.forWorker(1);
    for (let i = 0; i < 3; i++) w0.bumpListener(1, ListenerCounter.accepted);
    w1.bumpListener(1, ListenerCounter.accepted);
    w0.bumpListener(1, ListenerCounter.refusedAcl);
    w1.bumpListener(1, ListenerCounter.refusedPerIpRate);
    w1.bumpListener(1, ListenerCounter.limitsTableFull);
    const response = await app.inject({ method: 'GET', url: '/listeners' });
    expect(response.statusCode).toBe(200);
    const [edge, plain] = response.json<Record<string, unknown>[]>();
    expect(edge).toMatchObject({
      name: 'edge',
      cluster: 'web',
      accept_proxy: true,
      limits: { per_ip_connections: 10, per_ip_rate: 20, burst: 20, max_connections: 0 },
      acl: { allow: [], deny: ['127.0.0.4/32'] },
      sni_routes: [{ server_name: '*.example.com', cluster: 'web' }],
      accepted_total: 4,
      refused_total: { acl: 1, per_ip_rate: 1, per_ip_connections: 0, sni_no_route: 0 },
      limits_table_full_total: 1,
    });
    expect(plain).toMatchObject({ name: 'plain', accept_proxy: false, limits: null, acl: { allow: [], deny: [] }, sni_routes: [], accepted_total: 0 });
  });

  it('answers 404 for an unknown listener', async () => {
    const { app } = build();
    const response = await app.inject({ method: 'GET', url: '/listeners/nope/acl' });
    expect(response.statusCode).toBe(404);
    expect(response.json()).toEqual({ error: 'NOT_FOUND', message: 'no listener "nope"' });
  });
});

describe('PUT /listeners/:name/acl', () => {
  it('sends the canonical acl to the control plane and answers with the snapshot version that holds it', async () => {
    const { app, received } = build();
    const response = await app.inject({ method: 'PUT', url: '/listeners/edge/acl', payload: { allow: ['10.1.2.3', '2001:DB8::/32'] } });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ listener: 'edge', allow: ['10.1.2.3/32', '2001:db8::/32'], deny: [], snapshot_version: 4 });
    expect(received).toEqual([{ listener: 'edge', acl: { allow: ['10.1.2.3/32', '2001:db8::/32'], deny: [] } }]);
  });

  it.each([
    [{ deny: ['10.0.0.1/8'] }, 'deny.0: "10.0.0.1/8" has host bits set; did you mean 10.0.0.0/8?'],
    [{ allow: 'everyone' }, 'allow: expected a list'],
    [{ alow: [] }, 'body: unknown key "alow" (did you mean "allow"?)'],
    [['10.0.0.0/8'], 'body: expected a JSON object like {"allow": ["10.0.0.0/8"], "deny": []}'],
  ])('refuses %j with 400 naming the field, and asks the control plane nothing', async (payload, message) => {
    const { app, received } = build();
    const response = await app.inject({ method: 'PUT', url: '/listeners/edge/acl', payload });
    expect(response.statusCode).toBe(400);
    expect(response.json()).toEqual({ error: 'BAD_REQUEST', message });
    expect(received).toEqual([]);
  });

  it('passes on the control plane refusals: 404 unknown listener, 503 unavailable', async () => {
    const notFound = build({ answer: (listener) => ({ ok: false, error: 'NOT_FOUND', message: `no listener named "${listener}"` }) });
    const missing = await notFound.app.inject({ method: 'PUT', url: '/listeners/nope/acl', payload: {} });
    expect(missing.statusCode).toBe(404);
    const down = build({ answer: () => ({ ok: false, error: 'UNAVAILABLE', message: 'the control plane is not running' }) });
    const unavailable = await down.app.inject({ method: 'PUT', url: '/listeners/edge/acl', payload: {} });
    expect(unavailable.statusCode).toBe(503);
    expect(unavailable.json()).toEqual({ error: 'UNAVAILABLE', message: 'the control plane is not running' });
    const none = build({ noAcls: true });
    expect((await none.app.inject({ method: 'PUT', url: '/listeners/edge/acl', payload: {} })).statusCode).toBe(503);
  });

  it('needs the bearer token when one is configured', async () => {
    const { app, received } = build({ token: 'secret' });
    const refused = await app.inject({ method: 'PUT', url: '/listeners/edge/acl', payload: { deny: [] } });
    expect(refused.statusCode).toBe(401);
    const allowed = await app.inject({ method: 'PUT', url: '/listeners/edge/acl', payload: { deny: [] }, headers: { authorization: 'Bearer secret' } });
    expect(allowed.statusCode).toBe(200);
    expect(received).toHaveLength(1);
  });
});
