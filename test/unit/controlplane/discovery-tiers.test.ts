import { describe, expect, it } from 'vitest';
import { listedAddresses, type TierMember } from '../../../src/controlplane/discovery/tiers.ts';

const m = (address: string, tier: number, available: boolean, condition: TierMember['condition'] = 'ready'): TierMember => ({ address, tier, condition, available });

describe('listedAddresses: which discovered addresses take new connections', () => {
  it.each<[string, TierMember[], string[]]>([
    ['no members, nothing listed', [], []],
    ['one tier: every ready member', [m('a', 0, true), m('b', 0, false)], ['a', 'b']],
    ['the active tier only while it has an available member', [m('a', 0, true), m('b', 0, false), m('c', 1, true)], ['a', 'b']],
    ['the next tier once every member of the active one is unavailable', [m('a', 0, false), m('b', 0, false), m('c', 1, true), m('d', 2, true)], ['c']],
    ['nothing available: the best tier stays listed', [m('a', 0, false), m('c', 1, false)], ['a']],
    ['terminating endpoints only while nothing in their tier is ready', [m('a', 0, true), m('t', 0, true, 'terminating')], ['a']],
    ['terminating endpoints serve when no ready one is available', [m('a', 0, false), m('t', 0, true, 'terminating')], ['t']],
    ['not-ready endpoints are never listed', [m('n', 0, true, 'not_ready'), m('b', 1, true)], ['b']],
    ['only not-ready endpoints: nothing listed', [m('n', 0, true, 'not_ready')], []],
  ])('%s', (_name, members, listed) => {
    expect([...listedAddresses(members)].sort()).toEqual(listed);
  });
});
