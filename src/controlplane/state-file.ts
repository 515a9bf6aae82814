/**
 * The state file (`state_file` in config.yaml): operators' runtime changes as JSON, written
 * atomically and read back at start-up.
 *
 * - Write: a temp file next to the target, written and fsynced, renamed over the target,
 *   and the directory fsynced, so a crash leaves either the old file or the new one, never
 *   a torn one.
 * - Besides operators' changes it keeps the last good answer of each discovered cluster
 *   (`discovered`, bounded by MAX_STORED_ADDRESSES in all), so a restart while the source is
 *   down can serve that copy instead of nothing (discovery-manager.ts decides when).
 * - Read: a missing file is an empty state. A file that is not valid (bad JSON, truncated,
 *   wrong shape) is reported, renamed to `<file>.corrupt-<time>` so nothing is lost, and the
 *   daemon starts from config.yaml alone.
 */
import { open, rename, readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { analyzeHostPort } from '../shared/address.ts';
import { parseCidr } from '../shared/cidr.ts';
import type { Config } from '../shared/config/schema.ts';
import type { DiscoveredAddress } from '../shared/discovery-status.ts';
import type { RuntimeState } from './runtime-state.ts';
import { EMPTY_RUNTIME_STATE } from './runtime-state.ts';

const FORMAT = 1;

const id = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}:.+$/, { error: 'expected a backend id like web:127.0.0.1:9001' });
const weight = z.int().min(0).max(10_000);
const hostPort = z.string().refine((a) => analyzeHostPort(a).ok, { error: 'expected host:port' });

const cidrs = z.array(z.string().refine((text) => parseCidr(text).ok, { error: 'expected a CIDR block' }));
const acl = z.strictObject({ allow: cidrs, deny: cidrs });

/**
 * Addresses of discovered answers the file keeps, all clusters together: the default backend
 * slot count, more than one process can route. Bounds the file (about 100 bytes an address)
 * and the cost of writing it, which every operator change pays.
 */
export const MAX_STORED_ADDRESSES = 16_384;

/** A discovered cluster's last good answer, and the question it answers (query-key.ts). */
export interface StoredAnswer {
  readonly query: string;
  /** When this answer (this content) first came, ISO 8601. */
  readonly answered_at: string;
  readonly answer: readonly DiscoveredAddress[];
}

/** What the file holds: operators' changes and the discovered clusters' last answers. */
export type StateFileContent = RuntimeState & { readonly discovered?: Readonly<Record<string, StoredAnswer>> };

const storedAnswer = z.strictObject({
  query: z.string(),
  answered_at: z.string(),
  answer: z
    .array(
      z.strictObject({
        address: hostPort,
        weight,
        tier: z.int().min(0),
        condition: z.enum(['ready', 'terminating', 'not_ready']),
      }),
    )
    .max(MAX_STORED_ADDRESSES),
});

const stateFileSchema = z.strictObject({
  format: z.literal(FORMAT),
  written_at: z.string(),
  added: z.array(
    z.strictObject({
      cluster: z.string().min(1),
      address: hostPort,
      weight,
    }),
  ),
  removed: z.array(id),
  drained: z.array(id),
  weights: z.record(id, weight),
  // Absent from files written before routes could be changed at runtime.
  routes: z.record(z.string().min(1), z.array(z.strictObject({ cluster: z.string().min(1), weight })).min(1)).optional(),
  // Absent from files written before listener acls could be set at runtime.
  acls: z.record(z.string(), z.strictObject({ acl, file_acl: acl })).optional(),
  // Absent from files written before discovered answers were kept.
  discovered: z.record(z.string().min(1), storedAnswer).optional(),
});

export type StateFileRead =
  | { readonly ok: true; readonly state: StateFileContent; readonly found: boolean }
  | { readonly ok: false; readonly state: StateFileContent; readonly problem: string; readonly setAsideTo: string | undefined };

export async function readStateFile(file: string, now: Date = new Date()): Promise<StateFileRead> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { ok: true, state: EMPTY_RUNTIME_STATE, found: false };
    return { ok: false, state: EMPTY_RUNTIME_STATE, problem: `cannot read ${file}: ${(error as Error).message}`, setAsideTo: undefined };
  }
  const problem = parseStateText(text);
  if (typeof problem !== 'string') return { ok: true, state: problem, found: true };
  const setAsideTo = `${file}.corrupt-${now.toISOString().replace(/[:.]/g, '-')}`;
  try {
    await rename(file, setAsideTo);
    return { ok: false, state: EMPTY_RUNTIME_STATE, problem, setAsideTo };
  } catch (error) {
    return { ok: false, state: EMPTY_RUNTIME_STATE, problem: `${problem}; could not set it aside: ${(error as Error).message}`, setAsideTo: undefined };
  }
}

/**
 * The state in `file` when it is there and valid, else undefined; never sets a file aside
 * (start-up's `readStateFile` does that, and reports it). For checks made before start-up.
 */
export async function peekStateFile(file: string): Promise<StateFileContent | undefined> {
  try {
    const state = parseStateText(await readFile(file, 'utf8'));
    return typeof state === 'string' ? undefined : state;
  } catch {
    return undefined;
  }
}

/** The state in `text`, or what is wrong with it. */
export function parseStateText(text: string): StateFileContent | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return `not valid JSON (${(error as Error).message})${text.length === 0 ? ': the file is empty' : ''}`;
  }
  const parsed = stateFileSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return `unexpected content at ${issue === undefined ? '(root)' : issue.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}`;
  }
  const { added, removed, drained, weights, routes, acls, discovered } = parsed.data;
  return { added, removed, drained, weights, routes: routes ?? {}, ...(acls === undefined ? {} : { acls }), ...(discovered === undefined ? {} : { discovered }) };
}

export function serializeState(state: StateFileContent, now: Date = new Date()): string {
  const { discovered, ...runtime } = state;
  const text = JSON.stringify({ format: FORMAT, written_at: now.toISOString(), ...runtime }, null, 2);
  if (discovered === undefined) return `${text}\n`;
  const clusters = Object.entries(discovered).map(([name, stored]) => `    ${JSON.stringify(name)}: ${storedAnswerText(stored)}`);
  return `${text.slice(0, -2)},\n  "discovered": {\n${clusters.join(',\n')}\n  }\n}\n`;
}

/**
 * Each kept answer's text, by identity: the discovery manager replaces an answer that changed
 * and never edits one, so an operator's change (which rewrites the file) serializes only the
 * answers that moved since, not all 16,384 addresses again.
 */
const answerTexts = new WeakMap<StoredAnswer, string>();

/**
 * One line per address: half the bytes of the indented form (16,384 addresses are about 1 MB
 * this way), and still one address per diff line.
 */
function storedAnswerText(stored: StoredAnswer): string {
  let text = answerTexts.get(stored);
  if (text !== undefined) return text;
  const head = `{"query": ${JSON.stringify(stored.query)}, "answered_at": ${JSON.stringify(stored.answered_at)}, "answer": [`;
  text = stored.answer.length === 0 ? `${head}]}` : `${head}\n${stored.answer.map((a) => `      ${JSON.stringify(a)}`).join(',\n')}\n    ]}`;
  answerTexts.set(stored, text);
  return text;
}

/** Replaces `file` with `state`, atomically and durably. */
export async function writeStateFile(file: string, state: StateFileContent): Promise<void> {
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.tmp-${process.pid}`);
  const handle = await open(temp, 'w', 0o600);
  try {
    await handle.writeFile(serializeState(state));
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temp, file);
  // The rename itself is durable only once the directory entry is on disk.
  const dir = await open(path.dirname(file), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

/** A state-file entry that names a cluster or listener config.yaml does not declare. */
export interface UnknownEntry {
  /** Where it is in the file: `added`, `removed`, `drained`, `weights`, `routes` or `acls`. */
  readonly section: keyof RuntimeState;
  readonly entry: unknown;
  readonly problem: string;
}

/**
 * Entries start-up drops because config.yaml no longer declares what they name, so each can
 * be logged instead of vanishing (pure).
 */
export function unknownEntries(state: RuntimeState, config: Config): UnknownEntry[] {
  const clusters = new Set(config.clusters.map((c) => c.name));
  const listeners = new Set(config.listeners.map((l) => l.name));
  const clusterOf = (id: string): string => id.slice(0, id.indexOf(':'));
  const found: UnknownEntry[] = [];
  const cluster = (section: keyof RuntimeState, entry: unknown, name: string): void => {
    if (!clusters.has(name)) found.push({ section, entry, problem: `unknown cluster "${name}"` });
  };
  for (const a of state.added) cluster('added', a, a.cluster);
  for (const id of state.removed) cluster('removed', id, clusterOf(id));
  for (const id of state.drained) cluster('drained', id, clusterOf(id));
  for (const [id, weight] of Object.entries(state.weights)) cluster('weights', { [id]: weight }, clusterOf(id));
  for (const [name, routes] of Object.entries(state.routes)) {
    if (!listeners.has(name)) found.push({ section: 'routes', entry: { [name]: routes }, problem: `unknown listener "${name}"` });
    else for (const r of routes) cluster('routes', { [name]: routes }, r.cluster);
  }
  for (const [name, acl] of Object.entries(state.acls ?? {})) {
    if (!listeners.has(name)) found.push({ section: 'acls', entry: { [name]: acl }, problem: `unknown listener "${name}"` });
  }
  return found;
}
