/**
 * /openapi.json against the routes the app really serves, read from Fastify's own route
 * tree (printRoutes), not from the hook that builds the document.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { buildAdminApp, type AdminApp } from '../../../src/controlplane/admin/app.ts';
import { describedOperations, NOT_DESCRIBED, openApiPath } from '../../../src/controlplane/admin/openapi.ts';
import { CounterTables, createCounterBuffer } from '../../../src/shared/counters.ts';
import { testAdminDeps } from '../../helpers/admin.ts';
import { testSnapshot } from '../../helpers/snapshot.ts';

const apps: AdminApp[] = [];
afterEach(async () => {
  for (const app of apps.splice(0)) await app.close();
});

function build(): AdminApp {
  const dims = { workers: 1, backendSlots: 1, listenerSlots: 1 };
  const app = buildAdminApp(
    testAdminDeps(testSnapshot(), new CounterTables(createCounterBuffer(dims), dims), {
      // With fault injection on, every route the app can have is registered.
      faults: { crashDataPlaneWorker: () => true, crashControlPlane: () => true },
    }),
  );
  apps.push(app);
  return app;
}

/**
 * `METHOD /path` for every route, from the tree printRoutes draws:
 * `    │   └── /:id (GET, HEAD, PATCH, DELETE)`; a node's path is its parent's plus its own.
 */
function servedRoutes(app: AdminApp): string[] {
  const found: string[] = [];
  const parents: { depth: number; path: string }[] = [];
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    const match = /^(.*?)[└├]── (\S+)(?: \(([^)]*)\))?$/.exec(line);
    if (match === null) continue;
    const depth = (match[1] ?? '').length;
    while (parents.length > 0 && (parents.at(-1)?.depth ?? 0) >= depth) parents.pop();
    const parent = parents.at(-1)?.path ?? '';
    const segment = match[2] ?? '';
    const path = parent === '' ? segment : `${parent.replace(/\/$/, '')}/${segment.replace(/^\//, '')}`;
    parents.push({ depth, path });
    for (const method of (match[3] ?? '').split(', ').filter((m) => m !== '' && m !== 'HEAD')) found.push(`${method} ${path}`);
  }
  return found;
}

describe('/openapi.json', () => {
  it('lists every route the app serves, each described, and describes no other', async () => {
    const app = build();
    const doc = (await app.inject({ method: 'GET', url: '/openapi.json' })).json<{ paths: Record<string, Record<string, { summary?: string }>> }>();
    const documented = new Map(
      Object.entries(doc.paths).flatMap(([path, item]) =>
        Object.entries(item)
          .filter(([key]) => key !== 'parameters')
          .map(([method, operation]) => [`${method.toUpperCase()} ${path}`, operation.summary] as const),
      ),
    );
    const served = servedRoutes(app).map((route) => openApiPath(route));
    // The parse itself: these were the routes the old hand-written document left out.
    expect(served).toEqual(expect.arrayContaining(['GET /', 'GET /metrics', 'GET /debug/resources', 'GET /debug/controlplane', 'GET /dashboard/state', 'POST /debug/workers/{index}/crash']));
    expect(served.length).toBeGreaterThan(25);
    expect([...documented.keys()].sort()).toEqual([...served].sort());
    for (const [route, summary] of documented) expect(summary, route).not.toBe(NOT_DESCRIBED);
    expect([...describedOperations()].sort()).toEqual([...served].sort());
  });

  it('marks the routes served without a token, names path parameters and lists 403 and the error codes', async () => {
    const app = build();
    const doc = (await app.inject({ method: 'GET', url: '/openapi.json' })).json<{
      paths: Record<string, Record<string, { security?: unknown[]; responses: Record<string, unknown>; parameters?: { name: string }[] }>>;
      components: { schemas: { Error: { properties: { error: { enum: string[] } } } } };
    }>();
    expect(doc.paths['/healthz']?.['get']?.security).toEqual([]);
    expect(doc.paths['/']?.['get']?.security).toEqual([]);
    expect(doc.paths['/backends']?.['get']?.security).toBeUndefined();
    expect(doc.paths['/debug/workers/{index}/crash']?.['parameters']).toEqual([expect.objectContaining({ name: 'index', in: 'path' })]);
    expect(Object.keys(doc.paths['/drain']?.['post']?.responses ?? {})).toContain('403');
    expect(doc.components.schemas.Error.properties.error.enum).toEqual(expect.arrayContaining(['CROSS_SITE_REFUSED', 'HEADERS_TOO_LARGE', 'CONFIG_INVALID']));
  });
});
