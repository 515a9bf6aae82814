/**
 * The admin HTTP API (Fastify, main thread). Routes get their dependencies as arguments
 * so tests can drive the app with `inject()` or through a real port.
 */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { ClusterState } from '../../shared/cluster-state.ts';
import type { CounterTables } from '../../shared/counters.ts';
import type { ControlPlaneStats, ResourceReport } from '../../shared/messages.ts';
import type { SnapshotReader } from '../../shared/snapshot/reader.ts';
import { OPEN_ROUTES, registerAuth } from './auth.ts';
import { registerBackendRoutes, type BackendCommands } from './backend-routes.ts';
import { registerHistoryRoutes } from './history-routes.ts';
import type { BackendTransition } from '../../shared/backend-history.ts';
import type { DiscoveryStatus } from '../../shared/discovery-status.ts';
import type { RegistryStatusReport } from '../../shared/registry-status.ts';
import { registerFleetRoutes } from './fleet-routes.ts';
import { registerClusterRoutes } from './cluster-routes.ts';
import { DASHBOARD_PUBLIC_PATHS, registerDashboardRoutes } from './dashboard-routes.ts';
import { registerCrossSiteGuard } from './cross-site-guard.ts';
import { registerDebugRoutes, type FaultInjection } from './debug-routes.ts';
import { clientErrorHandler, HEADER_LIMIT_BYTES, registerErrorHandlers } from './errors.ts';
import { registerJsonParser } from './json-body.ts';
import { registerLifecycleRoutes, type LifecycleControl } from './lifecycle-routes.ts';
import type { BoundListener } from './listener-view.ts';
import { registerListenerRoutes, type ListenerAcls, type RouteCommands } from './listener-routes.ts';
import type { Metrics } from './metrics/registry.ts';
import { registerOpenApiRoute } from './openapi.ts';
import type { ReadinessView } from '../../shared/readiness.ts';
import { BODY_LIMIT_BYTES } from './schemas.ts';

export interface AdminDeps {
  readonly snapshots: SnapshotReader;
  readonly counters: CounterTables;
  /** /readyz: 200 only while `ready`; 503 while starting (with what it waits for) and once draining. */
  readonly readiness: () => ReadinessView;
  /** Resource counts of every data-plane worker, for leak checks and debugging. */
  readonly workerResources: () => Promise<ResourceReport[]>;
  /** The control plane's own counters (publishes, probes, transitions); undefined if it does not answer. */
  readonly controlPlaneStats: () => Promise<ControlPlaneStats | undefined>;
  readonly lifecycle: LifecycleControl;
  /** Present only when fault injection is enabled (SLUICE_FAULT_INJECTION=1). */
  readonly faults: FaultInjection | undefined;
  /** Backend writes, applied by the control plane. */
  readonly commands: BackendCommands;
  /** Listener route writes, applied by the control plane. */
  readonly routes: RouteCommands;
  /** A cluster's shared queue and affinity state, for GET /clusters. */
  readonly clusterState: (cluster: string) => ClusterState | undefined;
  /** The bearer token every route but /healthz, /readyz and the dashboard page needs; undefined = open. */
  readonly token: string | undefined;
  /** The listeners the data plane runs now, with their counter slots. */
  readonly listeners: () => readonly BoundListener[];
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Listener acl writes (PUT /listeners/:name/acl), applied by the control plane; without it they answer 503. */
  readonly listenerAcls?: ListenerAcls;
  /** Each backend's recent health transitions (kept by the main thread). */
  readonly backendHistory: { of(id: string): readonly BackendTransition[] | undefined };
  /** admin.listen as configured: without a token, a Host naming it is accepted (see cross-site.ts). */
  readonly listen?: string;
  /** The latest status of each discovered cluster (GET /clusters, /metrics). */
  readonly discovery?: ReadonlyMap<string, DiscoveryStatus>;
  /** With `registry:`: the control plane's last registry report (GET /fleet, /healthz details). */
  readonly registry?: () => RegistryStatusReport | undefined;
}

const REQUEST_TIMEOUT_MS = 10_000;

export type AdminApp = FastifyInstance;

export function buildAdminApp(deps: AdminDeps): AdminApp {
  // Typed as Fastify's own logger interface so route modules take a plain FastifyInstance.
  const logger: FastifyBaseLogger = deps.logger.child({ component: 'admin' });
  const app = Fastify({
    loggerInstance: logger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: BODY_LIMIT_BYTES,
    connectionTimeout: 10_000,
    requestTimeout: REQUEST_TIMEOUT_MS,
    http: { maxHeaderSize: HEADER_LIMIT_BYTES },
    clientErrorHandler: clientErrorHandler(REQUEST_TIMEOUT_MS),
  });

  // The dashboard's page, script and style carry no data; the page asks for the token.
  const open: ReadonlySet<string> = new Set([...OPEN_ROUTES, ...DASHBOARD_PUBLIC_PATHS]);
  registerOpenApiRoute(app, open);
  registerErrorHandlers(app);
  registerJsonParser(app);
  registerCrossSiteGuard(app, { tokenConfigured: deps.token !== undefined, listen: deps.listen, anyHost: OPEN_ROUTES });
  registerAuth(app, deps.token, open);

  // Alive whatever the registry does (routing goes on without it); its state is a detail here.
  app.get('/healthz', () => {
    const registry = deps.registry?.();
    if (registry === undefined) return { status: 'ok' };
    return { status: 'ok', registry: { registry: registry.registry, up: registry.up, revision: registry.revision, ...(registry.lastError === undefined ? {} : { error: registry.lastError }) } };
  });

  app.get('/readyz', async (_request, reply) => {
    const view = deps.readiness();
    if (view.status === 'ready') return { status: 'ready' };
    return reply.code(503).send(view);
  });

  registerBackendRoutes(app, deps);
  registerHistoryRoutes(app, deps);
  registerFleetRoutes(app, deps.registry === undefined ? {} : { registry: deps.registry });
  registerClusterRoutes(app, deps);

  registerLifecycleRoutes(app, deps.lifecycle);
  registerListenerRoutes(app, {
    snapshots: deps.snapshots,
    counters: deps.counters,
    binding: (name) => deps.listeners().find((l) => l.name === name),
    routes: deps.routes,
    acls: deps.listenerAcls,
  });
  registerDebugRoutes(app, deps.workerResources, deps.faults);

  app.get('/debug/controlplane', async () => ({ controlplane: (await deps.controlPlaneStats()) ?? null }));

  app.get('/metrics', async (_request, reply) => reply.type(deps.metrics.contentType).send(await deps.metrics.render()));

  registerDashboardRoutes(app, deps);

  return app;
}
