import { describe, expect, it } from 'vitest';
import { contentChanged, reuseUnchanged } from '../../../src/controlplane/backend-registry.ts';
import type { Snapshot, SnapshotCluster } from '../../../src/shared/snapshot/types.ts';
import { testBackend, testCluster, testListener } from '../../helpers/snapshot.ts';

type Content = Omit<Snapshot, 'version'>;

const listeners = [testListener({ name: 'l', cluster: 'a' })];
function cluster(name: string, weights: readonly number[], extra: Partial<SnapshotCluster> = {}): SnapshotCluster {
  const backends = weights.map((weight, i) => testBackend(`10.0.0.${i}:80`, { cluster: name, slot: i, weight }));
  return { ...testCluster({ name, backends }), ...extra };
}

const published: Content = { clusters: [cluster('a', [1, 1]), cluster('b', [1]), cluster('c', [])], listeners };

describe('reuseUnchanged', () => {
  // [name, next content built anew, which clusters (by index) must be the published objects]
  it.each<[string, Content, boolean[]]>([
    ['nothing changed: every cluster reused', { clusters: [cluster('a', [1, 1]), cluster('b', [1]), cluster('c', [])], listeners }, [true, true, true]],
    ['one weight in b: b new, a and c reused', { clusters: [cluster('a', [1, 1]), cluster('b', [2]), cluster('c', [])], listeners }, [true, false, true]],
    ['a backend added to a', { clusters: [cluster('a', [1, 1, 1]), cluster('b', [1]), cluster('c', [])], listeners }, [false, true, true]],
    ['a cluster setting of c', { clusters: [cluster('a', [1, 1]), cluster('b', [1]), cluster('c', [], { connectTimeoutMs: 1 })], listeners }, [true, true, false]],
    ['b and c swapped: equal content at another place is not reused', { clusters: [cluster('a', [1, 1]), cluster('c', []), cluster('b', [1])], listeners }, [true, false, false]],
    ['a cluster more at the end', { clusters: [cluster('a', [1, 1]), cluster('b', [1]), cluster('c', []), cluster('d', [])], listeners }, [true, true, true, false]],
  ])('%s', (_name, next, reused) => {
    const out = reuseUnchanged(published, next);
    expect(out.clusters.map((c, i) => c === published.clusters[i])).toEqual(reused);
    expect(out).toEqual(next);
    // Reuse never hides a change: the result differs from what was published exactly when `next` does.
    expect(contentChanged(published, out)).toBe(contentChanged(published, next));
  });

  it('with nothing published, returns what it was given', () => {
    const next: Content = { clusters: [cluster('a', [1])], listeners };
    expect(reuseUnchanged(undefined, next)).toBe(next);
  });
});
