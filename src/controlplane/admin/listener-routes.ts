/**
 * /listeners: each listener's weighted routes and edge settings (from the published
 * snapshot) with its counters (listener-view.ts; a UDP listener adds its sessions), and the two listener writes, each a command to the control
 * plane answered once the snapshot holding it is published, with that `snapshot_version`
 * (open connections are not touched; a refused write changes nothing):
 *
 * - PATCH /listeners/:name/routes re-splits its new connections (a canary from 10% to 50%);
 * - PUT /listeners/:name/acl replaces its allow/deny lists: the next accepted connection is
 *   checked against them. They last (state file) until config.yaml's own acl for that
 *   listener changes (see acl-overrides.ts).
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { z } from 'zod';
import { aclSchema } from '../../shared/config/schema.ts';
import type { AclConfig } from '../../shared/config/schema.ts';
import type { CounterTables } from '../../shared/counters.ts';
import type { ListenerAclResult, RoutesCommand, RoutesCommandError, RoutesCommandResult } from '../../shared/messages.ts';
import type { SnapshotReader } from '../../shared/snapshot/reader.ts';
import { sendError, withRevision } from './errors.ts';
import { listenerView, type BoundListener } from './listener-view.ts';
import { ACL_BODY_LIMIT_BYTES, describeIssues, listenerParams, patchRoutesBody } from './schemas.ts';

/** The control plane's side of route writes (ControlPlaneHost in the daemon, a fake in tests). */
export interface RouteCommands {
  run(command: RoutesCommand): Promise<RoutesCommandResult>;
}

/** The control plane's side of acl writes (ControlPlaneHost in the daemon, a fake in tests). */
export interface ListenerAcls {
  set(listener: string, acl: AclConfig): Promise<ListenerAclResult>;
}

export interface ListenerRouteDeps {
  readonly snapshots: SnapshotReader;
  readonly counters: CounterTables;
  /** Where the data plane runs the listener, with its counter row; undefined for a name never bound. */
  readonly binding: (name: string) => BoundListener | undefined;
  readonly routes: RouteCommands;
  /** Undefined: acl writes answer 503. */
  readonly acls: ListenerAcls | undefined;
}

/** A PUT body replaces the whole acl: a missing list is an empty one. */
export const putAclBody = aclSchema;

const ROUTES_ERROR_STATUS: Record<RoutesCommandError, number> = {
  BAD_REQUEST: 400,
  NOT_FOUND: 404,
  CONFLICT: 409,
  UNAVAILABLE: 503,
};

const ACL_ERROR_STATUS: Record<ListenerAclError, number> = {
  BAD_REQUEST: 400,
  NO_CAPACITY: 507,
  NOT_FOUND: 404,
  CONFLICT: 409,
  UNAVAILABLE: 503,
};

type ListenerAclError = Extract<ListenerAclResult, { ok: false }>['error'];

export function registerListenerRoutes(app: FastifyInstance, deps: ListenerRouteDeps): void {
  const { snapshots, counters } = deps;
  const find = (name: string) => snapshots.current().listeners.find((l) => l.name === name);

  function parse<T>(schema: z.ZodType<T>, value: unknown, root: string, reply: FastifyReply): { readonly value: T } | undefined {
    const result = schema.safeParse(value);
    if (result.success) return { value: result.data };
    void sendError(reply, 400, 'BAD_REQUEST', describeIssues(result.error, root));
    return undefined;
  }

  app.get('/listeners', () => snapshots.current().listeners.map((listener) => listenerView(listener, counters, deps.binding(listener.name))));

  app.get('/listeners/:name', async (request, reply) => {
    const params = parse(listenerParams, request.params, 'name', reply);
    if (params === undefined) return reply;
    const found = find(params.value.name);
    if (found === undefined) return sendError(reply, 404, 'NOT_FOUND', `no listener "${params.value.name}"`);
    return listenerView(found, counters, deps.binding(found.name));
  });

  app.patch('/listeners/:name/routes', async (request, reply) => {
    const params = parse(listenerParams, request.params, 'name', reply);
    const body = params === undefined ? undefined : parse(patchRoutesBody, request.body, 'body', reply);
    if (params === undefined || body === undefined) return reply;
    const result = await deps.routes.run({ listener: params.value.name, routes: body.value.routes });
    if (!result.ok) return sendError(reply, ROUTES_ERROR_STATUS[result.error], result.error, result.message);
    return { name: result.listener, routes: result.routes, snapshot_version: result.version, ...withRevision(result.revision) };
  });

  app.get('/listeners/:name/acl', async (request, reply) => {
    const params = parse(listenerParams, request.params, 'name', reply);
    if (params === undefined) return reply;
    const found = find(params.value.name);
    if (found === undefined) return sendError(reply, 404, 'NOT_FOUND', `no listener "${params.value.name}"`);
    return { listener: found.name, allow: found.acl?.allow ?? [], deny: found.acl?.deny ?? [] };
  });

  // The documented maximum acl (10,000 blocks) is larger than the API's usual body limit.
  app.put('/listeners/:name/acl', { bodyLimit: ACL_BODY_LIMIT_BYTES }, async (request, reply) => {
    const params = parse(listenerParams, request.params, 'name', reply);
    if (params === undefined) return reply;
    if (typeof request.body !== 'object' || request.body === null || Array.isArray(request.body)) {
      return sendError(reply, 400, 'BAD_REQUEST', 'body: expected a JSON object like {"allow": ["10.0.0.0/8"], "deny": []}');
    }
    const body = parse(putAclBody, request.body, 'body', reply);
    if (body === undefined) return reply;
    if (deps.acls === undefined) return sendError(reply, 503, 'UNAVAILABLE', 'acl changes are not available');
    const result = await deps.acls.set(params.value.name, body.value);
    if (!result.ok) return sendError(reply, ACL_ERROR_STATUS[result.error], result.error, result.message);
    return { listener: params.value.name, allow: result.acl.allow, deny: result.acl.deny, snapshot_version: result.version, ...withRevision(result.revision) };
  });
}
