import { describe, expect, it } from 'vitest';
import { capacityProblems, limitsFor } from '../../../src/controlplane/capacity.ts';
import { parseConfig } from '../../../src/shared/config/load.ts';
import { restartOnlyChanges } from '../../../src/supervisor/config-changes.ts';
import { CONFIG_FILE, errorsOf, yaml } from '../../helpers/config.ts';

const REST = ['listeners:', '  - {name: web, listen: 127.0.0.1:8080, cluster: web}', 'clusters:', '  - name: web', '    backends: [{address: 127.0.0.1:9001}]'];

describe('capacity.backends', () => {
  it.each<[string, string[], number]>([
    ['absent: the default', [], 16_384],
    ['the smallest', ['capacity: {backends: 1024}'], 1_024],
    ['the largest', ['capacity: {backends: 1048576}'], 1_048_576],
    ['an empty capacity block: the default', ['capacity: {}'], 16_384],
  ])('%s', (_name, lines, backends) => {
    expect(parseConfig(yaml(...lines, ...REST), CONFIG_FILE).capacity.backends).toBe(backends);
  });

  it.each<[string, string, string]>([
    ['below the bound', 'capacity: {backends: 1023}', 'config.yaml:1:22 capacity.backends: expected an integer from 1024 to 1048576'],
    ['above the bound', 'capacity: {backends: 1048577}', 'config.yaml:1:22 capacity.backends: expected an integer from 1024 to 1048576'],
    ['not a number', 'capacity: {backends: lots}', 'config.yaml:1:22 capacity.backends: expected an integer from 1024 to 1048576'],
    ['a fraction', 'capacity: {backends: 2048.5}', 'config.yaml:1:22 capacity.backends: expected an integer from 1024 to 1048576'],
  ])('refuses %s', (_name, line, message) => {
    expect(errorsOf(yaml(line, ...REST))).toEqual([message]);
  });

  it('refuses a misspelt key inside capacity', () => {
    expect(errorsOf(yaml('capacity: {backend: 40000}', ...REST)).join('\n')).toMatch(/capacity: unknown key "backend"/);
  });

  // [backends, counter slots, snapshot slot bytes]: 512 bytes a backend, never below 8 MiB.
  it.each<[number, number, number]>([
    [1_024, 1_024, 8 * 1024 * 1024],
    [16_384, 16_384, 8 * 1024 * 1024],
    [40_000, 40_000, 20_480_000],
    [1_048_576, 1_048_576, 512 * 1024 * 1024],
  ])('capacity.backends %i sizes %i counter slots and a %i-byte snapshot slot', (backends, slots, bytes) => {
    expect(limitsFor({ capacity: { backends } })).toEqual({ backendSlots: slots, snapshotBytes: bytes, listenerSlots: 256 });
  });

  it('the limit a check names is the configured one, with the key that raises it', () => {
    const [problem] = capacityProblems({ backendSlots: 40_001 }, limitsFor({ capacity: { backends: 40_000 } }));
    expect(problem?.message).toBe(
      'backend_slots: needs 40001 backend counter slots, the limit is 40000 (capacity.backends; a removed backend keeps its slot until its connections closed)',
    );
  });

  it('a reload keeps the running value and names the key it could not apply', () => {
    const running = parseConfig(yaml('capacity: {backends: 40000}', ...REST), CONFIG_FILE);
    const loaded = parseConfig(yaml('capacity: {backends: 50000}', ...REST), CONFIG_FILE);
    const { config, ignored } = restartOnlyChanges(running, loaded);
    expect(ignored).toEqual(['capacity.backends']);
    expect(config.capacity.backends).toBe(40_000);
    expect(restartOnlyChanges(running, running).ignored).toEqual([]);
  });
});
