import { describe, expect, it } from 'vitest';
import {
  desiredBackends,
  EMPTY_RUNTIME_STATE,
  pruneForConfig,
  recordCommand,
  recordRoutes,
  type RuntimeState,
} from '../../../src/controlplane/runtime-state.ts';
import { parseConfig } from '../../../src/shared/config/load.ts';
import type { BackendCommand } from '../../../src/shared/messages.ts';

const config = parseConfig(
  [
    'listeners: [{name: web, listen: "127.0.0.1:1", cluster: web}]',
    'clusters:',
    '  - name: web',
    '    backends: [{address: "127.0.0.1:9001", weight: 2}, {address: "127.0.0.1:9002"}]',
    '  - name: api',
    '    backends: []',
    '',
  ].join('\n'),
  'test.yaml',
);

const added = (address: string, weight = 1, cluster = 'web') => ({ cluster, address, weight });

type Row = [name: string, before: RuntimeState, command: BackendCommand, after: RuntimeState];

const S = EMPTY_RUNTIME_STATE;
const rows: Row[] = [
  ['adding a new backend records it', S, { op: 'add', cluster: 'web', address: '127.0.0.1:9009', weight: 3 }, { ...S, added: [added('127.0.0.1:9009', 3)] }],
  ['re-adding a removed config backend forgets the removal', { ...S, removed: ['web:127.0.0.1:9001'] }, { op: 'add', cluster: 'web', address: '127.0.0.1:9001', weight: 2 }, S],
  [
    're-adding it with another weight keeps the weight',
    { ...S, removed: ['web:127.0.0.1:9001'] },
    { op: 'add', cluster: 'web', address: '127.0.0.1:9001', weight: 7 },
    { ...S, weights: { 'web:127.0.0.1:9001': 7 } },
  ],
  ['removing a config backend records the removal', S, { op: 'remove', id: 'web:127.0.0.1:9001', force: false }, { ...S, removed: ['web:127.0.0.1:9001'] }],
  [
    'removing a runtime-added backend forgets it and its drain',
    { ...S, added: [added('127.0.0.1:9009')], drained: ['web:127.0.0.1:9009'] },
    { op: 'remove', id: 'web:127.0.0.1:9009', force: true },
    S,
  ],
  [
    'removing a reweighted config backend forgets the weight',
    { ...S, weights: { 'web:127.0.0.1:9002': 5 } },
    { op: 'remove', id: 'web:127.0.0.1:9002', force: false },
    { ...S, removed: ['web:127.0.0.1:9002'] },
  ],
  ['a drain is recorded once', { ...S, drained: ['web:127.0.0.1:9001'] }, { op: 'drain', id: 'web:127.0.0.1:9001' }, { ...S, drained: ['web:127.0.0.1:9001'] }],
  ['an undrain forgets the drain', { ...S, drained: ['web:127.0.0.1:9001'] }, { op: 'undrain', id: 'web:127.0.0.1:9001' }, S],
  ['reweighting a config backend records the weight', S, { op: 'weight', id: 'web:127.0.0.1:9002', weight: 4 }, { ...S, weights: { 'web:127.0.0.1:9002': 4 } }],
  ['reweighting back to the config weight forgets it', { ...S, weights: { 'web:127.0.0.1:9001': 9 } }, { op: 'weight', id: 'web:127.0.0.1:9001', weight: 2 }, S],
  [
    'reweighting a runtime-added backend changes its entry',
    { ...S, added: [added('127.0.0.1:9009')] },
    { op: 'weight', id: 'web:127.0.0.1:9009', weight: 8 },
    { ...S, added: [added('127.0.0.1:9009', 8)] },
  ],
];

describe('runtime state: (state, command) → state', () => {
  it.each(rows)('%s', (_name, before, command, after) => {
    expect(recordCommand(before, command, config)).toEqual(after);
  });

  it('leaves a state unchanged (same object) when a drain was already recorded', () => {
    const state = { ...S, drained: ['web:127.0.0.1:9001'] };
    expect(recordCommand(state, { op: 'drain', id: 'web:127.0.0.1:9001' }, config)).toBe(state);
  });
});

describe('desired backends', () => {
  it('are the config backends minus removed ones, reweighted, then the added ones, with drains', () => {
    const state: RuntimeState = {
      added: [added('127.0.0.1:9009', 4), added('127.0.0.1:7000', 1, 'api')],
      removed: ['web:127.0.0.1:9002'],
      drained: ['web:127.0.0.1:9009'],
      weights: { 'web:127.0.0.1:9001': 6 },
      routes: {},
    };
    expect(desiredBackends(config, state)).toEqual([
      { cluster: 'web', address: '127.0.0.1:9001', weight: 6, drained: false },
      { cluster: 'web', address: '127.0.0.1:9009', weight: 4, drained: true },
      { cluster: 'api', address: '127.0.0.1:7000', weight: 1, drained: false },
    ]);
  });

  it('drop what a new config makes meaningless', () => {
    const state: RuntimeState = {
      added: [added('127.0.0.1:9009'), added('127.0.0.1:1', 1, 'gone'), added('127.0.0.1:9002')],
      removed: ['web:127.0.0.1:9001', 'web:127.0.0.1:5555'],
      drained: ['gone:127.0.0.1:1', 'web:127.0.0.1:9009'],
      weights: { 'web:127.0.0.1:9002': 3, 'web:127.0.0.1:5555': 3 },
      routes: {},
    };
    expect(pruneForConfig(state, config)).toEqual({
      added: [added('127.0.0.1:9009')],
      removed: ['web:127.0.0.1:9001'],
      drained: ['web:127.0.0.1:9009'],
      weights: { 'web:127.0.0.1:9002': 3 },
      routes: {},
    });
  });
});

describe('listener routes in the runtime state', () => {
  const canary = [
    { cluster: 'web', weight: 9 },
    { cluster: 'api', weight: 1 },
  ];

  it('records routes that differ from the config, and forgets them when they match it again', () => {
    const set = recordRoutes(S, 'web', canary, config);
    expect(set.routes).toEqual({ web: canary });
    expect(recordRoutes(set, 'web', [{ cluster: 'web', weight: 1 }], config).routes).toEqual({});
  });

  it('drops routes of listeners or clusters a new config lacks, and routes that became the config’s', () => {
    const state: RuntimeState = { ...S, routes: { web: canary, gone: canary, other: [{ cluster: 'nowhere', weight: 1 }] } };
    expect(pruneForConfig(state, config).routes).toEqual({ web: canary });
    expect(pruneForConfig({ ...S, routes: { web: [{ cluster: 'web', weight: 1 }] } }, config).routes).toEqual({});
  });

  it('keeps routes through backend commands', () => {
    const state: RuntimeState = { ...S, routes: { web: canary } };
    expect(recordCommand(state, { op: 'remove', id: 'web:127.0.0.1:9001', force: false }, config).routes).toEqual({ web: canary });
    expect(recordCommand(state, { op: 'weight', id: 'web:127.0.0.1:9001', weight: 5 }, config).routes).toEqual({ web: canary });
  });
});
