/**
 * The one capacity check (validate, run, reload, admin writes): each limit at its bound fits,
 * one over is named with what it needs and its bound; a config's need counts the state
 * file's added backends and measures the snapshot it would publish.
 */
import { describe, expect, it } from 'vitest';
import { assertConfigFits, capacityProblems, configNeed } from '../../../src/controlplane/capacity.ts';
import { EMPTY_RUNTIME_STATE } from '../../../src/controlplane/runtime-state.ts';
import { parseConfig } from '../../../src/shared/config/load.ts';
import { SluiceError } from '../../../src/shared/errors.ts';

const limits = { backendSlots: 10, snapshotBytes: 1000, listenerSlots: 2 };

describe('capacityProblems', () => {
  it.each<[string, Parameters<typeof capacityProblems>[0], [string, string, number, number][]]>([
    ['everything at its bound fits', { backendSlots: 10, snapshotBytes: 1000, listenerSlots: 2 }, []],
    ['one slot over', { backendSlots: 11 }, [['backend_slots', 'SLUICE_CAPACITY_EXCEEDED', 11, 10]]],
    ['one byte over', { snapshotBytes: 1001 }, [['snapshot_bytes', 'SLUICE_SNAPSHOT_TOO_LARGE', 1001, 1000]]],
    ['one listener over', { listenerSlots: 3 }, [['listener_slots', 'SLUICE_CAPACITY_EXCEEDED', 3, 2]]],
    [
      'every limit at once, each named',
      { backendSlots: 20, snapshotBytes: 2000, listenerSlots: 4 },
      [
        ['backend_slots', 'SLUICE_CAPACITY_EXCEEDED', 20, 10],
        ['snapshot_bytes', 'SLUICE_SNAPSHOT_TOO_LARGE', 2000, 1000],
        ['listener_slots', 'SLUICE_CAPACITY_EXCEEDED', 4, 2],
      ],
    ],
    ['a field left out is not checked', {}, []],
  ])('%s', (_name, need, expected) => {
    expect(capacityProblems(need, limits).map((p) => [p.limit, p.code, p.needed, p.bound])).toEqual(expected);
  });

  it('says what needs how much and what the bound is', () => {
    expect(capacityProblems({ snapshotBytes: 1001 }, limits)[0]?.message).toBe(
      'snapshot_bytes: the snapshot would encode to 1001 bytes, a snapshot slot holds 1000 bytes (fewer or shorter acl blocks, fewer backends, or a larger capacity.backends)',
    );
  });
});

describe('configNeed', () => {
  const config = parseConfig(
    ['listeners: [{name: web, listen: "127.0.0.1:1", cluster: web}]', 'clusters: [{name: web, backends: [{address: "127.0.0.1:9001"}, {address: "127.0.0.1:9002"}]}]', ''].join('\n'),
    'c.yaml',
  );

  it('counts the file’s backends, the state file’s additions and its listeners', () => {
    const added = { ...EMPTY_RUNTIME_STATE, added: [{ cluster: 'web', address: '127.0.0.1:9003', weight: 1 }] };
    const plain = configNeed(config);
    const more = configNeed(config, added);
    expect([plain.backendSlots, more.backendSlots, plain.listenerSlots]).toEqual([2, 3, 1]);
    expect(more.snapshotBytes).toBeGreaterThan(plain.snapshotBytes);
  });

  it('refuses a file over a limit with the first limit’s code and every message', () => {
    const many = parseConfig(
      [
        'listeners: [{name: web, listen: "127.0.0.1:1", cluster: web}]',
        'clusters:',
        '  - name: web',
        '    backends:',
        ...Array.from({ length: 16_385 }, (_, i) => `      - {address: "127.0.0.2:${1 + i}"}`),
        '',
      ].join('\n'),
      'big.yaml',
    );
    let thrown: unknown;
    try {
      assertConfigFits(many, 'big.yaml');
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(SluiceError);
    expect((thrown as SluiceError).code).toBe('SLUICE_CAPACITY_EXCEEDED');
    expect((thrown as SluiceError).message).toBe(
      'big.yaml: over a capacity limit:\n  backend_slots: needs 16385 backend counter slots, the limit is 16384 (capacity.backends; a removed backend keeps its slot until its connections closed)',
    );
    expect(() => assertConfigFits(config, 'c.yaml')).not.toThrow();
  });
});
