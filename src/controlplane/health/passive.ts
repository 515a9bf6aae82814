/**
 * Passive health: what the data plane saw when it connected to a backend. Data-plane workers
 * count connect failures (time-outs included) and successes per backend slot in the shared
 * counters, with plain stores and no message; the control plane reads the totals once per
 * tick and turns the difference since its last read into a `passive` event.
 */
import type { CounterTables } from '../../shared/counters.ts';
import { BackendCounter } from '../../shared/counters.ts';

/** The totals a backend's last read saw. Starts at 0: a slot's totals are reset before reuse. */
export interface PassiveCursor {
  failures: number;
  successes: number;
}

export interface PassiveDelta {
  readonly failures: number;
  readonly successes: number;
}

export function newPassiveCursor(counters: CounterTables, slot: number): PassiveCursor {
  return {
    failures: counters.backendTotal(slot, BackendCounter.connectFailures),
    successes: counters.backendTotal(slot, BackendCounter.connectSuccesses),
  };
}

const NO_CHANGE: PassiveDelta = Object.freeze({ failures: 0, successes: 0 });

/** Failures and successes since the cursor's last read; moves the cursor. O(workers). */
export function readPassive(counters: CounterTables, slot: number, cursor: PassiveCursor): PassiveDelta {
  const failures = counters.backendTotal(slot, BackendCounter.connectFailures);
  const successes = counters.backendTotal(slot, BackendCounter.connectSuccesses);
  // The common case on every tick, for every backend: nothing to allocate.
  if (failures === cursor.failures && successes === cursor.successes) return NO_CHANGE;
  // Totals only grow while a slot belongs to one backend; never report a negative change.
  const delta = { failures: Math.max(0, failures - cursor.failures), successes: Math.max(0, successes - cursor.successes) };
  cursor.failures = failures;
  cursor.successes = successes;
  return delta;
}
