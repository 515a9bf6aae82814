/**
 * Backend health as a pure state machine: `transition(record, event, policy)` returns the
 * next record. No clock, no I/O: every event carries its `now` (ms), and the caller (the
 * control-plane worker, the only writer of backend state) feeds it probe results, passive
 * counter deltas, ticks and operator commands.
 *
 * Two inputs decide where a backend should be:
 * - `up`, the health verdict with hysteresis: `fall` failed probes in a row (or
 *   `passiveFailures` failed connects in a row) turn it down, `rise` passed probes in a row
 *   turn it up again. Without active checks, a passively ejected backend is re-admitted
 *   after its ejection time (base × ejections in a row, capped at max).
 * - `admin`, what an operator asked: nothing, drain (out of rotation until undrained), or
 *   remove (out, then gone).
 * - `listed`, whether the backend's source offers it for new connections: always true for
 *   backends from config.yaml or the admin API; a discovery source unlists an address gone
 *   from its answer, not ready, or in a standby tier, and lists it again when it returns.
 *
 * The published state follows them (DESIGN.md, "Backend health"):
 *
 *   healthy   ──down, drain or remove──▶ draining ──0 connections or drain timeout──▶ unhealthy
 *      ▲                                   │  (an admin drain stays `draining`; a removal ends `removed`)
 *      └──────────── up and not drained by an operator ◀──────────┘ (also from unhealthy)
 *
 * What must stay true:
 * - Only `healthy` backends get new connections; `draining` ones keep theirs until `drained`.
 * - `drained` is true exactly when a drain has ended; `unhealthy` is always drained, so a
 *   data plane may close whatever it still holds to an unhealthy or drained backend.
 * - A passively ejected backend comes back only by active success when there are active
 *   checks (clients must not keep retrying a dead backend that gets no traffic).
 * - Alternating probe results never change `up` (each success resets the failure count and
 *   the other way round), so the routable set flaps no faster than rise/fall allow.
 * - `removed` is terminal.
 */
import type { AdminIntent, BackendState } from '../../shared/snapshot/types.ts';
import { formatDuration } from '../../shared/duration.ts';

export type MachineState = BackendState | 'removed';

export interface HealthPolicy {
  readonly rise: number;
  readonly fall: number;
  /** Consecutive failed connects from the data plane that take a backend out. */
  readonly passiveFailures: number;
  readonly drainTimeoutMs: number;
  /** With active checks, only passed probes bring a backend back. */
  readonly activeChecks: boolean;
  /** Without active checks: how long a passive ejection lasts (× ejections in a row, capped). */
  readonly baseEjectionMs: number;
  readonly maxEjectionMs: number;
}

export interface HealthRecord {
  readonly state: MachineState;
  readonly up: boolean;
  readonly admin: AdminIntent;
  readonly listed: boolean;
  /** When the current drain began; meaningful while `draining`. */
  readonly drainStartedAt: number;
  readonly drained: boolean;
  /** Consecutive passed / failed active probes. */
  readonly successes: number;
  readonly failures: number;
  /** Consecutive failed connects seen by the data plane. */
  readonly passiveFailures: number;
  /** When the last passive ejection happened, while it lasts. */
  readonly ejectedAt: number | undefined;
  /** Passive ejections in a row (reset once the backend serves well for a base ejection time). */
  readonly ejections: number;
  /** When `state` last changed, and why. */
  readonly since: number;
  readonly reason: string;
  /** When the backend last turned healthy after being out: the start of its slow-start ramp. */
  readonly rampFrom: number | undefined;
}

export type HealthEvent =
  | { readonly type: 'probe'; readonly ok: boolean; readonly detail: string; readonly now: number }
  | { readonly type: 'passive'; readonly failures: number; readonly successes: number; readonly now: number }
  | { readonly type: 'tick'; readonly activeConnections: number; readonly now: number }
  | { readonly type: 'drain'; readonly now: number }
  | { readonly type: 'undrain'; readonly now: number }
  | { readonly type: 'remove'; readonly force: boolean; readonly now: number; readonly reason?: string }
  | { readonly type: 'source'; readonly listed: boolean; readonly detail: string; readonly now: number }
  /** A reload lists a backend again while it is being removed: the removal is cancelled. */
  | { readonly type: 'restore'; readonly now: number };

/** A backend's first record: in rotation when `up`, out (and drained: it holds no connection) when not. */
export function initialRecord(up: boolean, reason: string, now: number): HealthRecord {
  return {
    state: up ? 'healthy' : 'unhealthy',
    up,
    admin: 'none',
    listed: true,
    drainStartedAt: 0,
    drained: !up,
    successes: 0,
    failures: up ? 0 : 1,
    passiveFailures: 0,
    ejectedAt: undefined,
    ejections: 0,
    since: now,
    reason,
    rampFrom: undefined,
  };
}

/** The ejection that starts now, the n-th in a row, lasts base × n, capped at max. */
export function ejectionMs(policy: HealthPolicy, ejections: number): number {
  return Math.min(policy.maxEjectionMs, policy.baseEjectionMs * Math.max(1, ejections));
}

export function transition(record: HealthRecord, event: HealthEvent, policy: HealthPolicy): HealthRecord {
  if (record.state === 'removed') return record;
  const input = applyInput(record, event, policy);
  const connections = event.type === 'tick' ? event.activeConnections : undefined;
  return settle(input.record, input.reason, event.now, connections, policy);
}

/**
 * Whether a `tick` can change `record`: only an unfinished drain (its connections or its
 * timeout end it) and a passive ejection that may run out. Every other event leaves a record
 * where `settle` puts it, so a tick changes nothing else; the control plane skips those
 * backends, which keeps its 100 ms tick O(backends that wait) rather than O(backends).
 */
export function awaitsTick(record: HealthRecord, policy: HealthPolicy): boolean {
  if (record.state === 'draining' && !record.drained) return true;
  return ejectionRunning(record, policy);
}

/** A passive ejection that only time ends: no active check will bring the backend back. */
function ejectionRunning(r: HealthRecord, policy: HealthPolicy): boolean {
  return !policy.activeChecks && !r.up && r.ejectedAt !== undefined;
}

interface Input {
  readonly record: HealthRecord;
  /** Why `up` or `admin` changed, if they did: becomes the reason of a state change. */
  readonly reason: string | undefined;
}

function applyInput(r: HealthRecord, event: HealthEvent, policy: HealthPolicy): Input {
  switch (event.type) {
    case 'probe':
      return event.ok ? probePassed(r, policy) : probeFailed(r, event.detail, policy);
    case 'passive':
      return passive(r, event.failures, event.successes, event.now, policy);
    case 'tick':
      return readmitAfterEjection(r, event.now, policy);
    case 'drain':
      return r.admin === 'none' ? { record: { ...r, admin: 'drain' }, reason: 'drained by an operator' } : unchanged(r);
    case 'undrain':
      return r.admin === 'drain' ? { record: { ...r, admin: 'none' }, reason: 'undrained by an operator' } : unchanged(r);
    case 'remove': {
      const why = event.reason ?? 'removed by an operator';
      if (event.force) return { record: { ...r, admin: 'remove', drained: true }, reason: `${why} (forced)` };
      return r.admin === 'remove' ? unchanged(r) : { record: { ...r, admin: 'remove' }, reason: why };
    }
    case 'source':
      return r.listed === event.listed ? unchanged(r) : { record: { ...r, listed: event.listed }, reason: event.detail };
    case 'restore':
      return r.admin === 'remove' ? { record: { ...r, admin: 'none' }, reason: 'listed again by a reload: removal cancelled' } : unchanged(r);
    default:
      throw new Error(`health: unknown event ${JSON.stringify(event satisfies never)}`);
  }
}

function unchanged(record: HealthRecord): Input {
  return { record, reason: undefined };
}

function probePassed(r: HealthRecord, policy: HealthPolicy): Input {
  const successes = r.successes + 1;
  const next = { ...r, successes, failures: 0 };
  if (r.up || successes < policy.rise) return unchanged(next);
  return { record: { ...next, up: true, ejectedAt: undefined }, reason: `${successes} passed probes in a row` };
}

function probeFailed(r: HealthRecord, detail: string, policy: HealthPolicy): Input {
  const failures = r.failures + 1;
  const next = { ...r, failures, successes: 0 };
  if (!r.up || failures < policy.fall) return unchanged(next);
  return { record: { ...next, up: false }, reason: `${failures} failed probes in a row: ${detail}` };
}

/**
 * Counter deltas arrive per tick, so their order inside a tick is unknown: a tick with any
 * success ends the run of failures (optimistic, so a busy backend with rare failures is
 * not ejected by a tick that happened to hold a few of them).
 */
function passive(r: HealthRecord, failures: number, successes: number, now: number, policy: HealthPolicy): Input {
  if (successes > 0) {
    // Serving well for a whole base ejection time forgives earlier ejections.
    const forgiven = r.ejections > 0 && r.state === 'healthy' && now - r.since >= policy.baseEjectionMs;
    return unchanged({ ...r, passiveFailures: 0, ejections: forgiven ? 0 : r.ejections });
  }
  const streak = r.passiveFailures + failures;
  if (!r.up || streak < policy.passiveFailures) return unchanged({ ...r, passiveFailures: streak });
  const ejections = r.ejections + 1;
  return {
    record: { ...r, up: false, successes: 0, passiveFailures: 0, ejectedAt: now, ejections },
    reason: `${streak} failed connects in a row (passive)`,
  };
}

function readmitAfterEjection(r: HealthRecord, now: number, policy: HealthPolicy): Input {
  if (!ejectionRunning(r, policy) || r.ejectedAt === undefined) return unchanged(r); // the second narrows the type
  const lasts = ejectionMs(policy, r.ejections);
  if (now - r.ejectedAt < lasts) return unchanged(r);
  return { record: { ...r, up: true, ejectedAt: undefined }, reason: `re-admitted after a ${formatDuration(lasts)} ejection` };
}

/** Moves the published state to where `up` and `admin` say it belongs. */
function settle(r: HealthRecord, reason: string | undefined, now: number, connections: number | undefined, policy: HealthPolicy): HealthRecord {
  const wanted = r.up && r.admin === 'none' && r.listed;
  const why = reason ?? r.reason;
  switch (r.state) {
    case 'removed':
      return r;
    case 'healthy': {
      if (wanted) return r;
      const draining: HealthRecord = { ...r, state: 'draining', drainStartedAt: now, since: now, reason: why };
      return r.drained ? endDrain(draining, now) : draining;
    }
    case 'unhealthy':
      if (wanted) return turnHealthy(r, why, now);
      if (r.admin === 'remove') return { ...r, state: 'removed', drained: true, since: now, reason: why };
      if (r.admin === 'drain') return { ...r, state: 'draining', drained: true, since: now, reason: why };
      return r;
    case 'draining': {
      if (wanted) return turnHealthy(r, why, now);
      const withReason = reason === undefined ? r : { ...r, reason };
      const ends =
        r.drained ||
        (connections !== undefined && (connections === 0 || now - r.drainStartedAt >= policy.drainTimeoutMs));
      return ends ? endDrain(withReason, now) : withReason;
    }
    default:
      throw new Error(`health: unknown state ${JSON.stringify(r.state satisfies never)}`);
  }
}

function turnHealthy(r: HealthRecord, reason: string, now: number): HealthRecord {
  return { ...r, state: 'healthy', drained: false, since: now, reason, rampFrom: now, passiveFailures: 0 };
}

/**
 * A drain that ended: a removal is complete, an operator's drain stays visible as
 * `draining` until undrained, and a health drain leaves the backend unhealthy (keeping the
 * reason it went down for, which is what an operator wants to read).
 */
function endDrain(r: HealthRecord, now: number): HealthRecord {
  if (r.admin === 'remove') return { ...r, state: 'removed', drained: true, since: now };
  if (r.admin === 'drain') return r.drained ? r : { ...r, drained: true };
  return { ...r, state: 'unhealthy', drained: true, since: now };
}

// ── slow start ───────────────────────────────────────────────────────────────────────────

/**
 * Slow start raises a backend's share in this many equal steps over the window, so a ramp
 * publishes a handful of snapshots (one per step) rather than one per tick.
 */
export const SLOW_START_STEPS = 4;

/**
 * The fraction of its weight a backend gets `now`: 1/(STEPS+1) when it turns healthy, one
 * more step every window/STEPS, all of it once the window has passed.
 */
export function rampFraction(rampFrom: number | undefined, now: number, slowStartMs: number): number {
  if (rampFrom === undefined || slowStartMs <= 0) return 1;
  const elapsed = Math.max(0, now - rampFrom);
  if (elapsed >= slowStartMs) return 1;
  const step = Math.floor((elapsed * SLOW_START_STEPS) / slowStartMs);
  return (step + 1) / (SLOW_START_STEPS + 1);
}
