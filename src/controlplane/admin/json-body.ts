/**
 * JSON request bodies, parsed like Fastify's own parser but saying which key is refused:
 * Fastify's parser answers a valid body holding `__proto__` with "not valid JSON".
 */
import { errorCodes, type FastifyInstance } from 'fastify';

/** The error code the admin error handler turns into 400 BAD_REQUEST with the message as is. */
export const FORBIDDEN_KEY = 'SLUICE_ADMIN_FORBIDDEN_KEY';

/**
 * Keys that name an object's prototype: merged into a plain object they change what every
 * object inherits. No admin body has them, so they are refused by name wherever they are.
 */
const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor']);

export function registerJsonParser(app: FastifyInstance): void {
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    const parsed = parseJsonBody(body as string);
    if (parsed.ok) done(null, parsed.value);
    else done(parsed.error, undefined);
  });
}

export function parseJsonBody(text: string): { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly error: Error } {
  if (text.length === 0) return { ok: false, error: new errorCodes.FST_ERR_CTP_EMPTY_JSON_BODY() };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, error: new errorCodes.FST_ERR_CTP_INVALID_JSON_BODY() };
  }
  const found = forbiddenKey(value);
  if (found === undefined) return { ok: true, value };
  const where = found.path.length === 0 ? 'body' : describePath(found.path);
  return { ok: false, error: Object.assign(new Error(`${where}: the key "${found.key}" is not allowed`), { code: FORBIDDEN_KEY, statusCode: 400 }) };
}

/** A path a few levels deep is named in full; a deeper one (nesting as an attack) is cut. */
const PATH_SHOWN = 8;

function describePath(path: readonly (string | number)[]): string {
  const shown = path.slice(0, PATH_SHOWN).join('.');
  return path.length > PATH_SHOWN ? `${shown}.… (${path.length} levels deep)` : shown;
}

interface Visit {
  readonly value: unknown;
  readonly parent: Visit | undefined;
  readonly key: string | number;
}

/** The first forbidden key in a parsed JSON value, with the path of the object holding it. */
export function forbiddenKey(value: unknown): { readonly key: string; readonly path: readonly (string | number)[] } | undefined {
  // Iterative, and paths are built only for the one found: a body nested a hundred thousand
  // deep must neither overflow the stack nor cost time quadratic in its depth.
  const pending: Visit[] = [{ value, parent: undefined, key: '' }];
  for (let visit = pending.pop(); visit !== undefined; visit = pending.pop()) {
    const node = visit.value;
    if (typeof node !== 'object' || node === null) continue;
    if (Array.isArray(node)) {
      for (let i = node.length - 1; i >= 0; i--) pending.push({ value: node[i], parent: visit, key: i });
      continue;
    }
    const keys = Object.keys(node);
    const key = keys.find((k) => FORBIDDEN_KEYS.has(k));
    if (key !== undefined) return { key, path: pathOf(visit) };
    for (let i = keys.length - 1; i >= 0; i--) {
      const k = keys[i] as string;
      pending.push({ value: (node as Record<string, unknown>)[k], parent: visit, key: k });
    }
  }
  return undefined;
}

function pathOf(visit: Visit): (string | number)[] {
  const path: (string | number)[] = [];
  for (let at = visit; at.parent !== undefined; at = at.parent) path.push(at.key);
  return path.reverse();
}
