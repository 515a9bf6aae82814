/**
 * Debugging and fault injection. /debug/resources is always on (leak checks read it); the
 * crash routes exist only when the process runs with SLUICE_FAULT_INJECTION=1.
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { ResourceReport } from '../../shared/messages.ts';

export interface FaultInjection {
  crashDataPlaneWorker(index: number): boolean;
  crashControlPlane(): boolean;
}

const workerParams = z.object({ index: z.coerce.number().int().min(0) });

export function registerDebugRoutes(
  app: FastifyInstance,
  workerResources: () => Promise<ResourceReport[]>,
  faults: FaultInjection | undefined,
): void {
  app.get('/debug/resources', async () => ({ workers: await workerResources() }));
  if (faults === undefined) return;

  app.post('/debug/workers/:index/crash', async (request, reply) => {
    const params = workerParams.safeParse(request.params);
    if (!params.success) return reply.code(400).send({ error: 'BAD_REQUEST', message: 'index must be a worker number' });
    if (!faults.crashDataPlaneWorker(params.data.index)) {
      return reply.code(404).send({ error: 'NOT_FOUND', message: `no running data-plane worker ${params.data.index}` });
    }
    return reply.code(202).send({ status: 'crashing', worker: params.data.index });
  });

  app.post('/debug/controlplane/crash', async (_request, reply) => {
    if (!faults.crashControlPlane()) return reply.code(404).send({ error: 'NOT_FOUND', message: 'no running control-plane worker' });
    return reply.code(202).send({ status: 'crashing' });
  });
}
