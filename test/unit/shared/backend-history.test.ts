import { describe, expect, it } from 'vitest';
import { BackendHistory, type TransitionReport } from '../../../src/shared/backend-history.ts';

function report(backend: string, n: number): TransitionReport {
  return { backend, at: new Date(n * 1000).toISOString(), from: 'healthy', to: 'draining', admin: 'none', reason: `failure ${n}`, snapshot_version: n };
}

describe('BackendHistory', () => {
  it('keeps transitions oldest first, per backend', () => {
    const history = new BackendHistory();
    history.record(report('web:a', 1));
    history.record(report('web:b', 2));
    history.record(report('web:a', 3));
    expect(history.of('web:a')?.map((t) => t.snapshot_version)).toEqual([1, 3]);
    expect(history.of('web:b')?.map((t) => t.reason)).toEqual(['failure 2']);
    expect(history.of('web:c')).toBeUndefined();
  });

  it('keeps the last perBackend transitions of a backend', () => {
    const history = new BackendHistory(3, 10);
    for (let n = 1; n <= 5; n++) history.record(report('web:a', n));
    expect(history.of('web:a')?.map((t) => t.snapshot_version)).toEqual([3, 4, 5]);
  });

  it('forgets the backend least recently written once maxBackends is passed', () => {
    const history = new BackendHistory(3, 2);
    history.record(report('web:a', 1));
    history.record(report('web:b', 2));
    history.record(report('web:a', 3));
    history.record(report('web:c', 4));
    expect(history.of('web:b')).toBeUndefined();
    expect(history.of('web:a')).toHaveLength(2);
    expect(history.of('web:c')).toHaveLength(1);
  });
});
