/**
 * The OpenAPI 3.1 description of the admin API, served at GET /openapi.json. Request bodies
 * come from the zod schemas the routes validate with (schemas.ts); responses are described
 * here once. A test checks every registered route appears in it.
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
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
  allOf: [ref('Backend'), { type: 'object', required: ['snapshot_version'], properties: { snapshot_version: { type: 'integer' } } }],
};

const error: Json = {
  type: 'object',
  required: ['error', 'message'],
  properties: {
    error: { enum: ['BAD_REQUEST', 'BAD_JSON', 'UNAUTHORIZED', 'NOT_FOUND', 'CONFLICT', 'BODY_TOO_LARGE', 'UNSUPPORTED_MEDIA_TYPE', 'UNAVAILABLE', 'NO_CAPACITY', 'INTERNAL'] },
    message: { type: 'string', description: 'names the field or the thing that was wrong' },
  },
};

function json(schema: Json, description: string): Json {
  return { description, content: { 'application/json': { schema } } };
}

const errors = (...statuses: number[]): Json =>
  Object.fromEntries(statuses.map((status) => [String(status), json(ref('Error'), ERROR_TEXT[status] ?? 'error')]));

const ERROR_TEXT: Record<number, string> = {
  400: 'bad body, parameter or query; the message names the field',
  401: 'missing or wrong bearer token',
  404: 'unknown backend or cluster',
  409: 'conflicts with the current state (duplicate address, backend being removed)',
  413: 'body too large',
  503: 'the control plane did not answer',
  507: 'over a fixed capacity limit (backend slots, snapshot bytes); the message names it; nothing was changed',
};

const idParam = { name: 'id', in: 'path', required: true, schema: { type: 'string' }, description: 'cluster:address' };
const nameParam = { name: 'name', in: 'path', required: true, schema: { type: 'string' }, description: 'a listener name' };

/** A request body schema as OpenAPI 3.1 (JSON Schema 2020-12) wants it inside components. */
function bodySchema(schema: z.ZodType): Json {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { io: 'input', target: 'draft-2020-12' });
  return rest;
}

export function openApiDocument(): Json {
  const body = (name: string): Json => ({ required: true, content: { 'application/json': { schema: ref(name) } } });
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
    paths: {
      '/backends': {
        get: { summary: 'Every backend with state and live counters', responses: { 200: json({ type: 'array', items: ref('Backend') }, 'backends'), ...errors(401) } },
        post: {
          summary: 'Add a backend; answered once the snapshot holding it is published',
          requestBody: body('AddBackend'),
          responses: { 201: json(ref('WrittenBackend'), 'added'), ...errors(400, 401, 404, 409, 413, 503, 507) },
        },
      },
      '/backends/{id}': {
        parameters: [idParam],
        get: { summary: 'One backend', responses: { 200: json(ref('Backend'), 'the backend'), ...errors(401, 404) } },
        patch: { summary: 'Change its weight', requestBody: body('PatchBackend'), responses: { 200: json(ref('WrittenBackend'), 'reweighted'), ...errors(400, 401, 404, 409, 413, 503) } },
        delete: {
          summary: 'Drain, then remove at 0 connections or the drain timeout',
          parameters: [{ name: 'force', in: 'query', schema: { enum: ['true', 'false'] }, description: 'true: close its connections and remove it at once' }],
          responses: {
            200: json({ type: 'object', properties: { id: { type: 'string' }, state: { const: 'removed' }, snapshot_version: { type: 'integer' } } }, 'removed'),
            202: json(ref('WrittenBackend'), 'draining; removed when its last connection closes'),
            ...errors(400, 401, 404, 503),
          },
        },
      },
      '/backends/{id}/drain': {
        parameters: [idParam],
        post: { summary: 'Take it out of rotation until undrained; open connections finish', responses: { 200: json(ref('WrittenBackend'), 'draining'), ...errors(400, 401, 404, 409, 503) } },
      },
      '/backends/{id}/undrain': {
        parameters: [idParam],
        post: { summary: 'Put it back (healthy if its probes pass)', responses: { 200: json(ref('WrittenBackend'), 'undrained'), ...errors(400, 401, 404, 409, 503) } },
      },
      '/clusters': {
        get: {
          summary:
            'Clusters: algorithm, backend counts by state, eligible backends, global active connections; for consistent_hash the Maglev table size and each backend’s share of it; queue and sticky-session statistics',
          responses: { 200: json({ type: 'array' }, 'clusters'), ...errors(401) },
        },
      },
      '/listeners': { get: { summary: 'Every listener with its weighted routes, edge settings and refusals by reason', responses: { 200: json({ type: 'array', items: ref('Listener') }, 'listeners'), ...errors(401) } } },
      '/listeners/{name}': {
        parameters: [nameParam],
        get: { summary: 'One listener', responses: { 200: json(ref('Listener'), 'the listener'), ...errors(401, 404) } },
      },
      '/listeners/{name}/acl': {
        parameters: [nameParam],
        get: { summary: 'The acl in force', responses: { 200: json(ref('AclView'), 'the acl'), ...errors(401, 404) } },
        put: {
          summary: 'Replace the acl (a missing list is empty); the next accepted connection is checked against it',
          requestBody: body('PutAcl'),
          responses: {
            200: json({ allOf: [ref('AclView'), { type: 'object', properties: { listener: { type: 'string' }, snapshot_version: { type: 'integer' } } }] }, 'replaced'),
            ...errors(400, 401, 404, 413, 503),
          },
        },
      },
      '/listeners/{name}/routes': {
        parameters: [nameParam],
        patch: {
          summary: 'Re-split new connections between clusters (canary); answered once the snapshot holding it is published',
          requestBody: body('PatchRoutes'),
          responses: {
            200: json({ allOf: [ref('Listener'), { type: 'object', properties: { snapshot_version: { type: 'integer' } } }] }, 'new routes in force'),
            ...errors(400, 401, 404, 413, 503),
          },
        },
      },
      '/snapshot': { get: { summary: 'The published routing snapshot (version and content)', responses: { 200: json({ type: 'object' }, 'snapshot'), ...errors(401) } } },
      '/healthz': { get: { summary: 'Alive (no token needed)', security: [], responses: { 200: json({ type: 'object' }, 'alive') } } },
      '/readyz': {
        get: { summary: 'Ready, or 503 once draining (no token needed)', security: [], responses: { 200: json({ type: 'object' }, 'ready'), 503: json({ type: 'object' }, 'draining') } },
      },
      '/drain': { post: { summary: 'Stop accepting and drain the whole process (what SIGTERM does)', responses: { 202: json({ type: 'object' }, 'draining'), ...errors(400, 401) } } },
      '/config/reload': {
        post: {
          summary: 'Reload config.yaml (what SIGHUP does); docs/reload.md',
          parameters: [{ name: 'dry_run', in: 'query', schema: { enum: ['true', 'false'] }, description: 'true: answer the plan and the limits it would hit; apply nothing' }],
          responses: { 200: json({ type: 'object' }, 'reloaded, partial (a listener failed) or dry_run'), ...errors(400, 401, 503, 507) },
        },
      },
      '/openapi.json': { get: { summary: 'This document', responses: { 200: json({ type: 'object' }, 'OpenAPI 3.1') } } },
    },
  };
}

export function registerOpenApiRoute(app: FastifyInstance): void {
  const document = openApiDocument();
  app.get('/openapi.json', () => document);
}
