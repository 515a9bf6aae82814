import { describe, expect, it } from 'vitest';
import {
  ejectionMs,
  initialRecord,
  rampFraction,
  transition,
  type HealthEvent,
  type HealthPolicy,
  type HealthRecord,
} from '../../../src/controlplane/health/state-machine.ts';

const ACTIVE: HealthPolicy = {
  rise: 2,
  fall: 3,
  passiveFailures: 5,
  drainTimeoutMs: 1_000,
  activeChecks: true,
  baseEjectionMs: 30_000,
  maxEjectionMs: 300_000,
};
const PASSIVE_ONLY: HealthPolicy = { ...ACTIVE, rise: 1, fall: 1, activeChecks: false };

const T0 = 1_000_000;
const healthy = initialRecord(true, 'first probe passed: connected', 0);
const unhealthy = initialRecord(false, 'first probe failed: connection refused (ECONNREFUSED)', 0);
const drainingHealth: HealthRecord = { ...healthy, state: 'draining', up: false, drainStartedAt: T0, since: T0, reason: '3 failed probes in a row: x' };
const drainingAdmin: HealthRecord = { ...healthy, state: 'draining', admin: 'drain', drainStartedAt: T0, since: T0, reason: 'drained by an operator' };
const drainedAdmin: HealthRecord = { ...drainingAdmin, drained: true };
const drainedAdminDown: HealthRecord = { ...drainedAdmin, up: false };
const drainingAdminDown: HealthRecord = { ...drainingAdmin, up: false };
const removing: HealthRecord = { ...healthy, state: 'draining', admin: 'remove', drainStartedAt: T0, since: T0, reason: 'removed by an operator' };
const removed: HealthRecord = { ...removing, state: 'removed', drained: true };
const ejected: HealthRecord = { ...unhealthy, ejectedAt: T0, ejections: 1, reason: '5 failed connects in a row (passive)' };

const at = T0 + 100;
const ok: HealthEvent = { type: 'probe', ok: true, detail: 'HTTP 200', now: at };
const fail: HealthEvent = { type: 'probe', ok: false, detail: 'HTTP 503, expected 200', now: at };
const tick = (activeConnections: number, now = at): HealthEvent => ({ type: 'tick', activeConnections, now });
const passive = (failures: number, successes: number): HealthEvent => ({ type: 'passive', failures, successes, now: at });

type Row = [name: string, from: HealthRecord, event: HealthEvent, expected: Partial<HealthRecord>, policy?: HealthPolicy];

// Every row of DESIGN.md's table, and the edges around each.
const rows: Row[] = [
  // healthy
  ['healthy stays healthy on a passed probe', healthy, ok, { state: 'healthy', successes: 1, failures: 0 }],
  ['healthy stays healthy below fall failures', { ...healthy, failures: 1 }, fail, { state: 'healthy', failures: 2, up: true }],
  ['healthy drains at fall failures in a row', { ...healthy, failures: 2 }, fail, { state: 'draining', up: false, drainStartedAt: at, since: at, reason: '3 failed probes in a row: HTTP 503, expected 200' }],
  ['healthy stays healthy below the passive threshold', healthy, passive(4, 0), { state: 'healthy', passiveFailures: 4 }],
  ['healthy drains at the passive threshold', { ...healthy, passiveFailures: 3 }, passive(2, 0), { state: 'draining', up: false, ejectedAt: at, ejections: 1, reason: '5 failed connects in a row (passive)' }],
  ['a tick with a success ends the passive run', { ...healthy, passiveFailures: 4 }, passive(3, 1), { state: 'healthy', passiveFailures: 0 }],
  ['healthy stays healthy on a tick', healthy, tick(7), { state: 'healthy' }],
  ['healthy drains on an admin drain', healthy, { type: 'drain', now: at }, { state: 'draining', admin: 'drain', drained: false, drainStartedAt: at, reason: 'drained by an operator' }],
  ['healthy drains on an admin remove', healthy, { type: 'remove', force: false, now: at }, { state: 'draining', admin: 'remove', drained: false, reason: 'removed by an operator' }],
  ['healthy is removed at once on a forced remove', healthy, { type: 'remove', force: true, now: at }, { state: 'removed', drained: true, reason: 'removed by an operator (forced)' }],
  ['undrain of a backend nobody drained changes nothing', healthy, { type: 'undrain', now: at }, { state: 'healthy', admin: 'none' }],
  // draining (health)
  ['draining keeps draining while connections remain before the timeout', drainingHealth, tick(2, T0 + 999), { state: 'draining', drained: false }],
  ['draining ends at 0 connections', drainingHealth, tick(0), { state: 'unhealthy', drained: true, since: at, reason: '3 failed probes in a row: x' }],
  ['draining ends at the drain timeout', drainingHealth, tick(3, T0 + 1_000), { state: 'unhealthy', drained: true }],
  ['draining (health) needs rise passed probes to return', drainingHealth, ok, { state: 'draining', successes: 1 }],
  ['draining (health) returns to healthy at rise passed probes', { ...drainingHealth, successes: 1 }, ok, { state: 'healthy', up: true, drained: false, rampFrom: at, reason: '2 passed probes in a row' }],
  ['draining (health) is taken over by an admin drain', drainingHealth, { type: 'drain', now: at }, { state: 'draining', admin: 'drain', drainStartedAt: T0 }],
  // unhealthy
  ['unhealthy stays out below rise passed probes', unhealthy, ok, { state: 'unhealthy', successes: 1 }],
  ['unhealthy turns healthy at rise passed probes (slow start begins)', { ...unhealthy, successes: 1 }, ok, { state: 'healthy', drained: false, rampFrom: at, since: at }],
  ['unhealthy stays unhealthy on failures', unhealthy, fail, { state: 'unhealthy', failures: 2 }],
  ['unhealthy ignores ticks', unhealthy, tick(0, T0 + 10 * 60_000), { state: 'unhealthy' }],
  ['unhealthy drained by an operator shows draining, already drained', unhealthy, { type: 'drain', now: at }, { state: 'draining', admin: 'drain', drained: true }],
  ['unhealthy is removed at once (it holds no connection)', unhealthy, { type: 'remove', force: false, now: at }, { state: 'removed' }],
  // draining (admin)
  ['an admin drain ends at 0 connections but stays draining', drainingAdmin, tick(0), { state: 'draining', admin: 'drain', drained: true }],
  ['an admin drain ends at the drain timeout', drainingAdmin, tick(4, T0 + 1_000), { state: 'draining', drained: true }],
  ['passed probes do not undo an admin drain', { ...drainedAdminDown, successes: 1 }, ok, { state: 'draining', up: true, admin: 'drain' }],
  ['undrain returns a passing backend to healthy', drainedAdmin, { type: 'undrain', now: at }, { state: 'healthy', admin: 'none', drained: false, rampFrom: at, reason: 'undrained by an operator' }],
  ['undrain of a failing, drained backend leaves it unhealthy', drainedAdminDown, { type: 'undrain', now: at }, { state: 'unhealthy', admin: 'none', drained: true }],
  ['undrain of a failing backend with connections keeps draining for health', drainingAdminDown, { type: 'undrain', now: at }, { state: 'draining', admin: 'none', drained: false }],
  ['a second drain changes nothing', drainingAdmin, { type: 'drain', now: at }, { state: 'draining', admin: 'drain', since: T0 }],
  // remove
  ['a removal waits for connections before the timeout', removing, tick(1, T0 + 500), { state: 'draining', admin: 'remove' }],
  ['a removal completes at 0 connections', removing, tick(0), { state: 'removed', drained: true }],
  ['a removal completes at the drain timeout', removing, tick(9, T0 + 1_000), { state: 'removed', drained: true }],
  ['a forced remove cuts a removal short', removing, { type: 'remove', force: true, now: at }, { state: 'removed' }],
  ['undrain does not cancel a removal', removing, { type: 'undrain', now: at }, { state: 'draining', admin: 'remove' }],
  ['an admin drain does not cancel a removal', removing, { type: 'drain', now: at }, { state: 'draining', admin: 'remove' }],
  ['a draining backend is removed', drainingHealth, { type: 'remove', force: false, now: at }, { state: 'draining', admin: 'remove', drainStartedAt: T0 }],
  ['removed is terminal', removed, ok, { state: 'removed' }],
  ['removed ignores undrain', removed, { type: 'undrain', now: at }, { state: 'removed', admin: 'remove' }],
  // passive ejection and re-admission
  ['with active checks, an ejection ends only by passed probes', ejected, tick(0, T0 + 10 * 60_000), { state: 'unhealthy', up: false }],
  ['without active checks, an ejected backend waits out its ejection', ejected, tick(0, T0 + 29_999), { state: 'unhealthy' }, PASSIVE_ONLY],
  ['without active checks, an ejected backend is re-admitted after it', ejected, tick(0, T0 + 30_000), { state: 'healthy', up: true, ejectedAt: undefined, reason: 're-admitted after a 30s ejection' }, PASSIVE_ONLY],
  ['the third ejection in a row lasts three base times', { ...ejected, ejections: 3 }, tick(0, T0 + 60_000), { state: 'unhealthy' }, PASSIVE_ONLY],
  ['serving well for a base ejection time forgets earlier ejections', { ...healthy, ejections: 2, since: at - 30_000 }, passive(0, 4), { ejections: 0 }, PASSIVE_ONLY],
  ['successes soon after re-admission keep the ejection count', { ...healthy, ejections: 2, since: at - 1_000 }, passive(0, 4), { ejections: 2 }, PASSIVE_ONLY],
  ['passive failures of a backend already out change nothing', unhealthy, passive(50, 0), { state: 'unhealthy', ejectedAt: undefined }],
];

describe('health state machine: (state, event) → state', () => {
  it.each(rows)('%s', (_name, from, event, expected, policy = ACTIVE) => {
    expect(transition(from, event, policy)).toMatchObject(expected);
  });

  it('returns the same record when nothing about it changed', () => {
    expect(transition(removed, ok, ACTIVE)).toBe(removed);
  });
});

describe('flapping', () => {
  const alternate = (start: HealthRecord, probes: number, policy: HealthPolicy): HealthRecord[] => {
    const seen: HealthRecord[] = [];
    let r = start;
    for (let i = 0; i < probes; i++) {
      r = transition(r, { type: 'probe', ok: i % 2 === 0, detail: 'x', now: T0 + i * 1000 }, policy);
      r = transition(r, tick(0, T0 + i * 1000 + 500), policy);
      seen.push(r);
    }
    return seen;
  };

  it.each([
    ['rise 2 / fall 2', { ...ACTIVE, rise: 2, fall: 2 }],
    ['rise 2 / fall 3', ACTIVE],
    ['rise 3 / fall 2', { ...ACTIVE, rise: 3, fall: 2 }],
  ])('alternating results never change the state of a healthy or an unhealthy backend (%s)', (_name, policy) => {
    for (const start of [healthy, unhealthy]) {
      const states = new Set(alternate(start, 200, policy).map((r) => r.state));
      expect([...states]).toEqual([start.state]);
    }
  });

  it('runs of results change the state at most once per rise or fall results', () => {
    // fail fail ok ok fail fail ...: with rise 2 and fall 2 every run flips the verdict,
    // and never more often than one change per two probes.
    const policy = { ...ACTIVE, rise: 2, fall: 2 };
    let r = healthy;
    let changes = 0;
    const probes = 120;
    for (let i = 0; i < probes; i++) {
      const before = r.state === 'healthy';
      r = transition(r, { type: 'probe', ok: Math.floor(i / 2) % 2 === 1, detail: 'x', now: T0 + i }, policy);
      r = transition(r, tick(0, T0 + i), policy);
      if ((r.state === 'healthy') !== before) changes++;
    }
    expect(changes).toBe(probes / 2);
  });
});

describe('ejection time', () => {
  it.each([
    [0, 30_000],
    [1, 30_000],
    [2, 60_000],
    [10, 300_000],
    [1_000, 300_000],
  ])('ejection number %i lasts %i ms', (n, ms) => {
    expect(ejectionMs(ACTIVE, n)).toBe(ms);
  });
});

describe('slow start', () => {
  it.each([
    ['no ramp', undefined, 0, 1],
    ['slow start off', T0, T0, 1, 0],
    ['the first moment', T0, T0, 0.2],
    ['just before the first step', T0, T0 + 7_499, 0.2],
    ['the second step', T0, T0 + 7_500, 0.4],
    ['the last step', T0, T0 + 29_999, 0.8],
    ['the end of the window', T0, T0 + 30_000, 1],
    ['a clock that went back', T0, T0 - 5, 0.2],
  ])('%s', (_name, rampFrom, now, fraction, window = 30_000) => {
    expect(rampFraction(rampFrom, now, window)).toBe(fraction);
  });

  it('changes the weight at most SLOW_START_STEPS + 1 times over a window sampled every 100 ms', () => {
    const values = new Set<number>();
    for (let t = 0; t <= 31_000; t += 100) values.add(rampFraction(T0, T0 + t, 30_000));
    expect([...values]).toEqual([0.2, 0.4, 0.6, 0.8, 1]);
  });
});
