import { describe, expect, it } from 'vitest';
import { formatKey, parseEntry, parseKey, type RegistryKey } from '../../../src/controlplane/registry/keys.ts';
import {
  applyEvents,
  applyFullRead,
  emptyRegistryState,
  type RawEvent,
  type RawKv,
  type RegistryChange,
  type RegistryState,
} from '../../../src/controlplane/registry/registry-state.ts';
import { resyncDelay, retryDelay } from '../../../src/controlplane/registry/watch-loop.ts';
import { leaseTtlSeconds, parseRegisterArgs, registrationProblem } from '../../../src/controlplane/registry/registration.ts';

const P = '/sluice/v1/';
const B1 = `${P}clusters/api/backends/10.0.0.1:80`;
const B2 = `${P}clusters/api/backends/10.0.0.2:80`;
const O1 = `${P}clusters/api/overrides/10.0.0.1:80`;

const put = (key: string, value: string, modRevision: number): RawEvent => ({ type: 'put', key, value, modRevision });
const del = (key: string, modRevision: number): RawEvent => ({ type: 'delete', key, modRevision });
const kv = (key: string, value: string, modRevision: number): RawKv => ({ key, value, modRevision });

/** Changes as short strings: `put <key> <value>` / `delete <key>`. */
function brief(changes: readonly RegistryChange[]): string[] {
  return changes.map((c) => (c.type === 'put' ? `put ${formatKey(P, c.entry.key)} ${JSON.stringify(c.entry.value)}` : `delete ${formatKey(P, c.key)}`));
}

function stateWith(kvs: readonly RawKv[], revision: number): RegistryState {
  return applyFullRead(emptyRegistryState(P), kvs, revision).state;
}

describe('registry keys', () => {
  it.each<[string, RegistryKey | undefined]>([
    [B1, { kind: 'backend', cluster: 'api', address: '10.0.0.1:80' }],
    [O1, { kind: 'override', cluster: 'api', address: '10.0.0.1:80' }],
    [`${P}clusters/api/backends/[::1]:80`, { kind: 'backend', cluster: 'api', address: '[::1]:80' }],
    [`${P}listeners/web/routes`, { kind: 'routes', listener: 'web' }],
    [`${P}listeners/web/acl`, { kind: 'acl', listener: 'web' }],
    [`${P}instances/lb-1`, { kind: 'instance', instance: 'lb-1' }],
    [`${P}clusters/api/backends/not-an-address`, undefined],
    [`${P}clusters/api/other/10.0.0.1:80`, undefined],
    [`${P}clusters/api/backends/10.0.0.1:80/extra`, undefined],
    [`${P}listeners/web/limits`, undefined],
    [`${P}instances/`, undefined],
    ['/other/instances/lb-1', undefined],
  ])('%s means %j, and formats back', (full, meaning) => {
    expect(parseKey(P, full)).toEqual(meaning);
    if (meaning !== undefined) expect(formatKey(P, meaning)).toBe(full);
  });

  it.each([
    [B1, '{"weight":3}', { ok: true }],
    [B1, '{}', { ok: true }],
    [B1, '{"weight":3,"from":"a newer tool"}', { ok: true }],
    [B1, '{"weight":-1}', { ok: false, problem: /^unexpected value at weight: / }],
    [B1, 'weight=3', { ok: false, problem: /^value is not JSON/ }],
    [O1, '{}', { ok: false, problem: /at least one of drained, weight, removed/ }],
    [O1, '{"drained":true}', { ok: true }],
    [`${P}listeners/web/routes`, '{"routes":[]}', { ok: false, problem: /routes/ }],
    [`${P}listeners/web/acl`, '{"allow":["10.0.0.0/8"],"deny":[]}', { ok: true }],
    [`${P}listeners/web/acl`, '{"allow":["10.0.0.0/33"]}', { ok: false, problem: /allow/ }],
    [`${P}instances/lb-1`, '{"version":"1"}', { ok: false, problem: /revision/ }],
    [`${P}clusters/api/strange/10.0.0.1:80`, '{}', { ok: false, problem: /not a key of the registry layout/ }],
  ])('%s = %s parses as %j', (full, text, expected) => {
    const parsed = parseEntry(P, full, text);
    expect(parsed.ok).toBe(expected.ok);
    if (!parsed.ok && 'problem' in expected) expect(parsed.problem).toMatch(expected.problem);
  });
});

describe('applying watch events', () => {
  const base = stateWith([kv(B1, '{"weight":1}', 5)], 5);

  it.each<[string, RegistryState, RawEvent[], string[]]>([
    ['a new key is a put', base, [put(B2, '{"weight":2}', 6)], [`put ${B2} {"weight":2}`]],
    ['a changed value is a put', base, [put(B1, '{"weight":4}', 6)], [`put ${B1} {"weight":4}`]],
    ['the same value written again is no change', base, [put(B1, '{"weight":1}', 6)], []],
    ['a delete of an applied key is a delete', base, [del(B1, 6)], [`delete ${B1}`]],
    ['a delete of an unknown key is nothing', base, [del(B2, 6)], []],
    ['a burst on one key coalesces to its last value', base, [put(B1, '{"weight":2}', 6), put(B1, '{"weight":3}', 7), put(B1, '{"weight":4}', 8)], [`put ${B1} {"weight":4}`]],
    ['a key added and removed within a batch is nothing', base, [put(B2, '{"weight":2}', 6), del(B2, 7)], []],
    ['a key removed and re-added with its old value is nothing', base, [del(B1, 6), put(B1, '{"weight":1}', 7)], []],
    ['changes come out in the order of their last event', base, [put(B2, '{}', 6), put(B1, '{"weight":9}', 7), put(B2, '{"weight":2}', 8)], [`put ${B1} {"weight":9}`, `put ${B2} {"weight":2}`]],
  ])('%s', (_name, state, events, expected) => {
    const step = applyEvents(state, events, 9);
    expect(brief(step.changes)).toEqual(expected);
    expect(step.state.revision).toBe(9);
    expect(step.problems).toEqual([]);
  });

  it('a put carries the previous entry, and each applied entry its mod revision', () => {
    const step = applyEvents(base, [put(B1, '{"weight":4}', 6)], 6);
    expect(step.changes).toEqual([{ type: 'put', entry: { key: { kind: 'backend', cluster: 'api', address: '10.0.0.1:80' }, value: { weight: 4 } }, modRevision: 6, previous: { key: { kind: 'backend', cluster: 'api', address: '10.0.0.1:80' }, value: { weight: 1 } } }]);
    expect(step.state.applied.get(B1)?.modRevision).toBe(6);
  });

  it('the same value written again keeps the entry but moves its mod revision (guarded writes compare against it)', () => {
    const step = applyEvents(base, [put(B1, '{"weight":1}', 6)], 6);
    expect(step.state.applied.get(B1)?.modRevision).toBe(6);
  });

  it('a bad value is reported once with its key and leaves the last good value applied', () => {
    const first = applyEvents(base, [put(B1, '{"weight":"x"}', 6), put(B2, '{"weight":2}', 7)], 7);
    expect(brief(first.changes)).toEqual([`put ${B2} {"weight":2}`]);
    expect(first.problems).toEqual([{ key: B1, modRevision: 6, problem: expect.stringMatching(/weight/) as unknown }]);
    expect(first.state.applied.get(B1)?.text).toBe('{"weight":1}');
    // The next full read still finds the bad value: not reported again, nothing deleted.
    const reread = applyFullRead(first.state, [kv(B1, '{"weight":"x"}', 6), kv(B2, '{"weight":2}', 7)], 8);
    expect(reread.problems).toEqual([]);
    expect(reread.changes).toEqual([]);
    // A good value replaces it.
    const fixed = applyEvents(reread.state, [put(B1, '{"weight":5}', 9)], 9);
    expect(brief(fixed.changes)).toEqual([`put ${B1} {"weight":5}`]);
    expect(fixed.state.rejected.size).toBe(0);
  });

  it('a batch that changes nothing returns the same maps (no copy per idle batch)', () => {
    const step = applyEvents(base, [del(B2, 6)], 6);
    expect(step.state.applied).toBe(base.applied);
  });
});

describe('diffing a full read against what is applied', () => {
  const applied = stateWith([kv(B1, '{"weight":1}', 5), kv(B2, '{"weight":2}', 6), kv(O1, '{"drained":true}', 7)], 7);

  it.each<[string, RawKv[], string[]]>([
    ['an identical read changes nothing', [kv(B1, '{"weight":1}', 5), kv(B2, '{"weight":2}', 6), kv(O1, '{"drained":true}', 7)], []],
    ['a key missing from the read gets a synthetic delete', [kv(B1, '{"weight":1}', 5), kv(O1, '{"drained":true}', 7)], [`delete ${B2}`]],
    ['an empty read deletes everything', [], [`delete ${B1}`, `delete ${B2}`, `delete ${O1}`]],
    ['changed and new keys are puts', [kv(B1, '{"weight":3}', 9), kv(B2, '{"weight":2}', 6), kv(O1, '{"drained":true}', 7), kv(`${P}listeners/web/routes`, '{"routes":[{"cluster":"api","weight":1}]}', 10)], [`put ${B1} {"weight":3}`, `put ${P}listeners/web/routes {"routes":[{"cluster":"api","weight":1}]}`]],
  ])('%s', (_name, kvs, expected) => {
    const step = applyFullRead(applied, kvs, 12);
    expect(brief(step.changes)).toEqual(expected);
    expect(step.state.revision).toBe(12);
    // After the step, the applied keys are exactly the read's usable keys.
    expect([...step.state.applied.keys()].sort()).toEqual(kvs.map((k) => k.key).sort());
  });

  it('a bad key that disappears is forgotten, so its return is reported again', () => {
    const bad = applyFullRead(applied, [kv(`${P}junk`, '{}', 8)], 8).state;
    expect(bad.rejected.has(`${P}junk`)).toBe(true);
    const gone = applyFullRead(bad, [], 9).state;
    expect(gone.rejected.size).toBe(0);
    expect(applyFullRead(gone, [kv(`${P}junk`, '{}', 8)], 10).problems).toHaveLength(1);
  });

  it('the revision never goes back (a read answered by a lagging member)', () => {
    expect(applyFullRead(applied, [], 3).state.revision).toBe(7);
  });
});

describe('timing of retries and re-reads', () => {
  it.each([
    [1, 0, 50],
    [1, 0.999, 100],
    [2, 0, 100],
    [3, 0.5, 300],
    [10, 0.999, 1999],
  ])('retry %i with random %f waits %i ms (100 ms doubling, capped at 2 s, jittered into 50..100 percent)', (failures, random, expected) => {
    expect(retryDelay(failures, 100, 2000, random)).toBe(expected);
  });

  it.each([
    [0, 48_000],
    [0.5, 60_000],
    [1, 72_000],
  ])('a re-read every 60 s with random %f comes after %i ms', (random, expected) => {
    expect(resyncDelay(60_000, random)).toBe(expected);
  });
});

describe('registration requests', () => {
  it.each([
    [{ cluster: 'api', address: '10.0.0.5:8080', weight: 1, ttlSeconds: 10 }, undefined],
    [{ cluster: 'api', address: '10.0.0.5', weight: 1, ttlSeconds: 10 }, '--address: expected host:port, got "10.0.0.5"'],
    [{ cluster: 'a/b', address: '10.0.0.5:8080', weight: 1, ttlSeconds: 10 }, '--cluster: expected a cluster name without / or spaces, got "a/b"'],
    [{ cluster: 'api', address: '10.0.0.5:8080', weight: 1.5, ttlSeconds: 10 }, '--weight: expected an integer from 0 to 10000'],
    [{ cluster: 'api', address: '10.0.0.5:8080', weight: 1, ttlSeconds: 0 }, '--ttl: expected at least 1s'],
  ])('%j -> %s', (request, problem) => {
    expect(registrationProblem(P, request)).toBe(problem);
  });

  it.each([
    [500, 1],
    [1000, 1],
    [1001, 2],
    [10_000, 10],
  ])('a ttl of %i ms is a lease of %i s', (ms, seconds) => {
    expect(leaseTtlSeconds(ms)).toBe(seconds);
  });
});

describe('sluice ctl register arguments', () => {
  it('defaults: the local etcd, /sluice/v1/, a 10 s lease, weight 1', () => {
    expect(parseRegisterArgs(['--cluster', 'api', '--address', '10.0.0.5:8080'])).toEqual({
      config: { endpoints: ['http://127.0.0.1:2379'], prefix: '/sluice/v1/', required: false },
      request: { cluster: 'api', address: '10.0.0.5:8080', weight: 1, ttlSeconds: 10 },
    });
  });

  it('all options', () => {
    const { config, request } = parseRegisterArgs(['--cluster', 'api', '--address', '10.0.0.5:8080', '--ttl', '2500ms', '--weight', '3', '--etcd', 'http://a:2379,http://b:2379', '--prefix', '/x/', '--username-env', 'U', '--password-env', 'P']);
    expect(config).toEqual({ endpoints: ['http://a:2379', 'http://b:2379'], prefix: '/x/', username_env: 'U', password_env: 'P', required: false });
    expect(request).toEqual({ cluster: 'api', address: '10.0.0.5:8080', weight: 3, ttlSeconds: 3 });
  });

  it.each([
    [['--address', '10.0.0.5:8080'], /^--cluster and --address are required\nusage: sluice ctl register/],
    [['--cluster', 'api', '--address', '10.0.0.5'], /^--address: expected host:port/],
    [['--cluster', 'api', '--address', '10.0.0.5:80', '--ttl', '10'], /^--ttl: expected a duration like 10s, got "10"/],
    [['--cluster', 'api', '--address', '10.0.0.5:80', '--weight=-1'], /^--weight: expected an integer/],
    [['--cluster', 'api', '--address', '10.0.0.5:80', '--weight', '-1'], /^Option '--weight' argument is ambiguous/],
    [['--cluster', 'api', '--address', '10.0.0.5:80', '--colour'], /^Unknown option '--colour'/],
    [['--cluster', 'api', '--address', '10.0.0.5:80', '--etcd', 'localhost:2379'], /^--etcd: expected an endpoint like http:\/\/127.0.0.1:2379/],
    [['--cluster', 'api', '--address', '10.0.0.5:80', 'extra'], /^unexpected argument "extra"/],
  ])('%j is a usage error: %s', (args, message) => {
    expect(() => parseRegisterArgs(args)).toThrow(message);
  });
});
