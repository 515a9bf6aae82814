/**
 * Lifecycle over HTTP: POST /drain (what SIGTERM does; with {"handover": true} the caller is
 * a new Sluice process taking over the ports) and POST /config/reload (what SIGHUP does).
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { ConfigChanges } from '../../supervisor/config-changes.ts';

export type ReloadResult =
  | { readonly ok: true; readonly snapshotVersion: number; readonly changes: ConfigChanges; readonly failures: readonly string[] }
  | { readonly ok: false; readonly errors: readonly string[] };

export interface LifecycleControl {
  drain(options: { handover: boolean }): void;
  reload(): Promise<ReloadResult>;
}

const drainBody = z.strictObject({ handover: z.boolean().optional() }).optional();

export function registerLifecycleRoutes(app: FastifyInstance, lifecycle: LifecycleControl): void {
  app.post('/drain', async (request, reply) => {
    const body = drainBody.safeParse(request.body ?? undefined);
    if (!body.success) {
      return reply.code(400).send({ error: 'BAD_REQUEST', message: 'body must be empty or {"handover": true|false}' });
    }
    const handover = body.data?.handover === true;
    // Start draining only once this answer is on the wire: a handover closes this server.
    reply.raw.once('finish', () => {
      lifecycle.drain({ handover });
    });
    return reply.code(202).send({ status: 'draining', handover });
  });

  app.post('/config/reload', async (_request, reply) => {
    const result = await lifecycle.reload();
    if (result.ok) {
      return { status: 'reloaded', snapshot_version: result.snapshotVersion, changes: result.changes, failures: result.failures };
    }
    return reply.code(400).send({ error: 'CONFIG_INVALID', message: result.errors.join('\n'), errors: result.errors });
  });
}
