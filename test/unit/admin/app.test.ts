/**
 * The admin app driven through inject(): validation and error shapes, auth, and the
 * OpenAPI description, with a fake control plane that records the commands it receives.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { buildAdminApp, type AdminApp } from '../../../src/controlplane/admin/app.ts';
import { bearerToken, exposureWarning, tokensMatch, adminToken } from '../../../src/controlplane/admin/auth.ts';
import { REFUSAL_REASONS } from '../../../src/controlplane/admin/metrics/families.ts';
import { openApiDocument } from '../../../src/controlplane/admin/openapi.ts';
import { CounterTables, createCounterBuffer } from '../../../src/shared/counters.ts';
import type { BackendCommand, BackendCommandResult, RoutesCommand, RoutesCommandResult } from '../../../src/shared/messages.ts';
import { testAdminDeps } from '../../helpers/admin.ts';
import { testBackend, testCluster, testSnapshot } from '../../helpers/snapshot.ts';

const b1 = testBackend('127.0.0.1:9001', { reason: 'no active check' });
const snapshot = testSnapshot({ version: 3, clusters: [testCluster({ backends: [b1] })] });

const apps: AdminApp[] = [];
afterEach(async () => {
  for (const app of apps.splice(0)) await app.close();
});

function build(
  token?: string,
  answer: (c: BackendCommand) => BackendCommandResult = () => ({ ok: true, version: 4, cluster: 'web', backend: b1 }),
  routesAnswer: (c: RoutesCommand) => RoutesCommandResult = (c) => ({ ok: true, version: 5, listener: c.listener, routes: c.routes }),
) {
  const received: BackendCommand[] = [];
  const routeCommands: RoutesCommand[] = [];
  const dims = { workers: 1, backendSlots: 4, listenerSlots: 1 };
  const counters = new CounterTables(createCounterBuffer(dims), dims);
  const app = buildAdminApp(
    testAdminDeps(snapshot, counters, {
      commands: {
        run: (command) => {
          received.push(command);
          return Promise.resolve(answer(command));
        },
      },
      routes: {
        run: (command) => {
          routeCommands.push(command);
          return Promise.resolve(routesAnswer(command));
        },
      },
      token,
      listeners: () => [{ name: 'web', slot: 0, host: '127.0.0.1', port: 5353, protocol: 'udp' }],
    }),
  );
  apps.push(app);
  return { app, received, routeCommands };
}

const json = { 'content-type': 'application/json' };

describe('admin API input', () => {
  it.each<[string, 'POST' | 'PATCH' | 'DELETE' | 'GET', string, string | undefined, number, string, RegExp]>([
    ['a missing address', 'POST', '/backends', '{"cluster":"web"}', 400, 'BAD_REQUEST', /^address: missing required key$/],
    ['a misspelt key', 'POST', '/backends', '{"cluster":"web","address":"127.0.0.1:1","wieght":2}', 400, 'BAD_REQUEST', /unknown key "wieght"; allowed: cluster, address, weight/],
    ['a fractional weight', 'POST', '/backends', '{"cluster":"web","address":"127.0.0.1:1","weight":1.5}', 400, 'BAD_REQUEST', /^weight: expected an integer from 0 to 10000$/],
    ['a negative weight', 'PATCH', '/backends/web:127.0.0.1:9001', '{"weight":-1}', 400, 'BAD_REQUEST', /^weight: expected an integer from 0 to 10000$/],
    ['an empty PATCH', 'PATCH', '/backends/web:127.0.0.1:9001', '{}', 400, 'BAD_REQUEST', /^weight: missing required key$/],
    ['a body on drain', 'POST', '/backends/web:127.0.0.1:9001/drain', '{"now":true}', 400, 'BAD_REQUEST', /^body: this route takes no body$/],
    ['an unknown query parameter', 'DELETE', '/backends/web:127.0.0.1:9001?forced=true', undefined, 400, 'BAD_REQUEST', /unknown query parameter "forced"/],
    ['an empty JSON body', 'POST', '/backends', '', 400, 'BAD_JSON', /body is empty/],
    ['an unknown route', 'GET', '/backend', undefined, 404, 'NOT_FOUND', /^no route GET \/backend$/],
    ['an unknown backend', 'GET', '/backends/web:127.0.0.1:1', undefined, 404, 'NOT_FOUND', /^no backend web:127.0.0.1:1$/],
  ])('answers %s with the right status and a message that names it', async (_name, method, url, payload, status, error, message) => {
    const { app, received } = build();
    const response = await app.inject({ method, url, ...(payload === undefined ? {} : { payload, headers: json }) });
    expect(response.statusCode).toBe(status);
    const body = response.json<{ error: string; message: string }>();
    expect(body.error).toBe(error);
    expect(body.message).toMatch(message);
    expect(received).toEqual([]);
  });

  it('maps control-plane refusals to statuses', async () => {
    for (const [code, status] of [['NOT_FOUND', 404], ['CONFLICT', 409], ['UNAVAILABLE', 503]] as const) {
      const { app } = build(undefined, () => ({ ok: false, error: code, message: 'why' }));
      const response = await app.inject({ method: 'POST', url: '/backends/web:x:1/drain' });
      expect([response.statusCode, response.json()]).toEqual([status, { error: code, message: 'why' }]);
    }
  });

  it('turns valid requests into commands, defaulting the weight to 1', async () => {
    const { app, received } = build();
    const add = await app.inject({ method: 'POST', url: '/backends', payload: { cluster: 'web', address: '[::1]:9009' } });
    expect(add.statusCode).toBe(201);
    expect(add.json()).toMatchObject({ id: 'web:127.0.0.1:9001', snapshot_version: 4, state: 'healthy' });
    await app.inject({ method: 'DELETE', url: '/backends/web:127.0.0.1:9001?force=true' });
    await app.inject({ method: 'PATCH', url: '/backends/web:127.0.0.1:9001', payload: { weight: 0 } });
    expect(received).toEqual([
      { op: 'add', cluster: 'web', address: '[::1]:9009', weight: 1 },
      { op: 'remove', id: 'web:127.0.0.1:9001', force: true },
      { op: 'weight', id: 'web:127.0.0.1:9001', weight: 0 },
    ]);
  });

  it('answers DELETE with 200 once the backend is gone and 202 while it drains', async () => {
    const gone = build(undefined, () => ({ ok: true, version: 9, cluster: 'web', backend: undefined }));
    const removed = await gone.app.inject({ method: 'DELETE', url: '/backends/web:127.0.0.1:9001' });
    expect([removed.statusCode, removed.json()]).toEqual([200, { id: 'web:127.0.0.1:9001', state: 'removed', snapshot_version: 9 }]);
    const draining = build(undefined, () => ({ ok: true, version: 9, cluster: 'web', backend: { ...b1, state: 'draining', admin: 'remove' } }));
    const later = await draining.app.inject({ method: 'DELETE', url: '/backends/web:127.0.0.1:9001' });
    expect(later.statusCode).toBe(202);
    expect(later.json()).toMatchObject({ state: 'draining', admin: 'remove' });
  });
});

describe('listener routes', () => {
  it.each<[string, string, RegExp]>([
    ['no routes key', '{}', /^routes: missing required key$/],
    ['an empty list', '{"routes":[]}', /^routes: expected at least one route$/],
    ['a weight out of range', '{"routes":[{"cluster":"web","weight":10001}]}', /^routes\.0\.weight: expected an integer from 0 to 10000$/],
    ['a route without a cluster', '{"routes":[{"weight":1}]}', /^routes\.0\.cluster: missing required key$/],
    ['only zero weights', '{"routes":[{"cluster":"web","weight":0}]}', /^routes: at least one route needs a weight above 0$/],
    ['one cluster twice', '{"routes":[{"cluster":"web","weight":1},{"cluster":"web","weight":2}]}', /^routes\.1\.cluster: cluster "web" is already routed at routes\.0$/],
    ['an unknown key', '{"routes":[{"cluster":"web","weight":1}],"sticky":true}', /unknown key "sticky"; allowed: routes/],
  ])('refuses %s with 400 naming the field', async (_name, payload, message) => {
    const { app, routeCommands } = build();
    const response = await app.inject({ method: 'PATCH', url: '/listeners/web/routes', payload, headers: json });
    expect(response.statusCode).toBe(400);
    expect(response.json<{ error: string; message: string }>()).toMatchObject({ error: 'BAD_REQUEST' });
    expect(response.json<{ message: string }>().message).toMatch(message);
    expect(routeCommands).toEqual([]);
  });

  it('turns a valid PATCH into a command and answers with the routes and the snapshot version', async () => {
    const { app, routeCommands } = build();
    const routes = [
      { cluster: 'web', weight: 50 },
      { cluster: 'canary', weight: 50 },
    ];
    const response = await app.inject({ method: 'PATCH', url: '/listeners/web/routes', payload: { routes } });
    expect([response.statusCode, response.json()]).toEqual([200, { name: 'web', routes, snapshot_version: 5 }]);
    expect(routeCommands).toEqual([{ listener: 'web', routes }]);
  });

  it('maps control-plane refusals to statuses', async () => {
    for (const [code, status] of [['NOT_FOUND', 404], ['BAD_REQUEST', 400], ['UNAVAILABLE', 503]] as const) {
      const { app } = build(undefined, undefined, () => ({ ok: false, error: code, message: 'why' }));
      const response = await app.inject({ method: 'PATCH', url: '/listeners/x/routes', payload: { routes: [{ cluster: 'web', weight: 1 }] } });
      expect([response.statusCode, response.json()]).toEqual([status, { error: code, message: 'why' }]);
    }
  });

  it('lists listeners with their routes from the snapshot', async () => {
    const { app } = build();
    // (With its counters too: see GET /listeners below.)
    expect((await app.inject({ method: 'GET', url: '/listeners' })).json()).toMatchObject([{ name: 'web', routes: [{ cluster: 'web', weight: 1 }] }]);
    expect((await app.inject({ method: 'GET', url: '/listeners/web' })).json()).toMatchObject({ name: 'web', routes: [{ cluster: 'web', weight: 1 }] });
    expect((await app.inject({ method: 'GET', url: '/listeners/nope' })).statusCode).toBe(404);
  });

  it('shows each cluster’s algorithm, states and routing listeners in GET /clusters', async () => {
    const { app } = build();
    expect((await app.inject({ method: 'GET', url: '/clusters' })).json()).toEqual([
      {
        name: 'web',
        algorithm: 'round_robin',
        panic_mode: 'refuse',
        listeners: ['web'],
        states: { healthy: 1, draining: 0, unhealthy: 0 },
        source: 'static',
        backends: 1,
        eligible: 1,
        active_connections: 0,
      },
    ]);
  });
});

describe('admin API auth', () => {
  it('needs the bearer token on every route but /healthz and /readyz', async () => {
    const { app } = build('s3cret');
    expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
    for (const headers of [{}, { authorization: 'Bearer nope' }, { authorization: 's3cret' }, { authorization: 'Basic s3cret' }]) {
      const response = await app.inject({ method: 'GET', url: '/backends', headers });
      expect(response.statusCode).toBe(401);
      expect(response.json<{ error: string }>().error).toBe('UNAUTHORIZED');
    }
    const denied = await app.inject({ method: 'POST', url: '/backends', payload: { cluster: 'web', address: '127.0.0.1:1' } });
    expect(denied.statusCode).toBe(401);
    expect((await app.inject({ method: 'GET', url: '/backends', headers: { authorization: 'Bearer s3cret' } })).statusCode).toBe(200);
  });

  it('serves the dashboard page without the token, but none of its data', async () => {
    const { app } = build('s3cret');
    for (const url of ['/', '/dashboard.js', '/dashboard.css']) expect((await app.inject({ method: 'GET', url })).statusCode).toBe(200);
    for (const url of ['/dashboard/state', '/metrics']) {
      expect((await app.inject({ method: 'GET', url })).statusCode).toBe(401);
      expect((await app.inject({ method: 'GET', url, headers: { authorization: 'Bearer s3cret' } })).statusCode).toBe(200);
    }
  });

  it.each([
    ['s3cret', 's3cret', true],
    ['s3cret', 's3cre', false],
    ['s3cret', 's3cret!', false],
    ['s3cret', '', false],
  ])('compares %j with %j → %j', (a, b, same) => {
    expect(tokensMatch(a, b)).toBe(same);
  });

  it.each([
    [undefined, undefined],
    ['Bearer abc', 'abc'],
    ['bearer   abc ', 'abc'],
    ['Bearer', undefined],
    ['Basic abc', undefined],
  ])('reads the token of %j as %j', (header, token) => {
    expect(bearerToken(header)).toBe(token);
  });

  it.each([
    ['127.0.0.1', false, false],
    ['::1', false, false],
    ['localhost', false, false],
    ['0.0.0.0', false, true],
    ['10.1.2.3', false, true],
    ['0.0.0.0', true, false],
  ])('warns about %s without a token (token: %j) → %j', (host, hasToken, warns) => {
    expect(exposureWarning(host, hasToken) !== undefined).toBe(warns);
  });

  it('refuses a token variable that is not set', () => {
    expect(adminToken(undefined, {})).toBeUndefined();
    expect(adminToken('TOKEN', { TOKEN: 'x' })).toBe('x');
    expect(() => adminToken('TOKEN', {})).toThrow(/admin.token_env names TOKEN, which is not set/);
    expect(() => adminToken('TOKEN', { TOKEN: ' ' })).toThrow(/not set \(or empty\)/);
  });
});

describe('GET /listeners', () => {
  it('shows a UDP listener with its session counters, summed over workers', async () => {
    const { app } = build();
    const response = await app.inject({ method: 'GET', url: '/listeners' });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual([
      {
        name: 'web',
        status: 'serving',
        protocol: 'udp',
        listen: '127.0.0.1:5353',
        cluster: 'web',
        routes: [{ cluster: 'web', weight: 1 }],
        accept_proxy: false,
        limits: null,
        acl: { allow: [], deny: [] },
        sni_routes: [],
        accepted_total: 0,
        refused_total: Object.fromEntries(REFUSAL_REASONS.map(({ reason }) => [reason, 0])),
        limits_table_full_total: 0,
        udp: { sessions: 0, sessions_evicted: 0, sessions_expired: 0, datagrams_from_client: 0, datagrams_to_client: 0, datagrams_dropped: 0 },
      },
    ]);
  });
});

describe('OpenAPI description', () => {
  it('describes every route the app serves, and the request bodies from the zod schemas', async () => {
    const { app } = build();
    const served = await app.inject({ method: 'GET', url: '/openapi.json' });
    expect(served.statusCode).toBe(200);
    const doc = served.json<{ openapi: string; paths: Record<string, Record<string, unknown>> }>();
    expect(doc.openapi).toBe('3.1.0');
    const documented = new Set(
      Object.entries(doc.paths).flatMap(([route, ops]) => Object.keys(ops).filter((k) => k !== 'parameters').map((m) => `${m.toUpperCase()} ${route}`)),
    );
    for (const expected of [
      'GET /backends',
      'POST /backends',
      'GET /backends/{id}',
      'PATCH /backends/{id}',
      'DELETE /backends/{id}',
      'POST /backends/{id}/drain',
      'POST /backends/{id}/undrain',
      'GET /clusters',
      'GET /listeners',
      'GET /listeners/{name}',
      'PATCH /listeners/{name}/routes',
      'GET /snapshot',
      'GET /listeners/{name}/acl',
      'PUT /listeners/{name}/acl',
      'GET /healthz',
      'GET /readyz',
      'GET /openapi.json',
    ]) {
      expect(documented).toContain(expected);
    }
    // ...and documents no route it does not serve.
    for (const entry of documented) {
      const [method, route] = entry.split(' ') as [string, string];
      expect(app.hasRoute({ method: method, url: route.replace(/\{(\w+)\}/g, ':$1') }), entry).toBe(true);
    }
    const schemas = (openApiDocument([], new Set())['components'] as { schemas: Record<string, { required?: string[]; additionalProperties?: boolean }> }).schemas;
    expect(schemas['AddBackend']).toMatchObject({ required: ['cluster', 'address'], additionalProperties: false });
    expect(schemas['PatchBackend']).toMatchObject({ required: ['weight'] });
    expect(schemas['PatchRoutes']).toMatchObject({ required: ['routes'], additionalProperties: false });
    // Every $ref points at a schema that exists.
    const refs = [...JSON.stringify(doc).matchAll(/"#\/components\/schemas\/(\w+)"/g)].map((m) => m[1]!);
    for (const name of refs) expect(Object.keys(schemas)).toContain(name);
  });
});
