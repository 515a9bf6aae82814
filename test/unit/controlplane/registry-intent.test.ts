import { describe, expect, it } from 'vitest';
import { intentFromRegistry, mutationForAcl, mutationForBackend, mutationForRoutes, type Mutation, type NoMutation } from '../../../src/controlplane/registry/intent.ts';
import { formatKey } from '../../../src/controlplane/registry/keys.ts';
import { applyFullRead, emptyRegistryState, type RawKv, type RegistryState } from '../../../src/controlplane/registry/registry-state.ts';
import { desiredBackends } from '../../../src/controlplane/runtime-state.ts';
import type { BackendCommand } from '../../../src/shared/messages.ts';
import { parseConfig } from '../../../src/shared/config/load.ts';

const P = '/sluice/v1/';
const config = parseConfig(
  [
    'listeners:',
    '  - {name: web, listen: 127.0.0.1:8080, cluster: api}',
    'clusters:',
    '  - name: api',
    '    backends: [{address: 10.0.0.1:80, weight: 2}]',
    '  - name: canary',
    '    backends: []',
  ].join('\n'),
  'config.yaml',
);

const backendKey = (address: string, cluster = 'api'): string => formatKey(P, { kind: 'backend', cluster, address });
const overrideKey = (address: string, cluster = 'api'): string => formatKey(P, { kind: 'override', cluster, address });
const ROUTES = formatKey(P, { kind: 'routes', listener: 'web' });

function registry(entries: Record<string, object>): RegistryState {
  const kvs: RawKv[] = Object.entries(entries).map(([key, value], i) => ({ key, value: JSON.stringify(value), modRevision: 10 + i }));
  return applyFullRead(emptyRegistryState(P), kvs, 100).state;
}

describe('operator intent from the registry', () => {
  it.each<[string, Record<string, object>, { address: string; weight: number; drained: boolean }[]]>([
    ['nothing registered: the config alone', {}, [{ address: '10.0.0.1:80', weight: 2, drained: false }]],
    ['a registered backend is added', { [backendKey('10.0.0.9:80')]: { weight: 3 } }, [{ address: '10.0.0.1:80', weight: 2, drained: false }, { address: '10.0.0.9:80', weight: 3, drained: false }]],
    ['registering a config backend adds nothing', { [backendKey('10.0.0.1:80')]: { weight: 7 } }, [{ address: '10.0.0.1:80', weight: 2, drained: false }]],
    ['an override drains and reweighs a config backend', { [overrideKey('10.0.0.1:80')]: { drained: true, weight: 5 } }, [{ address: '10.0.0.1:80', weight: 5, drained: true }]],
    ['an override beats the registration weight', { [backendKey('10.0.0.9:80')]: { weight: 3 }, [overrideKey('10.0.0.9:80')]: { weight: 1, drained: true } }, [{ address: '10.0.0.1:80', weight: 2, drained: false }, { address: '10.0.0.9:80', weight: 1, drained: true }]],
    ['an override without its registration adds no backend', { [overrideKey('10.0.0.9:80')]: { drained: true } }, [{ address: '10.0.0.1:80', weight: 2, drained: false }]],
    ['removed takes a config backend out', { [overrideKey('10.0.0.1:80')]: { removed: true } }, []],
    ['a backend of a cluster the config lacks is ignored', { [backendKey('10.0.0.9:80', 'gone')]: { weight: 1 } }, [{ address: '10.0.0.1:80', weight: 2, drained: false }]],
  ])('%s', (_name, entries, expected) => {
    const desired = desiredBackends(config, intentFromRegistry(registry(entries), config));
    expect(desired.map((d) => ({ address: d.address, weight: d.weight, drained: d.drained }))).toEqual(expected);
  });

  it('routes and acls set in the registry are carried; routes naming an unknown cluster are not', () => {
    const intent = intentFromRegistry(
      registry({
        [ROUTES]: { routes: [{ cluster: 'api', weight: 9 }, { cluster: 'canary', weight: 1 }] },
        [formatKey(P, { kind: 'routes', listener: 'nope' })]: { routes: [{ cluster: 'api', weight: 1 }] },
        [formatKey(P, { kind: 'acl', listener: 'web' })]: { allow: ['10.0.0.0/8'], deny: [] },
      }),
      config,
    );
    expect(intent.routes).toEqual({ web: [{ cluster: 'api', weight: 9 }, { cluster: 'canary', weight: 1 }] });
    expect(intent.acls?.web?.acl).toEqual({ allow: ['10.0.0.0/8'], deny: [] });
  });
});

describe('the write for an admin command', () => {
  const state = registry({
    [backendKey('10.0.0.9:80')]: { weight: 3 }, // modRevision 10
    [overrideKey('10.0.0.9:80')]: { drained: true }, // 11
    [overrideKey('10.0.0.1:80')]: { removed: true, weight: 4 }, // 12
  });

  it.each<[string, BackendCommand, Mutation | NoMutation]>([
    ['add a new backend: put its key, expecting it absent', { op: 'add', cluster: 'api', address: '10.0.0.7:80', weight: 1 }, { op: 'put', entry: { key: { kind: 'backend', cluster: 'api', address: '10.0.0.7:80' }, value: { weight: 1 } }, expectedModRevision: 0 }],
    ['add back a removed config backend: lift the removal, keep the weight', { op: 'add', cluster: 'api', address: '10.0.0.1:80', weight: 4 }, { op: 'put', entry: { key: { kind: 'override', cluster: 'api', address: '10.0.0.1:80' }, value: { weight: 4 } }, expectedModRevision: 12 }],
    ['add back at the config weight: the override goes', { op: 'add', cluster: 'api', address: '10.0.0.1:80', weight: 2 }, { op: 'delete', key: { kind: 'override', cluster: 'api', address: '10.0.0.1:80' }, expectedModRevision: 12 }],
    ['remove a registered backend: delete its key', { op: 'remove', id: 'api:10.0.0.9:80', force: false }, { op: 'delete', key: { kind: 'backend', cluster: 'api', address: '10.0.0.9:80' }, expectedModRevision: 10 }],
    ['remove an unknown backend: nothing', { op: 'remove', id: 'api:10.0.0.8:80', force: false }, { op: 'none' }],
    ['drain: merge into the override', { op: 'drain', id: 'api:10.0.0.1:80' }, { op: 'put', entry: { key: { kind: 'override', cluster: 'api', address: '10.0.0.1:80' }, value: { removed: true, weight: 4, drained: true } }, expectedModRevision: 12 }],
    ['drain a drained backend: nothing', { op: 'drain', id: 'api:10.0.0.9:80' }, { op: 'none' }],
    ['undrain the last field: delete the override', { op: 'undrain', id: 'api:10.0.0.9:80' }, { op: 'delete', key: { kind: 'override', cluster: 'api', address: '10.0.0.9:80' }, expectedModRevision: 11 }],
    ['weight of a registered backend: an override', { op: 'weight', id: 'api:10.0.0.9:80', weight: 6 }, { op: 'put', entry: { key: { kind: 'override', cluster: 'api', address: '10.0.0.9:80' }, value: { drained: true, weight: 6 } }, expectedModRevision: 11 }],
    ['weight of a config backend back to its config weight: drop the field', { op: 'weight', id: 'api:10.0.0.1:80', weight: 2 }, { op: 'put', entry: { key: { kind: 'override', cluster: 'api', address: '10.0.0.1:80' }, value: { removed: true } }, expectedModRevision: 12 }],
  ])('%s', (_name, command, expected) => {
    expect(mutationForBackend(state, config, command)).toEqual(expected);
  });

  it('routes equal to the config delete the override; others put it', () => {
    const withRoutes = registry({ [ROUTES]: { routes: [{ cluster: 'canary', weight: 1 }] } });
    expect(mutationForRoutes(withRoutes, config, { listener: 'web', routes: [{ cluster: 'api', weight: 1 }] })).toEqual({ op: 'delete', key: { kind: 'routes', listener: 'web' }, expectedModRevision: 10 });
    expect(mutationForRoutes(registry({}), config, { listener: 'web', routes: [{ cluster: 'api', weight: 1 }] })).toEqual({ op: 'none' });
    expect(mutationForRoutes(registry({}), config, { listener: 'web', routes: [{ cluster: 'canary', weight: 1 }] })).toEqual({ op: 'put', entry: { key: { kind: 'routes', listener: 'web' }, value: { routes: [{ cluster: 'canary', weight: 1 }] } }, expectedModRevision: 0 });
  });

  it('an acl is a put guarded by the current acl key', () => {
    expect(mutationForAcl(registry({ [formatKey(P, { kind: 'acl', listener: 'web' })]: { allow: [], deny: [] } }), 'web', { allow: [], deny: ['10.1.0.0/16'] })).toEqual({
      op: 'put',
      entry: { key: { kind: 'acl', listener: 'web' }, value: { allow: [], deny: ['10.1.0.0/16'] } },
      expectedModRevision: 10,
    });
  });
});
