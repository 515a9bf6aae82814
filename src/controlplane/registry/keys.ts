/**
 * The registry's key layout in etcd and the schema of each value: an interface other tools
 * read and write (docs/fleet.md), so it changes only on purpose. Pure.
 *
 * Under the configured prefix (default `/sluice/v1/`):
 *   clusters/<cluster>/backends/<address>   a registered backend        {weight}
 *   clusters/<cluster>/overrides/<address>  operator intent, never leased {drained?, weight?, removed?}
 *   listeners/<listener>/routes             routes set by an operator    {routes: [{cluster, weight}]}
 *   listeners/<listener>/acl                acl set by an operator       {allow, deny}
 *   instances/<instance>                    fleet membership, leased     {version, revision, snapshot_hash, ...}
 *
 * One key per backend and per override keeps every change one small put or delete, so two
 * operators touching different backends never contend, and a drain (an override) survives
 * the backend's registration expiring and coming back.
 */
import { z } from 'zod';
import { analyzeHostPort } from '../../shared/address.ts';
import { aclSchema } from '../../shared/config/schema.ts';

export { DEFAULT_PREFIX } from '../../shared/config/registry-schema.ts';

/** A path segment: what config names and host:port addresses are made of, never a `/`. */
const SEGMENT = /^[^/\s]{1,253}$/;

export type RegistryKey =
  | { readonly kind: 'backend'; readonly cluster: string; readonly address: string }
  | { readonly kind: 'override'; readonly cluster: string; readonly address: string }
  | { readonly kind: 'routes'; readonly listener: string }
  | { readonly kind: 'acl'; readonly listener: string }
  | { readonly kind: 'instance'; readonly instance: string };

export type KeyKind = RegistryKey['kind'];

/** The full etcd key (prefix included) of `key`. */
export function formatKey(prefix: string, key: RegistryKey): string {
  switch (key.kind) {
    case 'backend':
      return `${prefix}clusters/${key.cluster}/backends/${key.address}`;
    case 'override':
      return `${prefix}clusters/${key.cluster}/overrides/${key.address}`;
    case 'routes':
      return `${prefix}listeners/${key.listener}/routes`;
    case 'acl':
      return `${prefix}listeners/${key.listener}/acl`;
    case 'instance':
      return `${prefix}instances/${key.instance}`;
    default:
      throw new Error(`registry: unknown key kind ${JSON.stringify(key satisfies never)}`);
  }
}

/** What the etcd key `full` means, or undefined when it is outside the layout. */
export function parseKey(prefix: string, full: string): RegistryKey | undefined {
  if (!full.startsWith(prefix)) return undefined;
  const parts = full.slice(prefix.length).split('/');
  if (!parts.every((p) => SEGMENT.test(p))) return undefined;
  const [top, name, sub, leaf] = parts;
  if (top === 'clusters' && parts.length === 4 && name !== undefined && leaf !== undefined && analyzeHostPort(leaf).ok) {
    if (sub === 'backends') return { kind: 'backend', cluster: name, address: leaf };
    if (sub === 'overrides') return { kind: 'override', cluster: name, address: leaf };
    return undefined;
  }
  if (top === 'listeners' && parts.length === 3 && name !== undefined) {
    if (sub === 'routes') return { kind: 'routes', listener: name };
    if (sub === 'acl') return { kind: 'acl', listener: name };
    return undefined;
  }
  if (top === 'instances' && parts.length === 2 && name !== undefined) return { kind: 'instance', instance: name };
  return undefined;
}

const weight = z.int().min(0).max(10_000);

// Values are plain objects that tolerate (and drop) fields they do not know, so a newer
// writer's extra field does not make an older reader ignore the whole value.
export const backendValueSchema = z.object({ weight: weight.default(1) });

export const overrideValueSchema = z
  .object({ drained: z.boolean().optional(), weight: weight.optional(), removed: z.boolean().optional() })
  .refine((o) => o.drained !== undefined || o.weight !== undefined || o.removed !== undefined, {
    error: 'expected at least one of drained, weight, removed',
  });

export const routesValueSchema = z.object({
  routes: z.array(z.object({ cluster: z.string().regex(SEGMENT), weight })).min(1),
});

export const aclValueSchema = aclSchema;

export const instanceValueSchema = z.object({
  version: z.string(),
  /** The registry revision this instance has applied. */
  revision: z.int().min(0),
  /** A hash of the instance's routing snapshot: equal hashes route alike. */
  snapshot_hash: z.string(),
  started_at: z.iso.datetime(),
  updated_at: z.iso.datetime(),
});

export type BackendValue = z.output<typeof backendValueSchema>;
export type OverrideValue = z.output<typeof overrideValueSchema>;
export type RoutesValue = z.output<typeof routesValueSchema>;
export type AclValue = z.output<typeof aclValueSchema>;
export type InstanceValue = z.output<typeof instanceValueSchema>;

/** A key with its parsed value: the unit the registry state holds and delivers. */
export type RegistryEntry =
  | { readonly key: Extract<RegistryKey, { kind: 'backend' }>; readonly value: BackendValue }
  | { readonly key: Extract<RegistryKey, { kind: 'override' }>; readonly value: OverrideValue }
  | { readonly key: Extract<RegistryKey, { kind: 'routes' }>; readonly value: RoutesValue }
  | { readonly key: Extract<RegistryKey, { kind: 'acl' }>; readonly value: AclValue }
  | { readonly key: Extract<RegistryKey, { kind: 'instance' }>; readonly value: InstanceValue };

/** Narrows an entry by its key's kind (TypeScript does not narrow on the nested `key.kind`). */
export function isEntryOf<K extends KeyKind>(entry: RegistryEntry, kind: K): entry is Extract<RegistryEntry, { key: { kind: K } }> {
  return entry.key.kind === kind;
}

const SCHEMAS = {
  backend: backendValueSchema,
  override: overrideValueSchema,
  routes: routesValueSchema,
  acl: aclValueSchema,
  instance: instanceValueSchema,
} as const satisfies Record<KeyKind, z.ZodType>;

export type ParsedValue = { readonly ok: true; readonly entry: RegistryEntry } | { readonly ok: false; readonly problem: string };

/** The entry stored at `full`, or why it cannot be used (outside the layout, not JSON, wrong shape). */
export function parseEntry(prefix: string, full: string, text: string): ParsedValue {
  const key = parseKey(prefix, full);
  if (key === undefined) return { ok: false, problem: 'not a key of the registry layout' };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    return { ok: false, problem: `value is not JSON (${(error as Error).message})` };
  }
  const parsed = SCHEMAS[key.kind].safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { ok: false, problem: `unexpected value at ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}` };
  }
  // The schema was chosen by key.kind, so value and key agree.
  return { ok: true, entry: { key, value: parsed.data } as RegistryEntry };
}

/** The value as written to etcd (no whitespace: values are small and read by machines). */
export function serializeValue(entry: RegistryEntry): string {
  return JSON.stringify(entry.value);
}
