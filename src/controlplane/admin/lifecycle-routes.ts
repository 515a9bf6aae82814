/**
 * Lifecycle over HTTP: POST /drain (what SIGTERM does; with {"handover": true} the caller is
 * a new Sluice process taking over the ports) and POST /config/reload (what SIGHUP does;
 * with ?dry_run=true it answers what a reload would do and applies nothing).
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { BackendPlan, CapacityProblem, UdpHandoverTable } from '../../shared/messages.ts';
import type { ConfigChanges } from '../../supervisor/config-changes.ts';

export type ReloadResult =
  | {
      readonly ok: true;
      readonly dryRun: boolean;
      /** The version holding the reload (for a dry run: the running one). */
      readonly snapshotVersion: number;
      readonly changes: ConfigChanges;
      readonly plan: BackendPlan;
      /** Settings that change only on restart, kept at their running values. */
      readonly ignored: readonly string[];
      /** Listeners that could not be opened (a dry run: whose address is taken now). */
      readonly failures: readonly string[];
    }
  | {
      readonly ok: false;
      readonly error: 'CONFIG_INVALID' | 'NO_CAPACITY' | 'UNAVAILABLE';
      readonly errors: readonly string[];
      readonly limits?: readonly CapacityProblem[];
      readonly plan?: BackendPlan;
      readonly dryRun?: boolean;
    };

export interface LifecycleControl {
  drain(options: { handover: boolean }): void;
  reload(options: { dryRun: boolean }): Promise<ReloadResult>;
  /** Handover: close the UDP listeners at once and answer with their sessions (for the successor). */
  handOverUdp?(): Promise<readonly UdpHandoverTable[]>;
  /** Handover, before the successor binds: share the UDP sessions among this process's workers; resolves with how many. */
  prepareHandover?(): Promise<number>;
}

const drainBody = z.strictObject({ handover: z.boolean().optional() }).optional();
const reloadQuery = z.strictObject({ dry_run: z.enum(['true', 'false']).optional() });

const REFUSAL_STATUS = { CONFIG_INVALID: 400, NO_CAPACITY: 507, UNAVAILABLE: 503 } as const;

export function registerLifecycleRoutes(app: FastifyInstance, lifecycle: LifecycleControl): void {
  app.post('/drain', async (request, reply) => {
    const body = drainBody.safeParse(request.body ?? undefined);
    if (!body.success) {
      return reply.code(400).send({ error: 'BAD_REQUEST', message: 'body must be empty or {"handover": true|false}' });
    }
    const handover = body.data?.handover === true;
    // The successor holds its UDP datagrams until it has these: no client gets a new backend.
    const udpSessions = handover ? await lifecycle.handOverUdp?.() : undefined;
    // Start draining only once this answer is on the wire: a handover closes this server.
    reply.raw.once('finish', () => {
      lifecycle.drain({ handover });
    });
    return reply.code(202).send({ status: 'draining', handover, ...(udpSessions === undefined ? {} : { udp_sessions: udpSessions }) });
  });

  // A successor about to bind beside this process (see supervisor/handover.ts).
  app.post('/handover/prepare', async (_request, reply) => {
    const shared = (await lifecycle.prepareHandover?.()) ?? 0;
    return reply.code(202).send({ status: 'prepared', udp_sessions: shared });
  });

  app.post('/config/reload', async (request, reply) => {
    const query = reloadQuery.safeParse(request.query);
    if (!query.success) return reply.code(400).send({ error: 'BAD_REQUEST', message: 'query: only dry_run=true|false is accepted' });
    const dryRun = query.data.dry_run === 'true';
    const result = await lifecycle.reload({ dryRun });
    if (result.ok) {
      // A listener that could not be opened makes the reload partial, not a plain success.
      const status = result.dryRun ? 'dry_run' : result.failures.length > 0 ? 'partial' : 'reloaded';
      return {
        status,
        snapshot_version: result.snapshotVersion,
        changes: result.changes,
        backends: result.plan,
        limits: [],
        ignored: result.ignored,
        failures: result.failures,
      };
    }
    if (result.error === 'NO_CAPACITY' && dryRun) {
      // The dry run did its job: it names the limits the reload would hit.
      return { status: 'dry_run', refused: true, backends: result.plan, limits: result.limits, errors: result.errors };
    }
    return reply.code(REFUSAL_STATUS[result.error]).send({
      error: result.error,
      message: result.errors.join('\n'),
      errors: result.errors,
      ...(result.limits === undefined ? {} : { limits: result.limits }),
      ...(result.plan === undefined ? {} : { backends: result.plan }),
    });
  });
}
