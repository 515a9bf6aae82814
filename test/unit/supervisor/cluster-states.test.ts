import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/shared/config/load.ts';
import { ClusterCell } from '../../../src/shared/cluster-state.ts';
import { ClusterStates } from '../../../src/supervisor/cluster-states.ts';

function config(clusters: string[]): ReturnType<typeof parseConfig> {
  return parseConfig(
    ['listeners:', '  - {name: web, listen: 127.0.0.1:8080, cluster: web}', 'clusters:', ...clusters].join('\n') + '\n',
    'config.yaml',
  );
}

describe('cluster state buffers', () => {
  it('gives every cluster a buffer, sized for its sticky table', () => {
    const states = new ClusterStates(config(['  - {name: web, sticky: {max_entries: 500}}', '  - {name: api}']));
    expect(states.get('web')?.affinityCapacity).toBe(500);
    expect(states.get('api')?.affinityCapacity).toBe(0);
    expect(states.bindings().map((b) => b.cluster)).toEqual(['web', 'api']);
  });

  it('keeps a cluster’s buffer (its queue and remembered clients) across a reload that leaves its table size alone', () => {
    const states = new ClusterStates(config(['  - {name: web, sticky: {max_entries: 500}}']));
    const before = states.get('web');
    before?.bump(ClusterCell.queuedTotal);
    expect(states.apply(config(['  - {name: web, sticky: {max_entries: 500, ttl: 1m}, max_connections: 3}']))).toBe(false);
    expect(states.get('web')).toBe(before);
    expect(states.get('web')?.statistics().queued_total).toBe(1);
  });

  it('reports a change when a cluster comes, goes or resizes its table', () => {
    const states = new ClusterStates(config(['  - {name: web}']));
    expect(states.apply(config(['  - {name: web}', '  - {name: api}']))).toBe(true);
    expect(states.apply(config(['  - {name: web, sticky: {}}', '  - {name: api}']))).toBe(true);
    expect(states.get('web')?.affinityCapacity).toBe(100_000);
    expect(states.apply(config(['  - {name: web, sticky: {}}']))).toBe(true);
    expect(states.get('api')).toBeUndefined();
  });

  it('gives a dead worker’s queue places back in every cluster', () => {
    const states = new ClusterStates(config(['  - {name: web}', '  - {name: api}']));
    states.get('web')?.tryEnterQueue(1, 10);
    states.get('api')?.tryEnterQueue(1, 10);
    states.get('api')?.tryEnterQueue(0, 10);
    states.clearWorker(1);
    expect(states.get('web')?.statistics().length).toBe(0);
    expect(states.get('api')?.statistics().length).toBe(1);
  });
});
