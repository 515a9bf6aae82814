/**
 * Operators' writes with a registry (registry-commands.ts), against a recording link: a
 * refused command writes nothing, a change is one guarded write answered once applied here,
 * a conflict answers 409 only after the winning value was applied, and etcd away is 503.
 */
import { describe, expect, it } from 'vitest';
import { BackendRegistry } from '../../../src/controlplane/backend-registry.ts';
import { initialRecord } from '../../../src/controlplane/health/state-machine.ts';
import type { Mutation, NoMutation } from '../../../src/controlplane/registry/intent.ts';
import { registryBackendCommand, registryRoutesCommand, type AppliedView, type CommandLink } from '../../../src/controlplane/registry/registry-commands.ts';
import type { LinkWrite } from '../../../src/controlplane/registry/registry-link.ts';
import { emptyRegistryState } from '../../../src/controlplane/registry/registry-state.ts';
import { SlotAllocator } from '../../../src/controlplane/slot-allocator.ts';
import { parseConfig } from '../../../src/shared/config/load.ts';

const config = parseConfig(
  [
    'listeners:',
    '  - {name: web, protocol: tcp, listen: 127.0.0.1:8080, cluster: web}',
    'clusters:',
    '  - {name: web, algorithm: round_robin, backends: [{address: 127.0.0.1:9001}]}',
    '',
  ].join('\n'),
  'config.yaml',
);

function setup(outcome: LinkWrite) {
  const registry = new BackendRegistry(config, new SlotAllocator(16));
  registry.add({ cluster: 'web', address: '127.0.0.1:9001', weight: 1, health: initialRecord(true, 'test', 0), passive: { failures: 0, successes: 0 } });
  const writes: (Mutation | NoMutation)[] = [];
  const waited: number[] = [];
  let release: (() => void) | undefined;
  const link: CommandLink = {
    state: () => emptyRegistryState('/p/'),
    write: (mutation) => {
      writes.push(mutation);
      return Promise.resolve(outcome);
    },
    applied: async (revision) => {
      waited.push(revision);
      await new Promise<void>((resolve) => (release = resolve));
      return true;
    },
    notAppliedMessage: (revision) => `not applied ${revision}`,
  };
  const view: AppliedView = {
    config: () => config,
    version: () => 42,
    published: () => undefined,
    listenerRoutes: () => [{ cluster: 'web', weight: 1 }],
    listenerAcl: () => undefined,
  };
  const core = { registry, addProblems: () => [] };
  return { core, view, link, writes, waited, release: () => release?.() };
}

describe('registry commands', () => {
  it.each([
    ['an unknown backend', { op: 'drain', id: 'web:127.0.0.1:1' } as const, 'NOT_FOUND'],
    ['an add to an unknown cluster', { op: 'add', cluster: 'nope', address: '127.0.0.1:2', weight: 1 } as const, 'NOT_FOUND'],
    ['an add of an address the cluster has', { op: 'add', cluster: 'web', address: '127.0.0.1:9001', weight: 1 } as const, 'CONFLICT'],
  ])('refuses %s without writing', async (_, command, error) => {
    const t = setup({ ok: true, revision: 1 });
    const { answer } = await registryBackendCommand(t.core, t.view, t.link, command);
    expect(await answer).toMatchObject({ ok: false, error });
    expect(t.writes).toEqual([]);
  });

  it('writes one guarded put and answers with the revision once it is applied here', async () => {
    const t = setup({ ok: true, revision: 17 });
    const { answer } = await registryBackendCommand(t.core, t.view, t.link, { op: 'drain', id: 'web:127.0.0.1:9001' });
    expect(t.writes).toEqual([{ op: 'put', entry: { key: { kind: 'override', cluster: 'web', address: '127.0.0.1:9001' }, value: { drained: true } }, expectedModRevision: 0 }]);
    expect(t.waited).toEqual([17]);
    let settled = false;
    void answer.then(() => (settled = true));
    await Promise.resolve();
    expect(settled).toBe(false);
    t.release();
    expect(await answer).toEqual({ ok: true, version: 42, cluster: 'web', backend: undefined, revision: 17 });
  });

  it('answers a conflict only after the winning revision is applied here', async () => {
    const t = setup({ ok: false, error: 'CONFLICT', message: 'changed; current value: {"weight":5}', currentRevision: 30 });
    const { answer } = await registryBackendCommand(t.core, t.view, t.link, { op: 'weight', id: 'web:127.0.0.1:9001', weight: 3 });
    expect(t.waited).toEqual([30]);
    t.release();
    expect(await answer).toEqual({ ok: false, error: 'CONFLICT', message: 'changed; current value: {"weight":5}' });
  });

  it('answers 503 at once when etcd is away', async () => {
    const t = setup({ ok: false, error: 'UNAVAILABLE', message: 'registry etcd http://127.0.0.1:2379: cannot write …' });
    const { answer } = await registryRoutesCommand(t.view, t.link, { listener: 'web', routes: [{ cluster: 'web', weight: 2 }] });
    expect(await answer).toMatchObject({ ok: false, error: 'UNAVAILABLE' });
    expect(t.waited).toEqual([]);
  });
});
