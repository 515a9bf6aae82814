/**
 * /listeners: each listener's edge settings (from the live snapshot) with its counters, and
 * its acl. `PUT /listeners/:name/acl` replaces the acl through the control plane (recorded in
 * the state file, then published) and answers with the `snapshot_version` that holds it:
 * the next accepted connection is checked against it. It lasts until config.yaml's own acl
 * for that listener changes (see acl-overrides.ts).
 */
import type { FastifyInstance } from 'fastify';
import { aclSchema } from '../../shared/config/schema.ts';
import type { AclConfig } from '../../shared/config/schema.ts';
import type { CounterTables } from '../../shared/counters.ts';
import type { ListenerAclResult } from '../../shared/messages.ts';
import type { SnapshotReader } from '../../shared/snapshot/reader.ts';
import { sendError } from './errors.ts';
import { listenerView } from './listener-view.ts';
import { describeIssues } from './schemas.ts';

/** The control plane's side of acl writes (ControlPlaneHost in the daemon, a fake in tests). */
export interface ListenerAcls {
  set(listener: string, acl: AclConfig): Promise<ListenerAclResult>;
}

export interface ListenerRouteDeps {
  readonly snapshots: SnapshotReader;
  readonly counters: CounterTables;
  /** The listener's row in the counter table; undefined for a name never bound. */
  readonly listenerSlot: (name: string) => number | undefined;
  /** Undefined: acl writes answer 503. */
  readonly acls: ListenerAcls | undefined;
}

interface NameParams {
  readonly name: string;
}

/** A PUT body replaces the whole acl: a missing list is an empty one. */
export const putAclBody = aclSchema;

export function registerListenerRoutes(app: FastifyInstance, deps: ListenerRouteDeps): void {
  const find = (name: string) => deps.snapshots.current().listeners.find((l) => l.name === name);

  app.get('/listeners', () =>
    deps.snapshots.current().listeners.map((listener) => listenerView(listener, deps.counters, deps.listenerSlot(listener.name))),
  );

  app.get<{ Params: NameParams }>('/listeners/:name', async (request, reply) => {
    const listener = find(request.params.name);
    if (listener === undefined) return sendError(reply, 404, 'NOT_FOUND', `no listener named "${request.params.name}"`);
    return listenerView(listener, deps.counters, deps.listenerSlot(listener.name));
  });

  app.get<{ Params: NameParams }>('/listeners/:name/acl', async (request, reply) => {
    const listener = find(request.params.name);
    if (listener === undefined) return sendError(reply, 404, 'NOT_FOUND', `no listener named "${request.params.name}"`);
    return { listener: listener.name, allow: listener.acl?.allow ?? [], deny: listener.acl?.deny ?? [] };
  });

  app.put<{ Params: NameParams }>('/listeners/:name/acl', async (request, reply) => {
    if (typeof request.body !== 'object' || request.body === null || Array.isArray(request.body)) {
      return sendError(reply, 400, 'BAD_REQUEST', 'body: expected a JSON object like {"allow": ["10.0.0.0/8"], "deny": []}');
    }
    const body = putAclBody.safeParse(request.body);
    if (!body.success) return sendError(reply, 400, 'BAD_REQUEST', describeIssues(body.error, 'body'));
    if (deps.acls === undefined) return sendError(reply, 503, 'UNAVAILABLE', 'acl changes are not available');
    const result = await deps.acls.set(request.params.name, body.data);
    if (!result.ok) return sendError(reply, result.error === 'NOT_FOUND' ? 404 : 503, result.error, result.message);
    return { listener: request.params.name, allow: result.acl.allow, deny: result.acl.deny, snapshot_version: result.version };
  });
}
