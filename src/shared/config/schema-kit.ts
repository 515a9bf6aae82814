/**
 * The building blocks of the config schema, shared by schema.ts and the schemas of features
 * kept in their own files (discovery-schema.ts), so every part words its errors alike.
 */
import { z } from 'zod';
import { analyzeHostPort, backendAddressProblem } from '../address.ts';
import { parseDuration } from '../duration.ts';

export const MISSING = 'missing required key';
const DURATION_MESSAGE = 'expected a duration like 500ms, 2s or 5m';
const ADDRESS_MESSAGE = 'expected host:port';
const PORT_MESSAGE = 'port must be 1-65535';
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const NAME_MESSAGE = 'expected a name of 1-63 letters, digits, "_", "." or "-", starting with a letter or digit';

/** An error option that tells a missing key apart from a wrong value. */
export function expected(message: string) {
  return (issue: { readonly input?: unknown }): string => (issue.input === undefined ? MISSING : message);
}

export function strictObject<Shape extends z.ZodRawShape>(shape: Shape) {
  const known = Object.keys(shape);
  return z.strictObject(shape, {
    error: (issue) =>
      issue.code === 'unrecognized_keys' ? unknownKeysMessage(issue.keys, known) : expected('expected a mapping')(issue),
  });
}

function unknownKeysMessage(keys: readonly string[], known: readonly string[]): string {
  const quoted = keys.map((key) => `"${key}"`).join(', ');
  const head = keys.length === 1 ? `unknown key ${quoted}` : `unknown keys ${quoted}`;
  const guesses = keys.map((key) => closestKey(key, known)).filter((guess) => guess !== undefined);
  if (keys.length === 1 && guesses.length === 1) return `${head} (did you mean "${guesses[0]}"?)`;
  return `${head}; allowed: ${known.join(', ')}`;
}

/** The known key a typo most likely meant: within two edits, or a case-insensitive match. */
function closestKey(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of known) {
    const distance = editDistance(key.toLowerCase(), candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

export function list<Item extends z.ZodType>(item: Item, what = 'expected a list') {
  return z.array(item, { error: expected(what) });
}

export function text() {
  return z.string({ error: expected('expected a string') });
}

export function name() {
  return z.string({ error: expected(NAME_MESSAGE) }).regex(NAME, { error: NAME_MESSAGE });
}

export function integer(min: number, max: number) {
  const message = `expected an integer from ${min} to ${max}`;
  return z.int({ error: expected(message) }).min(min, { error: message }).max(max, { error: message });
}

/** A duration string in, whole milliseconds out. */
export function duration(options: { readonly positive?: boolean } = {}) {
  return z.string({ error: expected(DURATION_MESSAGE) }).transform((value, ctx) => {
    const ms = parseDuration(value);
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: DURATION_MESSAGE });
      return z.NEVER;
    }
    if (options.positive === true && ms === 0) {
      ctx.addIssue({ code: 'custom', message: 'must be greater than 0' });
      return z.NEVER;
    }
    return ms;
  });
}

/** A backend's `host:port`, kept as written (shared/address.ts `backendAddressProblem`). */
export function backendAddress() {
  return z.string({ error: expected(ADDRESS_MESSAGE) }).superRefine((value, ctx) => {
    const problem = backendAddressProblem(value);
    if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
  });
}

/** A `host:port` string, kept as written. */
export function address() {
  return z.string({ error: expected(ADDRESS_MESSAGE) }).superRefine((value, ctx) => {
    const analysis = analyzeHostPort(value);
    if (!analysis.ok) ctx.addIssue({ code: 'custom', message: analysis.problem === 'port_range' ? PORT_MESSAGE : ADDRESS_MESSAGE });
  });
}
