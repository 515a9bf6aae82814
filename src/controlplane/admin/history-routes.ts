/**
 * GET /backends/:id/history: the backend's last health transitions (from, to, reason,
 * snapshot version, time), oldest first. A removed backend keeps its history while there is
 * room (shared/backend-history.ts), so "why was it out at 03:12?" has an answer afterwards.
 */
import type { FastifyInstance } from 'fastify';
import type { BackendTransition } from '../../shared/backend-history.ts';
import type { SnapshotReader } from '../../shared/snapshot/reader.ts';
import { findBackend } from './backend-view.ts';
import { sendError } from './errors.ts';
import { backendParams, describeIssues } from './schemas.ts';

export interface HistoryRouteDeps {
  readonly snapshots: SnapshotReader;
  readonly backendHistory: { of(id: string): readonly BackendTransition[] | undefined };
}

export function registerHistoryRoutes(app: FastifyInstance, deps: HistoryRouteDeps): void {
  app.get('/backends/:id/history', async (request, reply) => {
    const params = backendParams.safeParse(request.params);
    if (!params.success) return sendError(reply, 400, 'BAD_REQUEST', describeIssues(params.error, 'id'));
    const { id } = params.data;
    const transitions = deps.backendHistory.of(id);
    if (transitions === undefined && findBackend(deps.snapshots.current(), id) === undefined) {
      return sendError(reply, 404, 'NOT_FOUND', `no backend ${id} and no recorded history for it`);
    }
    return { id, transitions: transitions ?? [] };
  });
}
