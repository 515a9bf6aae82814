/**
 * /backends: read from the published snapshot and the shared counters (no message to the
 * control plane); every write is a command to the control plane, answered only once the
 * snapshot holding it is published, with that `snapshot_version`. A refused write changes
 * nothing.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { z } from 'zod';
import type { CounterTables } from '../../shared/counters.ts';
import type { BackendCommand, BackendCommandResult } from '../../shared/messages.ts';
import type { SnapshotReader } from '../../shared/snapshot/reader.ts';
import { backendView, backendViews, findBackend } from './backend-view.ts';
import { COMMAND_ERROR_STATUS, sendError, withRevision } from './errors.ts';
import { addBackendBody, backendParams, deleteQuery, describeIssues, emptyBody, patchBackendBody } from './schemas.ts';

/** The control plane's side of backend writes (ControlPlaneHost in the daemon, a fake in tests). */
export interface BackendCommands {
  run(command: BackendCommand): Promise<BackendCommandResult>;
}

export interface BackendRouteDeps {
  readonly snapshots: SnapshotReader;
  readonly counters: CounterTables;
  readonly commands: BackendCommands;
}

const DEFAULT_WEIGHT = 1;

export function registerBackendRoutes(app: FastifyInstance, deps: BackendRouteDeps): void {
  const { snapshots, counters, commands } = deps;

  /** Parses `value` or answers 400 naming the field; `undefined` means the reply was sent. */
  function parse<T>(schema: z.ZodType<T>, value: unknown, root: string, reply: FastifyReply): { readonly value: T } | undefined {
    const result = schema.safeParse(value);
    if (result.success) return { value: result.data };
    void sendError(reply, 400, 'BAD_REQUEST', describeIssues(result.error, root));
    return undefined;
  }

  async function answer(reply: FastifyReply, command: BackendCommand, okStatus: (result: Extract<BackendCommandResult, { ok: true }>) => number): Promise<FastifyReply> {
    const result = await commands.run(command);
    if (!result.ok) return sendError(reply, COMMAND_ERROR_STATUS[result.error], result.error, result.message);
    const view = result.backend === undefined ? undefined : backendView(result.cluster, result.backend, counters);
    const id = 'id' in command ? command.id : `${command.cluster}:${command.address}`;
    const body = view === undefined ? { id, state: 'removed', snapshot_version: result.version, ...withRevision(result.revision) } : { ...view, snapshot_version: result.version, ...withRevision(result.revision) };
    return reply.code(okStatus(result)).send(body);
  }

  app.get('/backends', () => backendViews(snapshots.current(), counters));

  app.get('/backends/:id', async (request, reply) => {
    const params = parse(backendParams, request.params, 'id', reply);
    if (params === undefined) return reply;
    const { id } = params.value;
    const found = findBackend(snapshots.current(), id);
    if (found === undefined) return sendError(reply, 404, 'NOT_FOUND', `no backend ${id}`);
    return backendView(found.cluster, found.backend, counters);
  });

  app.post('/backends', async (request, reply) => {
    const body = parse(addBackendBody, request.body, 'body', reply);
    if (body === undefined) return reply;
    const { cluster, address, weight } = body.value;
    return answer(reply, { op: 'add', cluster, address, weight: weight ?? DEFAULT_WEIGHT }, () => 201);
  });

  app.patch('/backends/:id', async (request, reply) => {
    const params = parse(backendParams, request.params, 'id', reply);
    const body = params === undefined ? undefined : parse(patchBackendBody, request.body, 'body', reply);
    if (params === undefined || body === undefined) return reply;
    return answer(reply, { op: 'weight', id: params.value.id, weight: body.value.weight }, () => 200);
  });

  for (const op of ['drain', 'undrain'] as const) {
    app.post(`/backends/:id/${op}`, async (request, reply) => {
      const params = parse(backendParams, request.params, 'id', reply);
      const body = params === undefined ? undefined : parse(emptyBody, request.body, 'body', reply);
      if (params === undefined || body === undefined) return reply;
      return answer(reply, { op, id: params.value.id }, () => 200);
    });
  }

  app.delete('/backends/:id', async (request, reply) => {
    const params = parse(backendParams, request.params, 'id', reply);
    const query = params === undefined ? undefined : parse(deleteQuery, request.query, 'query', reply);
    if (params === undefined || query === undefined) return reply;
    // 200 once it is gone; 202 while it drains (it leaves when its last connection closes).
    const force = query.value.force === 'true';
    return answer(reply, { op: 'remove', id: params.value.id, force }, (result) => (result.backend === undefined ? 200 : 202));
  });
}
