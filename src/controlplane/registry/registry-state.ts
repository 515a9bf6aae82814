/**
 * What an instance has applied from the registry: etcd key -> parsed entry, and how a batch
 * of watch events or a full read of the prefix changes it. Pure: the watch loop feeds it and
 * delivers the changes; tests are tables.
 *
 * Invariants:
 * - a change is delivered only when a key's value text differs from the applied one, so a
 *   re-read that finds nothing new delivers nothing;
 * - within one batch only each key's last event counts (a burst coalesces to its net effect);
 * - a full read is the whole truth at its revision: an applied key missing from it gets a
 *   synthetic delete;
 * - an unusable value (outside the layout, not JSON, wrong shape) is reported once per
 *   modification and otherwise ignored: the key's last good entry stays applied, as if the
 *   bad write had not happened, and no other key is affected.
 */
import { parseEntry, type RegistryEntry, type RegistryKey } from './keys.ts';

/** A key-value as etcd returns it (a range read or a put event). */
export interface RawKv {
  readonly key: string;
  readonly value: string;
  readonly modRevision: number;
}

export type RawEvent = ({ readonly type: 'put' } & RawKv) | { readonly type: 'delete'; readonly key: string; readonly modRevision: number };

export interface AppliedEntry {
  readonly entry: RegistryEntry;
  readonly text: string;
  /** The mod revision of the applied value: what a guarded write compares against. */
  readonly modRevision: number;
}

export interface RegistryState {
  readonly prefix: string;
  readonly applied: ReadonlyMap<string, AppliedEntry>;
  /** Keys whose current value is unusable, with the mod revision already reported. */
  readonly rejected: ReadonlyMap<string, number>;
  /** The etcd revision this state reflects (0 before the first read). */
  readonly revision: number;
}

export type RegistryChange =
  | { readonly type: 'put'; readonly entry: RegistryEntry; readonly modRevision: number; readonly previous: RegistryEntry | undefined }
  | { readonly type: 'delete'; readonly key: RegistryKey; readonly previous: RegistryEntry };

export interface RegistryProblem {
  readonly key: string;
  readonly modRevision: number;
  readonly problem: string;
}

export interface RegistryStep {
  readonly state: RegistryState;
  readonly changes: readonly RegistryChange[];
  readonly problems: readonly RegistryProblem[];
}

export function emptyRegistryState(prefix: string): RegistryState {
  return { prefix, applied: new Map(), rejected: new Map(), revision: 0 };
}

/** The state after a batch of watch events observed up to `revision`. */
export function applyEvents(state: RegistryState, events: readonly RawEvent[], revision: number): RegistryStep {
  const targets = new Map<string, RawKv | null>();
  for (const event of events) {
    // Deleting and re-adding moves the key to the end: changes come out in the order of
    // their last event.
    targets.delete(event.key);
    targets.set(event.key, event.type === 'put' ? event : null);
  }
  return reconcile(state, targets, revision);
}

/** The state after a full read of the prefix at `revision` (`kvs` is everything under it). */
export function applyFullRead(state: RegistryState, kvs: readonly RawKv[], revision: number): RegistryStep {
  const targets = new Map<string, RawKv | null>();
  for (const kv of kvs) targets.set(kv.key, kv);
  for (const key of state.applied.keys()) if (!targets.has(key)) targets.set(key, null);
  for (const key of state.rejected.keys()) if (!targets.has(key)) targets.set(key, null);
  return reconcile(state, targets, revision);
}

/** The applied entry of `key` (etcd key with prefix), if any. */
export function appliedAt(state: RegistryState, key: string): AppliedEntry | undefined {
  return state.applied.get(key);
}

function reconcile(state: RegistryState, targets: ReadonlyMap<string, RawKv | null>, revision: number): RegistryStep {
  let applied: Map<string, AppliedEntry> | undefined;
  let rejected: Map<string, number> | undefined;
  const writableApplied = (): Map<string, AppliedEntry> => (applied ??= new Map(state.applied));
  const writableRejected = (): Map<string, number> => (rejected ??= new Map(state.rejected));
  const changes: RegistryChange[] = [];
  const problems: RegistryProblem[] = [];

  for (const [key, target] of targets) {
    const current = state.applied.get(key);
    if (state.rejected.has(key) && (target === null || target.modRevision !== state.rejected.get(key))) writableRejected().delete(key);
    if (target === null) {
      if (current === undefined) continue;
      writableApplied().delete(key);
      changes.push({ type: 'delete', key: current.entry.key, previous: current.entry });
      continue;
    }
    if (current !== undefined && current.text === target.value) {
      if (current.modRevision !== target.modRevision) writableApplied().set(key, { ...current, modRevision: target.modRevision });
      continue;
    }
    const parsed = parseEntry(state.prefix, key, target.value);
    if (!parsed.ok) {
      if (state.rejected.get(key) !== target.modRevision) {
        problems.push({ key, modRevision: target.modRevision, problem: parsed.problem });
        writableRejected().set(key, target.modRevision);
      }
      continue;
    }
    writableApplied().set(key, { entry: parsed.entry, text: target.value, modRevision: target.modRevision });
    changes.push({ type: 'put', entry: parsed.entry, modRevision: target.modRevision, previous: current?.entry });
  }

  return {
    state: {
      prefix: state.prefix,
      applied: applied ?? state.applied,
      rejected: rejected ?? state.rejected,
      revision: Math.max(state.revision, revision),
    },
    changes,
    problems,
  };
}
