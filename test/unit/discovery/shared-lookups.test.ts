/**
 * Clusters asking the same question share one source (one lookup per refresh); the handles
 * see every report, a late handle gets the last result at once, and the source stops with
 * its last handle. Also the merge the main thread applies to each status update.
 */
import { describe, expect, it } from 'vitest';
import { lookupKey, queryKey } from '../../../src/controlplane/discovery/query-key.ts';
import { SharedLookups } from '../../../src/controlplane/discovery/shared-lookups.ts';
import { createDiscoverySources } from '../../../src/controlplane/discovery/sources.ts';
import type { DiscoveryResult, DiscoverySource } from '../../../src/controlplane/discovery/types.ts';
import { mergeDiscoveryStatus, type DiscoveryStatus } from '../../../src/shared/discovery-status.ts';
import type { DnsDiscoveryConfig } from '../../../src/shared/config/discovery-schema.ts';

function fakeSource() {
  const created: { report: (r: DiscoveryResult) => void; stopped: boolean }[] = [];
  const create = (): DiscoverySource => {
    const entry = { report: (_r: DiscoveryResult): void => undefined, stopped: false };
    created.push(entry);
    return {
      start: (report) => void (entry.report = report),
      stop: () => {
        entry.stopped = true;
        return Promise.resolve();
      },
    };
  };
  return { created, create };
}

const answer: DiscoveryResult = { kind: 'answer', endpoints: [{ address: '127.0.0.1:1', weight: 1, tier: 0, condition: 'ready' }] };

describe('SharedLookups', () => {
  it('handles with one key share one source and each sees every report', () => {
    const shared = new SharedLookups();
    const fake = fakeSource();
    const seen: string[] = [];
    shared.source('k', fake.create).start(() => seen.push('a'));
    shared.source('k', fake.create).start(() => seen.push('b'));
    shared.source('other', fake.create).start(() => seen.push('c'));
    expect(fake.created).toHaveLength(2);
    fake.created[0]?.report(answer);
    expect(seen).toEqual(['a', 'b']);
  });

  it('a handle joining a running source gets its last result without waiting for a refresh', async () => {
    const shared = new SharedLookups();
    const fake = fakeSource();
    shared.source('k', fake.create).start(() => undefined);
    fake.created[0]?.report(answer);
    const late: DiscoveryResult[] = [];
    shared.source('k', fake.create).start((r) => late.push(r));
    await Promise.resolve();
    expect(late).toEqual([answer]);
  });

  it('the source stops with its last handle, and a new handle starts a new one', async () => {
    const shared = new SharedLookups();
    const fake = fakeSource();
    const a = shared.source('k', fake.create);
    const b = shared.source('k', fake.create);
    a.start(() => undefined);
    b.start(() => undefined);
    await a.stop();
    expect(fake.created[0]?.stopped).toBe(false);
    await b.stop();
    expect(fake.created[0]?.stopped).toBe(true);
    expect(shared.size).toBe(0);
    shared.source('k', fake.create).start(() => undefined);
    expect(fake.created).toHaveLength(2);
  });
});

describe('query keys', () => {
  const base: DnsDiscoveryConfig = { type: 'dns', name: '_api._tcp.Example.', record: 'srv', resolvers: ['127.0.0.1:53'], refresh: { min: 1000, max: 30_000, default: 5000 }, hold_obsolete: 30_000, hold_failure: 0 };
  const cases: { name: string; other: DnsDiscoveryConfig; sameQuery: boolean; sameLookup: boolean }[] = [
    { name: 'holds differ: the same lookup', other: { ...base, hold_obsolete: 1000 }, sameQuery: true, sameLookup: true },
    { name: 'the name differs only in case and final dot', other: { ...base, name: '_api._tcp.example' }, sameQuery: true, sameLookup: true },
    { name: 'the refresh window differs: same question, own lookup', other: { ...base, refresh: { min: 1000, max: 1000, default: 1000 } }, sameQuery: true, sameLookup: false },
    { name: 'another resolver', other: { ...base, resolvers: ['127.0.0.2:53'] }, sameQuery: false, sameLookup: false },
    { name: 'another record type', other: { ...base, name: 'api.example', record: 'a', port: 80 }, sameQuery: false, sameLookup: false },
  ];
  for (const c of cases) {
    it(c.name, () => {
      expect(queryKey(c.other) === queryKey(base)).toBe(c.sameQuery);
      expect(lookupKey(c.other) === lookupKey(base)).toBe(c.sameLookup);
    });
  }

  it('the control plane\'s factory starts one source for clusters with one lookup key, and one per Kubernetes cluster', () => {
    const fake = fakeSource();
    const create = createDiscoverySources(fake.create);
    create('a', base).start(() => undefined);
    create('b', { ...base, hold_obsolete: 1000 }).start(() => undefined);
    create('c', { ...base, resolvers: ['127.0.0.2:53'] }).start(() => undefined);
    const kube = { type: 'kubernetes', namespace: 'shop', service: 'web', port: 80 } as const;
    create('d', kube).start(() => undefined);
    create('e', kube).start(() => undefined);
    expect(fake.created).toHaveLength(4);
  });
});

describe('mergeDiscoveryStatus', () => {
  const full: DiscoveryStatus = {
    cluster: 'api',
    source: 'dns srv _api._tcp.example',
    up: true,
    synced: true,
    ready: true,
    fromCopy: false,
    lastSyncAt: 1,
    lastErrorAt: undefined,
    lastError: undefined,
    answer: [{ address: '127.0.0.1:1', weight: 1, tier: 0, condition: 'ready' }],
    refreshes: { answer: 1, empty: 0, error: 0 },
  };
  const { answer: _answer, ...withoutAnswer } = full;
  const cases: { name: string; previous: DiscoveryStatus | undefined; update: Parameters<typeof mergeDiscoveryStatus>[1]; answer: number }[] = [
    { name: 'a full update replaces the answer', previous: { ...full, answer: [] }, update: full, answer: 1 },
    { name: 'an update without an answer keeps the previous one', previous: full, update: { ...withoutAnswer, lastSyncAt: 2 }, answer: 1 },
    { name: 'an update without an answer and nothing before: empty', previous: undefined, update: withoutAnswer, answer: 0 },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const merged = mergeDiscoveryStatus(c.previous, c.update);
      expect(merged.answer).toHaveLength(c.answer);
      expect(merged.lastSyncAt).toBe(c.update.lastSyncAt);
    });
  }
});
