/**
 * Listeners over HTTP: their edge settings (from the live snapshot) and counters, and their
 * acl. Changing an acl (`PUT /listeners/:name/acl`) needs the command channel to the
 * control plane.
 */
import type { FastifyInstance } from 'fastify';
import type { CounterTables } from '../../shared/counters.ts';
import type { SnapshotReader } from '../../shared/snapshot/reader.ts';
import { listenerView } from './listener-view.ts';

export interface ListenerRouteDeps {
  readonly snapshots: SnapshotReader;
  readonly counters: CounterTables;
  /** The listener's row in the counter table; undefined for a name never bound. */
  readonly listenerSlot: (name: string) => number | undefined;
}

interface NameParams {
  readonly name: string;
}

export function registerListenerRoutes(app: FastifyInstance, deps: ListenerRouteDeps): void {
  app.get('/listeners', () =>
    deps.snapshots.current().listeners.map((listener) => listenerView(listener, deps.counters, deps.listenerSlot(listener.name))),
  );

  app.get<{ Params: NameParams }>('/listeners/:name', async (request, reply) => {
    const listener = deps.snapshots.current().listeners.find((l) => l.name === request.params.name);
    if (listener === undefined) return reply.code(404).send({ error: 'NOT_FOUND', message: `no listener named "${request.params.name}"` });
    return listenerView(listener, deps.counters, deps.listenerSlot(listener.name));
  });

  app.get<{ Params: NameParams }>('/listeners/:name/acl', async (request, reply) => {
    const listener = deps.snapshots.current().listeners.find((l) => l.name === request.params.name);
    if (listener === undefined) return reply.code(404).send({ error: 'NOT_FOUND', message: `no listener named "${request.params.name}"` });
    return { listener: listener.name, allow: listener.acl?.allow ?? [], deny: listener.acl?.deny ?? [] };
  });
}
