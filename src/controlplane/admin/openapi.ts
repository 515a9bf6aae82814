/**
 * The OpenAPI 3.1 description of the admin API, served at GET /openapi.json. Its paths are the
 * routes the app registered (an onRoute hook collects them), so none can be left out and none
 * described that does not exist; what each does is described here once (OPERATIONS), and a
 * route missing there still appears, with its own schema's summary or "not described".
 * Request bodies come from the zod schemas the routes validate with (schemas.ts).
 */
import type { FastifyInstance, RouteOptions } from 'fastify';
import { z } from 'zod';
import { API_ERROR_CODES } from './errors.ts';
import { putAclBody } from './listener-routes.ts';
import { REFUSAL_REASONS } from './metrics/families.ts';
import { addBackendBody, patchBackendBody, patchRoutesBody } from './schemas.ts';

type Json = Record<string, unknown>;

const ref = (name: string): Json => ({ $ref: `#/components/schemas/${name}` });

const backend: Json = {
  type: 'object',
  required: ['id', 'cluster', 'address', 'weight', 'effective_weight', 'state', 'admin', 'reason', 'since', 'active_connections'],
  properties: {
    id: { type: 'string', example: 'web:127.0.0.1:9001' },
    cluster: { type: 'string' },
    address: { type: 'string' },
    weight: { type: 'number', description: 'configured weight' },
    effective_weight: { type: 'number', description: 'weight routing uses now (lower during slow start)' },
    state: { enum: ['healthy', 'draining', 'unhealthy'] },
    admin: { enum: ['none', 'drain', 'remove'], description: "an operator's drain or removal" },
    reason: { type: 'string', description: 'why the backend is in its state' },
    since: { type: 'string', format: 'date-time' },
    active_connections: { type: 'integer' },
    connections_total: { type: 'integer' },
    connect_failures_total: { type: 'integer' },
    bytes_from_client: { type: 'integer' },
    bytes_to_client: { type: 'integer' },
  },
};

const listener: Json = {
  type: 'object',
  required: ['name', 'cluster', 'routes', 'accept_proxy', 'limits', 'acl', 'sni_routes', 'accepted_total', 'refused_total', 'limits_table_full_total'],
  properties: {
    name: { type: 'string', example: 'web' },
    status: { enum: ['serving', 'failed', 'absent'], description: 'failed: the last reload could not open it (see error)' },
    error: { type: 'string', example: '127.0.0.1:8081 is already in use (EADDRINUSE)' },
    cluster: { type: ['string', 'null'], description: 'its single cluster, or the first of its routes (null: routed by SNI only)' },
    routes: {
      type: 'array',
      items: { type: 'object', required: ['cluster', 'weight'], properties: { cluster: { type: 'string' }, weight: { type: 'integer' } } },
      description: 'new connections are split between these clusters by weight',
    },
    protocol: { enum: ['tcp', 'udp', null], description: 'null while the data plane runs no such listener' },
    listen: { type: ['string', 'null'], example: '127.0.0.1:8080' },
    accept_proxy: { type: 'boolean' },
    limits: {
      type: ['object', 'null'],
      description: '0 = that limit is off',
      properties: {
        per_ip_connections: { type: 'integer' },
        per_ip_rate: { type: 'number', description: 'per second' },
        burst: { type: 'integer' },
        max_connections: { type: 'integer' },
      },
    },
    acl: ref('AclView'),
    sni_routes: { type: 'array', items: { type: 'object', properties: { server_name: { type: 'string' }, cluster: { type: 'string' } } } },
    accepted_total: { type: 'integer', description: 'TCP: connections accepted; UDP: sessions created' },
    refused_total: {
      type: 'object',
      description: 'closed without being proxied (UDP: datagrams that could not start a session), by reason (as sluice_listener_refused_total names them)',
      properties: Object.fromEntries(REFUSAL_REASONS.map(({ reason }) => [reason, { type: 'integer' }])),
    },
    limits_table_full_total: { type: 'integer', description: 'admitted without a per-IP check: the shared table was full (fail open)' },
    udp: {
      type: 'object',
      description: 'UDP listeners only',
      properties: Object.fromEntries(
        ['sessions', 'sessions_evicted', 'sessions_expired', 'datagrams_from_client', 'datagrams_to_client', 'datagrams_dropped'].map((key) => [key, { type: 'integer' }]),
      ),
    },
  },
};

const aclView: Json = {
  type: 'object',
  properties: { allow: { type: 'array', items: { type: 'string' } }, deny: { type: 'array', items: { type: 'string' } } },
};

const written: Json = {
  allOf: [ref('Backend'), { type: 'object', required: ['snapshot_version'], properties: { snapshot_version: { type: 'integer' }, revision: { type: 'integer', description: 'with a registry: the etcd revision of the write' } } }],
};

const error: Json = {
  type: 'object',
  required: ['error', 'message'],
  properties: {
    error: { enum: [...API_ERROR_CODES] },
    message: { type: 'string', description: 'names the field or the thing that was wrong' },
  },
};

function json(schema: Json, description: string): Json {
  return { description, content: { 'application/json': { schema } } };
}

const errors = (...statuses: number[]): Json =>
  Object.fromEntries(statuses.map((status) => [String(status), json(ref('Error'), ERROR_TEXT[status] ?? 'error')]));

const ERROR_TEXT: Readonly<Record<number, string>> = {
  400: 'bad body, parameter or query; the message names the field',
  401: 'missing or wrong bearer token',
  403: 'sent by a browser for another site, or (without a token) addressed to a foreign Host; see docs/admin-security.md',
  404: 'unknown backend or cluster',
  409: 'conflicts with the current state (duplicate address, backend being removed)',
  413: 'body too large (the message names the limit)',
  503: 'the control plane did not answer, or the state file cannot be written',
  507: 'over a fixed capacity limit (backend slots, snapshot bytes); the message names it; nothing was changed',
};

/** Path parameters by name, wherever a route has one (`:id` → `{id}`). */
const PATH_PARAMETERS: Readonly<Record<string, Json>> = {
  id: { name: 'id', in: 'path', required: true, schema: { type: 'string' }, description: 'cluster:address' },
  name: { name: 'name', in: 'path', required: true, schema: { type: 'string' }, description: 'a listener name' },
  index: { name: 'index', in: 'path', required: true, schema: { type: 'integer', minimum: 0 }, description: 'a data-plane worker number' },
};

/** A request body schema as OpenAPI 3.1 (JSON Schema 2020-12) wants it inside components. */
function bodySchema(schema: z.ZodType): Json {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { io: 'input', target: 'draft-2020-12' });
  return rest;
}

const requestBody = (name: string): Json => ({ required: true, content: { 'application/json': { schema: ref(name) } } });
const text = (type: string, description: string): Json => ({ description, content: { [type]: { schema: { type: 'string' } } } });
const faultOnly = 'only with SLUICE_FAULT_INJECTION=1';

/** What each route does and answers, keyed `METHOD /path` with OpenAPI's `{param}`. */
const OPERATIONS: Readonly<Record<string, Json>> = {
  'GET /backends': { summary: 'Every backend with state and live counters', responses: { 200: json({ type: 'array', items: ref('Backend') }, 'backends'), ...errors(401) } },
  'POST /backends': {
    summary: 'Add a backend; answered once the snapshot holding it is published',
    requestBody: requestBody('AddBackend'),
    responses: { 201: json(ref('WrittenBackend'), 'added'), ...errors(400, 401, 404, 409, 413, 503, 507) },
  },
  'GET /backends/{id}': { summary: 'One backend', responses: { 200: json(ref('Backend'), 'the backend'), ...errors(401, 404) } },
  'PATCH /backends/{id}': {
    summary: 'Change its weight',
    requestBody: requestBody('PatchBackend'),
    responses: { 200: json(ref('WrittenBackend'), 'reweighted'), ...errors(400, 401, 404, 409, 413, 503) },
  },
  'DELETE /backends/{id}': {
    summary: 'Drain, then remove at 0 connections or the drain timeout',
    parameters: [{ name: 'force', in: 'query', schema: { enum: ['true', 'false'] }, description: 'true: close its connections and remove it at once' }],
    responses: {
      200: json({ type: 'object', properties: { id: { type: 'string' }, state: { const: 'removed' }, snapshot_version: { type: 'integer' }, revision: { type: 'integer', description: 'with a registry: the etcd revision of the write' } } }, 'removed'),
      202: json(ref('WrittenBackend'), 'draining; removed when its last connection closes'),
      ...errors(400, 401, 404, 503),
    },
  },
  'GET /backends/{id}/history': {
    summary: 'Its last health transitions, oldest first: from, to, operator intent, reason, snapshot version, time (kept after a removal while there is room)',
    responses: {
      200: json(
        {
          type: 'object',
          properties: {
            id: { type: 'string' },
            transitions: {
              type: 'array',
              items: {
                type: 'object',
                properties: {
                  at: { type: 'string', format: 'date-time' },
                  from: { enum: ['new', 'healthy', 'draining', 'unhealthy', 'removed'] },
                  to: { enum: ['healthy', 'draining', 'unhealthy', 'removed'] },
                  admin: { enum: ['none', 'drain', 'remove'] },
                  reason: { type: 'string' },
                  snapshot_version: { type: 'integer' },
                },
              },
            },
          },
        },
        'the history',
      ),
      ...errors(400, 401, 404),
    },
  },
  'POST /backends/{id}/drain': { summary: 'Take it out of rotation until undrained; open connections finish', responses: { 200: json(ref('WrittenBackend'), 'draining'), ...errors(400, 401, 404, 409, 503) } },
  'POST /backends/{id}/undrain': { summary: 'Put it back (healthy if its probes pass)', responses: { 200: json(ref('WrittenBackend'), 'undrained'), ...errors(400, 401, 404, 409, 503) } },
  'GET /clusters': {
    summary:
      'Clusters: algorithm, backend counts by state, eligible backends, global active connections; for consistent_hash the Maglev table size and each backend’s share of it; queue and sticky-session statistics',
    responses: { 200: json({ type: 'array' }, 'clusters'), ...errors(401) },
  },
  'GET /listeners': { summary: 'Every listener with its weighted routes, edge settings and refusals by reason', responses: { 200: json({ type: 'array', items: ref('Listener') }, 'listeners'), ...errors(401) } },
  'GET /listeners/{name}': { summary: 'One listener', responses: { 200: json(ref('Listener'), 'the listener'), ...errors(401, 404) } },
  'GET /listeners/{name}/acl': { summary: 'The acl in force', responses: { 200: json(ref('AclView'), 'the acl'), ...errors(401, 404) } },
  'PUT /listeners/{name}/acl': {
    summary: 'Replace the acl (a missing list is empty); the next accepted connection is checked against it. The body may carry the maximum of 10,000 blocks',
    requestBody: requestBody('PutAcl'),
    responses: {
      200: json({ allOf: [ref('AclView'), { type: 'object', properties: { listener: { type: 'string' }, snapshot_version: { type: 'integer' }, revision: { type: 'integer', description: 'with a registry: the etcd revision of the write' } } }] }, 'replaced'),
      ...errors(400, 401, 404, 409, 413, 503, 507),
    },
  },
  'PATCH /listeners/{name}/routes': {
    summary: 'Re-split new connections between clusters (canary); answered once the snapshot holding it is published',
    requestBody: requestBody('PatchRoutes'),
    responses: {
      200: json({ allOf: [ref('Listener'), { type: 'object', properties: { snapshot_version: { type: 'integer' }, revision: { type: 'integer', description: 'with a registry: the etcd revision of the write' } } }] }, 'new routes in force'),
      ...errors(400, 401, 404, 409, 413, 503),
    },
  },
  'GET /snapshot': { summary: 'The published routing snapshot (version and content)', responses: { 200: json({ type: 'object' }, 'snapshot'), ...errors(401) } },
  'GET /fleet': {
    summary:
      'With a registry: the instances sharing it, each with the registry revision of the operator intent it applied, its routing snapshot hash and the age of its report (equal revisions and hashes: converged)',
    responses: { 200: json({ type: 'object' }, 'the fleet'), ...errors(401, 404) },
  },
  'GET /healthz': { summary: 'Alive (no token needed)', responses: { 200: json({ type: 'object' }, 'alive') } },
  'GET /readyz': { summary: 'Ready, or 503 once draining (no token needed)', responses: { 200: json({ type: 'object' }, 'ready'), 503: json({ type: 'object' }, 'draining') } },
  'POST /drain': {
    summary: 'Stop accepting and drain the whole process (what SIGTERM does); with {"handover": true} the answer carries udp_sessions for the successor',
    responses: { 202: json({ type: 'object' }, 'draining'), ...errors(400, 401) },
  },
  'POST /handover/prepare': {
    summary: 'A successor is about to bind beside this process (--takeover): share the UDP sessions among its workers',
    responses: { 202: json({ type: 'object', properties: { status: { type: 'string' }, udp_sessions: { type: 'integer' } } }, 'prepared'), ...errors(401) },
  },
  'POST /config/reload': {
    summary: 'Reload config.yaml (what SIGHUP does); docs/reload.md',
    parameters: [{ name: 'dry_run', in: 'query', schema: { enum: ['true', 'false'] }, description: 'true: answer the plan and the limits it would hit; apply nothing' }],
    responses: { 200: json({ type: 'object' }, 'reloaded, partial (a listener failed) or dry_run'), ...errors(400, 401, 503, 507) },
  },
  'GET /openapi.json': { summary: 'This document', responses: { 200: json({ type: 'object' }, 'OpenAPI 3.1'), ...errors(401) } },
  'GET /metrics': { summary: 'Prometheus text exposition', responses: { 200: text('text/plain', 'metrics'), ...errors(401) } },
  'GET /debug/resources': {
    summary: 'Per data-plane worker: open connections, UDP sessions, V8 heap in use, libuv handles and timers by kind',
    responses: { 200: json({ type: 'object', properties: { workers: { type: 'array' } } }, 'resources'), ...errors(401) },
  },
  'GET /debug/controlplane': {
    summary: "The control plane's counters: snapshot publishes, health transitions, probes (null if it does not answer)",
    responses: { 200: json({ type: 'object', properties: { controlplane: { type: ['object', 'null'] } } }, 'counters'), ...errors(401) },
  },
  'POST /debug/workers/{index}/crash': {
    summary: `Make a data-plane worker throw an uncaught error; it is restarted like any crashed worker (${faultOnly})`,
    responses: { 202: json({ type: 'object' }, 'crashing'), ...errors(400, 401, 404) },
  },
  'POST /debug/controlplane/crash': { summary: `Make the control-plane worker throw (${faultOnly})`, responses: { 202: json({ type: 'object' }, 'crashing'), ...errors(401, 404) } },
  'GET /': { summary: 'The live dashboard page (no token needed; it asks for the token)', responses: { 200: text('text/html', 'the page') } },
  'GET /dashboard.js': { summary: "The dashboard's script (no token needed)", responses: { 200: text('text/javascript', 'script') } },
  'GET /dashboard.css': { summary: "The dashboard's style (no token needed)", responses: { 200: text('text/css', 'style') } },
  'GET /favicon.ico': { summary: 'Empty (browsers ask for it)', responses: { 204: { description: 'no icon' } } },
  'GET /dashboard/state': {
    summary: 'What the dashboard polls: server time, snapshot version, listeners with counters, clusters with their backends',
    responses: { 200: json({ type: 'object', required: ['time', 'snapshot_version', 'listeners', 'clusters'] }, 'state'), ...errors(401) },
  },
};

/** A route as the app registered it. */
export interface RegisteredRoute {
  readonly method: string;
  /** Fastify's form: `/backends/:id`. */
  readonly url: string;
  /** From the route's `schema.summary`, for a route OPERATIONS does not describe. */
  readonly summary: string | undefined;
}

export const NOT_DESCRIBED = 'not described';

/** `/backends/:id` → `/backends/{id}`. */
export function openApiPath(url: string): string {
  return url.replace(/:(\w+)/g, '{$1}');
}

/** `open`: paths served without a token (they get `security: []`). */
export function openApiDocument(routes: readonly RegisteredRoute[], open: ReadonlySet<string>): Json {
  const paths: Record<string, Json> = {};
  for (const route of [...routes].sort((a, b) => a.url.localeCompare(b.url))) {
    const path = openApiPath(route.url);
    const names = [...route.url.matchAll(/:(\w+)/g)].map((m) => m[1] ?? '');
    const item = (paths[path] ??= names.length === 0 ? {} : { parameters: names.map((n) => PATH_PARAMETERS[n] ?? { name: n, in: 'path', required: true, schema: { type: 'string' } }) });
    const described = OPERATIONS[`${route.method} ${path}`] ?? { summary: route.summary ?? NOT_DESCRIBED, responses: { default: { description: 'see the README' } } };
    const responses = { ...(described['responses'] as Json), ...errors(403) };
    item[route.method.toLowerCase()] = { ...described, ...(open.has(route.url) ? { security: [] } : {}), responses };
  }
  return {
    openapi: '3.1.0',
    info: { title: 'Sluice admin API', version: '1', description: 'Backends, clusters and lifecycle of a running Sluice. Errors are {"error", "message"}.' },
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'the token from the variable admin.token_env names' } },
      schemas: {
        AddBackend: bodySchema(addBackendBody),
        PatchBackend: bodySchema(patchBackendBody),
        PatchRoutes: bodySchema(patchRoutesBody),
        PutAcl: bodySchema(putAclBody),
        AclView: aclView,
        Listener: listener,
        Backend: backend,
        WrittenBackend: written,
        Error: error,
      },
    },
    security: [{ bearer: [] }],
    paths,
  };
}

/** The `METHOD /path` keys OPERATIONS describes (a test checks each is a registered route). */
export function describedOperations(): readonly string[] {
  return Object.keys(OPERATIONS);
}

/**
 * Call before registering any other route: the hook sees only routes registered after it.
 * The document is built at the first request, when every route is in.
 */
export function registerOpenApiRoute(app: FastifyInstance, open: ReadonlySet<string>): void {
  const routes: RegisteredRoute[] = [];
  app.addHook('onRoute', (route: RouteOptions) => {
    const summary = (route.schema as { summary?: unknown } | undefined)?.summary;
    for (const method of [route.method].flat()) {
      // Fastify adds a HEAD for every GET; OpenAPI readers know HEAD mirrors GET.
      if (method !== 'HEAD') routes.push({ method, url: route.url, summary: typeof summary === 'string' ? summary : undefined });
    }
  });
  let document: Json | undefined;
  app.get('/openapi.json', () => (document ??= openApiDocument(routes, open)));
}
