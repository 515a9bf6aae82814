/**
 * The live dashboard: a static page (dashboard/index.html, dashboard.js, dashboard.css;
 * no framework, no external resource) and the one JSON document it polls.
 *
 * - `GET /`, `/dashboard.js`, `/dashboard.css` (and an empty `/favicon.ico`): the page. They
 *   carry no data, so they are served without the admin token; the page asks the operator for the token and sends it
 *   as `Authorization: Bearer …` on every API call.
 * - `GET /dashboard/state`: listeners, clusters and backends with state, weight and live
 *   counters, plus the server time, so the page computes throughput from two polls.
 */
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import type { CounterTables } from '../../shared/counters.ts';
import { ListenerCounter } from '../../shared/counters.ts';
import type { ListenerBinding } from '../../shared/messages.ts';
import type { Snapshot } from '../../shared/snapshot/types.ts';
import { backendViews, type BackendView } from './backend-view.ts';
import { REFUSAL_REASONS } from './metrics/families.ts';

/** Routes that serve the page itself; an auth hook must let these through. */
export const DASHBOARD_PUBLIC_PATHS: readonly string[] = ['/', '/dashboard.js', '/dashboard.css', '/favicon.ico'];

const ASSETS: readonly { readonly path: string; readonly file: string; readonly type: string }[] = [
  { path: '/', file: 'index.html', type: 'text/html; charset=utf-8' },
  { path: '/dashboard.js', file: 'dashboard.js', type: 'text/javascript; charset=utf-8' },
  { path: '/dashboard.css', file: 'dashboard.css', type: 'text/css; charset=utf-8' },
];

/**
 * The page may load only its own script and style and talk only to this server; it may
 * not be framed (its buttons drain backends, so no clickjacking).
 */
const PAGE_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};

export interface DashboardListener {
  readonly name: string;
  readonly cluster: string;
  readonly connections_total: number;
  readonly refused_total: number;
}

export interface DashboardState {
  /** Server clock, ms since the epoch: the page divides counter deltas by its deltas. */
  readonly time: number;
  readonly snapshot_version: number;
  readonly listeners: readonly DashboardListener[];
  readonly clusters: readonly { readonly name: string; readonly algorithm: string; readonly backends: readonly BackendView[] }[];
}

export function dashboardState(snapshot: Snapshot, counters: CounterTables, listeners: readonly ListenerBinding[], now: number): DashboardState {
  const slots = new Map(listeners.map((l) => [l.name, l.slot]));
  const byCluster = new Map<string, BackendView[]>();
  for (const view of backendViews(snapshot, counters)) {
    const list = byCluster.get(view.cluster);
    if (list === undefined) byCluster.set(view.cluster, [view]);
    else list.push(view);
  }
  return {
    time: now,
    snapshot_version: snapshot.version,
    listeners: snapshot.listeners.map((l) => {
      const slot = slots.get(l.name);
      return {
        name: l.name,
        cluster: l.cluster,
        connections_total: slot === undefined ? 0 : counters.listenerTotal(slot, ListenerCounter.accepted),
        refused_total: slot === undefined ? 0 : REFUSAL_REASONS.reduce((sum, r) => sum + counters.listenerTotal(slot, r.field), 0),
      };
    }),
    clusters: snapshot.clusters.map((c) => ({
      name: c.name,
      algorithm: c.algorithm,
      backends: byCluster.get(c.name) ?? [],
    })),
  };
}

export interface DashboardDeps {
  readonly snapshots: { current(): Snapshot };
  readonly counters: CounterTables;
  readonly listeners: () => readonly ListenerBinding[];
}

export function registerDashboardRoutes(app: FastifyInstance, deps: DashboardDeps): void {
  for (const asset of ASSETS) {
    // Read once at start-up: a missing file fails the daemon's start, not a page load.
    const body = readFileSync(new URL(`./dashboard/${asset.file}`, import.meta.url));
    app.get(asset.path, (_request, reply) => reply.headers(PAGE_HEADERS).type(asset.type).send(body));
  }
  // Browsers ask for it on their own; an empty answer keeps a 404 out of the console.
  app.get('/favicon.ico', (_request, reply) => reply.code(204).send());
  app.get('/dashboard/state', () => dashboardState(deps.snapshots.current(), deps.counters, deps.listeners(), Date.now()));
}
