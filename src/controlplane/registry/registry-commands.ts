/**
 * Operators' writes with a registry: checked against what runs here exactly as without one
 * (a refused command writes nothing), turned into one guarded etcd write (intent.ts), and
 * answered once this instance's own watch has applied the write's revision. Nothing here
 * changes local state: the change arrives through the watch, as on every other instance.
 *
 * Each function returns in two stages: the outer promise settles once the write is done (the
 * caller's serial queue may then move on), `answer` once the change is applied here, which
 * needs that queue.
 */
import type { AclConfig, Config } from '../../shared/config/schema.ts';
import type { BackendCommand, BackendCommandResult, ListenerAclResult, RoutesCommand, RoutesCommandResult } from '../../shared/messages.ts';
import type { SnapshotBackend } from '../../shared/snapshot/types.ts';
import { checkBackendCommand, type CheckCore } from '../backend-commands.ts';
import { checkRoutesCommand } from '../route-commands.ts';
import { mutationForAcl, mutationForBackend, mutationForRoutes, type Mutation, type NoMutation } from './intent.ts';
import type { LinkWrite } from './registry-link.ts';
import type { RegistryState } from './registry-state.ts';

export interface Deferred<T> {
  readonly answer: Promise<T>;
}

/** The registry link as commands use it. */
export interface CommandLink {
  state(): RegistryState;
  write(mutation: Mutation | NoMutation): Promise<LinkWrite>;
  applied(revision: number): Promise<boolean>;
  notAppliedMessage(revision: number): string;
}

/** What a command reads of the control plane once its change is applied. */
export interface AppliedView {
  readonly config: () => Config;
  readonly version: () => number;
  readonly published: (id: string) => SnapshotBackend | undefined;
  readonly listenerRoutes: (listener: string) => readonly { cluster: string; weight: number }[] | undefined;
  readonly listenerAcl: (listener: string) => AclConfig | undefined;
}

type Refusal = { readonly ok: false; readonly error: 'CONFLICT' | 'UNAVAILABLE'; readonly message: string };

function now<T>(value: T): Deferred<T> {
  return { answer: Promise.resolve(value) };
}

/** Writes `mutation`, then waits for it here; `applied(revision)` builds the answer. */
async function writeThenWait<T>(link: CommandLink, mutation: Mutation | NoMutation, applied: (revision: number) => T): Promise<Deferred<T | Refusal>> {
  const written = await link.write(mutation);
  // The 409 waits until this instance applied the value that won, so the operator's retry is
  // decided from it (and does not conflict with the same write again).
  if (!written.ok && written.error === 'CONFLICT') return { answer: link.applied(written.currentRevision).then(() => ({ ok: false, error: 'CONFLICT', message: written.message })) };
  if (!written.ok) return now(written);
  const { revision } = written;
  return {
    answer: link.applied(revision).then((ok): T | Refusal => (ok ? applied(revision) : { ok: false, error: 'UNAVAILABLE', message: link.notAppliedMessage(revision) })),
  };
}

export async function registryBackendCommand(
  core: CheckCore,
  view: AppliedView,
  link: CommandLink,
  command: BackendCommand,
): Promise<Deferred<BackendCommandResult>> {
  const refusal = await checkBackendCommand(core, command);
  if (refusal !== undefined) return now(refusal);
  const mutation = mutationForBackend(link.state(), view.config(), command);
  const cluster = command.op === 'add' ? command.cluster : command.id.slice(0, command.id.indexOf(':'));
  const id = command.op === 'add' ? `${command.cluster}:${command.address}` : command.id;
  return writeThenWait(link, mutation, (revision) => ({ ok: true, version: view.version(), cluster, backend: view.published(id), revision }));
}

export async function registryRoutesCommand(view: AppliedView, link: CommandLink, command: RoutesCommand): Promise<Deferred<RoutesCommandResult>> {
  const refusal = checkRoutesCommand(view.config(), command);
  if (refusal !== undefined) return now(refusal);
  const mutation = mutationForRoutes(link.state(), view.config(), command);
  return writeThenWait(link, mutation, (revision) => ({
    ok: true,
    version: view.version(),
    listener: command.listener,
    routes: view.listenerRoutes(command.listener) ?? [],
    revision,
  }));
}

/** `refusal`: the checks the control plane runs for any acl change (listener, protocol, capacity). */
export async function registryAclCommand(
  view: AppliedView,
  link: CommandLink,
  listener: string,
  acl: AclConfig,
  refusal: Extract<ListenerAclResult, { ok: false }> | undefined,
): Promise<Deferred<ListenerAclResult>> {
  if (refusal !== undefined) return now(refusal);
  return writeThenWait(link, mutationForAcl(link.state(), listener, acl), (revision) => ({ ok: true, version: view.version(), acl: view.listenerAcl(listener) ?? acl, revision }));
}
