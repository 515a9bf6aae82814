/**
 * /listeners: each listener's weighted routes from the published snapshot with its live
 * counters (listener-view.ts: connections, refusals, UDP sessions), and
 * PATCH /listeners/:name/routes to re-split its new connections (a canary from 10% to 50%,
 * say) while traffic flows. The write is a command to the control plane, answered once the
 * snapshot holding the new routes is published, with that `snapshot_version`; open
 * connections are not touched. A refused write changes nothing.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { z } from 'zod';
import type { RoutesCommand, RoutesCommandError, RoutesCommandResult } from '../../shared/messages.ts';
import type { SnapshotReader } from '../../shared/snapshot/reader.ts';
import type { SnapshotListener } from '../../shared/snapshot/types.ts';
import { sendError } from './errors.ts';
import type { ListenerStats } from './listener-view.ts';
import { describeIssues, listenerParams, patchRoutesBody } from './schemas.ts';

/** The control plane's side of route writes (ControlPlaneHost in the daemon, a fake in tests). */
export interface RouteCommands {
  run(command: RoutesCommand): Promise<RoutesCommandResult>;
}

export interface ListenerView extends Partial<ListenerStats> {
  readonly name: string;
  readonly routes: readonly { readonly cluster: string; readonly weight: number }[];
}

/** A listener's counters, if the data plane runs it (a fake in tests). */
export type ListenerStatsSource = (name: string) => ListenerStats | undefined;

const ROUTES_ERROR_STATUS: Record<RoutesCommandError, number> = {
  BAD_REQUEST: 400,
  NOT_FOUND: 404,
  UNAVAILABLE: 503,
};

export function registerListenerRoutes(app: FastifyInstance, snapshots: SnapshotReader, commands: RouteCommands, stats: ListenerStatsSource): void {
  const view = (listener: SnapshotListener): ListenerView => ({
    name: listener.name,
    routes: listener.routes.map((r) => ({ cluster: r.cluster, weight: r.weight })),
    ...stats(listener.name),
  });

  function parse<T>(schema: z.ZodType<T>, value: unknown, root: string, reply: FastifyReply): { readonly value: T } | undefined {
    const result = schema.safeParse(value);
    if (result.success) return { value: result.data };
    void sendError(reply, 400, 'BAD_REQUEST', describeIssues(result.error, root));
    return undefined;
  }

  app.get('/listeners', () => snapshots.current().listeners.map(view));

  app.get('/listeners/:name', async (request, reply) => {
    const params = parse(listenerParams, request.params, 'name', reply);
    if (params === undefined) return reply;
    const found = snapshots.current().listeners.find((l) => l.name === params.value.name);
    if (found === undefined) return sendError(reply, 404, 'NOT_FOUND', `no listener "${params.value.name}"`);
    return view(found);
  });

  app.patch('/listeners/:name/routes', async (request, reply) => {
    const params = parse(listenerParams, request.params, 'name', reply);
    const body = params === undefined ? undefined : parse(patchRoutesBody, request.body, 'body', reply);
    if (params === undefined || body === undefined) return reply;
    const result = await commands.run({ listener: params.value.name, routes: body.value.routes });
    if (!result.ok) return sendError(reply, ROUTES_ERROR_STATUS[result.error], result.error, result.message);
    return { name: result.listener, routes: result.routes, snapshot_version: result.version };
  });
}
