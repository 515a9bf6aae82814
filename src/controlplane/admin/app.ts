/**
 * The admin HTTP API (Fastify, main thread). Routes get their dependencies as arguments
 * so tests can drive the app with `inject()` or through a real port.
 */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { CounterTables } from '../../shared/counters.ts';
import type { ControlPlaneStats, ResourceReport } from '../../shared/messages.ts';
import type { SnapshotReader } from '../../shared/snapshot/reader.ts';
import { registerAuth } from './auth.ts';
import { registerBackendRoutes, type BackendCommands } from './backend-routes.ts';
import { registerClusterRoutes } from './cluster-routes.ts';
import { registerDebugRoutes, type FaultInjection } from './debug-routes.ts';
import { registerErrorHandlers } from './errors.ts';
import { registerLifecycleRoutes, type LifecycleControl } from './lifecycle-routes.ts';
import { registerOpenApiRoute } from './openapi.ts';
import { listenerViews, type ListenerInfo } from './listener-view.ts';

export interface AdminDeps {
  readonly snapshots: SnapshotReader;
  readonly counters: CounterTables;
  /** The configured listeners (a function: the set changes on reload). */
  readonly listeners: () => readonly ListenerInfo[];
  /** False once the process is draining: /readyz turns 503 so outer balancers move away. */
  readonly isReady: () => boolean;
  /** Resource counts of every data-plane worker, for leak checks and debugging. */
  readonly workerResources: () => Promise<ResourceReport[]>;
  /** The control plane's own counters (publishes, probes, transitions); undefined if it does not answer. */
  readonly controlPlaneStats: () => Promise<ControlPlaneStats | undefined>;
  readonly lifecycle: LifecycleControl;
  /** Present only when fault injection is enabled (SLUICE_FAULT_INJECTION=1). */
  readonly faults: FaultInjection | undefined;
  /** Backend writes, applied by the control plane. */
  readonly commands: BackendCommands;
  /** The bearer token every route but /healthz and /readyz needs; undefined = open. */
  readonly token: string | undefined;
  readonly logger: Logger;
}

/** Request bodies are small JSON documents; anything larger is refused with 413. */
const BODY_LIMIT_BYTES = 64 * 1024;

export type AdminApp = FastifyInstance;

export function buildAdminApp(deps: AdminDeps): AdminApp {
  // Typed as Fastify's own logger interface so route modules take a plain FastifyInstance.
  const logger: FastifyBaseLogger = deps.logger.child({ component: 'admin' });
  const app = Fastify({
    loggerInstance: logger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: BODY_LIMIT_BYTES,
    connectionTimeout: 10_000,
    requestTimeout: 10_000,
  });

  registerErrorHandlers(app, BODY_LIMIT_BYTES);
  registerAuth(app, deps.token);

  app.get('/healthz', () => ({ status: 'ok' }));

  app.get('/readyz', async (_request, reply) => {
    if (deps.isReady()) return { status: 'ready' };
    return reply.code(503).send({ status: 'draining' });
  });

  registerBackendRoutes(app, deps);
  registerClusterRoutes(app, deps.snapshots);
  registerOpenApiRoute(app);

  app.get('/listeners', () => listenerViews(deps.listeners(), deps.counters));

  registerLifecycleRoutes(app, deps.lifecycle);
  registerDebugRoutes(app, deps.workerResources, deps.faults);

  app.get('/debug/controlplane', async () => ({ controlplane: (await deps.controlPlaneStats()) ?? null }));

  return app;
}
