/**
 * `sluice ctl`: a thin client of the admin API for operators. Every command is one HTTP
 * request; answers are printed as a table. The token is read from the environment (never
 * from the command line, where `ps` would show it).
 *
 * Exit codes: 0 done, 1 the API refused or could not be reached, 2 usage error.
 */
import { parseArgs } from 'node:util';
import { SluiceError } from './shared/errors.ts';

export const CTL_USAGE = `usage: sluice ctl [--admin URL] [--token-env NAME] COMMAND
  list [--cluster NAME]            every backend, with state and connections
  add CLUSTER ADDRESS [--weight N] add a backend (host:port)
  remove ID [--force]              drain, then remove (--force: close its connections now)
  drain ID | undrain ID            take out of rotation / put back
  weight ID N                      set its weight (0-10000)
  history ID                       its last health transitions: when, from, to, why
  routes LISTENER [CLUSTER=WEIGHT ...]
                                   show a listener's routes, or set them (e.g. web=90 canary=10)
  acl LISTENER                     show the listener's allow/deny lists
  acl LISTENER [--allow CIDR]... [--deny CIDR]... [--clear]
                                   replace them (a list not given is empty; --clear: allow all)
  reload [--dry-run]               re-read the config file (--dry-run: only say what would
                                   be added, restored, removed, drained, reweighted, kept,
                                   and which capacity limits it would hit)
  register --cluster NAME --address HOST:PORT [--ttl 10s] [--weight N] [--etcd URL]
                                   keep a backend registered in the fleet's etcd under a lease until SIGTERM
                                   (docs/fleet.md; sluice ctl register --help)
ID is cluster:address, e.g. web:127.0.0.1:9001. The admin URL defaults to $SLUICE_ADMIN_URL
or http://127.0.0.1:9090; the token is read from $SLUICE_ADMIN_TOKEN (or --token-env NAME).`;

const DEFAULT_ADMIN = 'http://127.0.0.1:9090';
const REQUEST_TIMEOUT_MS = 35_000;

export interface CtlRequest {
  readonly method: 'GET' | 'POST' | 'PATCH' | 'DELETE' | 'PUT';
  readonly path: string;
  readonly body?: unknown;
  /** Only for `list`: keep the rows of this cluster. */
  readonly cluster?: string;
  /** The answer is a listener (`routes`), not backends. */
  readonly listener?: true;
  /** How to print the answer: backend rows (default), a listener acl, a backend's history or a reload. */
  readonly show?: 'acl' | 'history' | 'reload';
}

export interface CtlInvocation {
  readonly admin: string;
  readonly tokenEnv: string;
  readonly request: CtlRequest;
}

function usage(message: string): SluiceError {
  return new SluiceError('SLUICE_USAGE', `${message}\n${CTL_USAGE}`);
}

const id = (value: string | undefined): string => {
  if (value === undefined || !value.includes(':')) throw usage('expected a backend ID like web:127.0.0.1:9001');
  return `/backends/${encodeURIComponent(value)}`;
};

/** `canary=10` → {cluster: 'canary', weight: 10}. */
function routePair(text: string): { cluster: string; weight: number } {
  const at = text.lastIndexOf('=');
  if (at <= 0) throw usage(`expected CLUSTER=WEIGHT, got "${text}"`);
  return { cluster: text.slice(0, at), weight: integer(text.slice(at + 1), `the weight of ${text.slice(0, at)}`) };
}

function integer(text: string | undefined, what: string): number {
  if (text === undefined || !/^\d+$/.test(text)) throw usage(`${what} must be a whole number`);
  return Number(text);
}

/** Parses `sluice ctl …` arguments into the one request they mean (pure). */
export function parseCtlArgs(args: readonly string[], env: NodeJS.ProcessEnv = process.env): CtlInvocation {
  const { values, positionals } = parseArgs({
    args: [...args],
    options: {
      admin: { type: 'string' },
      'token-env': { type: 'string' },
      cluster: { type: 'string' },
      weight: { type: 'string' },
      force: { type: 'boolean' },
      allow: { type: 'string', multiple: true },
      deny: { type: 'string', multiple: true },
      clear: { type: 'boolean' },
      'dry-run': { type: 'boolean' },
    },
    allowPositionals: true,
    strict: true,
  });
  const [command, ...rest] = positionals;
  const expectArgs = (n: number): void => {
    if (rest.length !== n) throw usage(`${command ?? ''} takes ${n} argument${n === 1 ? '' : 's'}, got ${rest.length}`);
  };
  let request: CtlRequest;
  switch (command) {
    case 'list':
      expectArgs(0);
      request = values.cluster === undefined ? { method: 'GET', path: '/backends' } : { method: 'GET', path: '/backends', cluster: values.cluster };
      break;
    case 'add': {
      expectArgs(2);
      const weight = values.weight === undefined ? undefined : integer(values.weight, '--weight');
      request = { method: 'POST', path: '/backends', body: { cluster: rest[0], address: rest[1], ...(weight === undefined ? {} : { weight }) } };
      break;
    }
    case 'remove':
      expectArgs(1);
      request = { method: 'DELETE', path: `${id(rest[0])}${values.force === true ? '?force=true' : ''}` };
      break;
    case 'drain':
    case 'undrain':
      expectArgs(1);
      request = { method: 'POST', path: `${id(rest[0])}/${command}` };
      break;
    case 'weight':
      expectArgs(2);
      request = { method: 'PATCH', path: id(rest[0]), body: { weight: integer(rest[1], 'the weight') } };
      break;
    case 'history':
      expectArgs(1);
      request = { method: 'GET', path: `${id(rest[0])}/history`, show: 'history' };
      break;
    case 'acl': {
      expectArgs(1);
      const path = `/listeners/${encodeURIComponent(rest[0] ?? '')}/acl`;
      const allow = values.allow ?? [];
      const deny = values.deny ?? [];
      const writes = values.clear === true || allow.length > 0 || deny.length > 0;
      if (values.clear === true && (allow.length > 0 || deny.length > 0)) throw usage('--clear replaces the lists with empty ones; give it alone');
      request = writes ? { method: 'PUT', path, body: { allow, deny }, show: 'acl' } : { method: 'GET', path, show: 'acl' };
      break;
    }
    case 'routes': {
      const [listener, ...pairs] = rest;
      if (listener === undefined) throw usage('routes takes a listener name');
      const path = `/listeners/${encodeURIComponent(listener)}`;
      request =
        pairs.length === 0
          ? { method: 'GET', path, listener: true }
          : { method: 'PATCH', path: `${path}/routes`, body: { routes: pairs.map(routePair) }, listener: true };
      break;
    }
    case 'reload':
      expectArgs(0);
      request = { method: 'POST', path: values['dry-run'] === true ? '/config/reload?dry_run=true' : '/config/reload', show: 'reload' };
      break;
    case undefined:
      throw usage('missing command');
    default:
      throw usage(`unknown ctl command "${command}"`);
  }
  return { admin: (values.admin ?? env['SLUICE_ADMIN_URL'] ?? DEFAULT_ADMIN).replace(/\/+$/, ''), tokenEnv: values['token-env'] ?? 'SLUICE_ADMIN_TOKEN', request };
}

/** A backend as the API answers it (only the fields the table shows). */
interface BackendRow {
  readonly id?: string;
  readonly cluster?: string;
  readonly state?: string;
  readonly admin?: string;
  readonly weight?: number;
  readonly effective_weight?: number;
  readonly active_connections?: number;
  readonly reason?: string;
}

const COLUMNS: readonly [string, (row: BackendRow) => string | number | undefined][] = [
  ['ID', (r) => r.id],
  ['STATE', (r) => (r.admin === 'drain' ? `${r.state ?? '-'} (admin)` : r.admin === 'remove' ? `${r.state ?? '-'} (removing)` : r.state)],
  ['WEIGHT', (r) => (r.effective_weight !== undefined && r.effective_weight !== r.weight ? `${r.weight ?? '-'} (now ${r.effective_weight})` : r.weight)],
  ['ACTIVE', (r) => r.active_connections],
  ['REASON', (r) => r.reason],
];

interface ListenerAnswer {
  readonly name?: string;
  readonly routes?: readonly { readonly cluster: string; readonly weight: number }[];
  readonly snapshot_version?: number;
}

/** `web: web 90, canary 10` (and the snapshot version after a change) (pure). */
export function formatListener(listener: ListenerAnswer): string {
  const routes = (listener.routes ?? []).map((r) => `${r.cluster} ${r.weight}`).join(', ');
  const line = `${listener.name ?? '-'}: ${routes}`;
  return listener.snapshot_version === undefined ? line : `${line}\nsnapshot version ${listener.snapshot_version}`;
}

/** Rows as an aligned text table (pure). */
export function formatTable(rows: readonly BackendRow[]): string {
  return alignColumns(
    COLUMNS.map(([title]) => title),
    rows.map((row) => COLUMNS.map(([, read]) => String(read(row) ?? '-'))),
  );
}

/** A header and rows of cells as aligned columns; the last column is not padded (pure). */
function alignColumns(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (values: readonly string[]): string =>
    values
      .map((v, i) => (i === values.length - 1 ? v : v.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** Runs `sluice ctl …`: returns what to print and the exit code. */
export async function runCtl(args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<{ output: string; code: number }> {
  const { admin, tokenEnv, request } = parseCtlArgs(args, env);
  const token = env[tokenEnv];
  const headers: Record<string, string> = {};
  if (token !== undefined && token !== '') headers['authorization'] = `Bearer ${token}`;
  if (request.body !== undefined) headers['content-type'] = 'application/json';
  let response: Response;
  try {
    response = await fetch(`${admin}${request.path}`, {
      method: request.method,
      headers,
      ...(request.body === undefined ? {} : { body: JSON.stringify(request.body) }),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message;
    return { output: `sluice ctl: cannot reach the admin API at ${admin}: ${cause}`, code: 1 };
  }
  const text = await response.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return { output: `sluice ctl: ${response.status}: ${text.slice(0, 200)}`, code: 1 };
  }
  if (request.show === 'reload') return formatReload(response.status, body as ReloadAnswer);
  if (!response.ok) {
    const { error, message } = body as { error?: string; message?: string };
    return { output: `sluice ctl: ${response.status} ${error ?? ''}: ${message ?? text}`, code: 1 };
  }
  if (request.show === 'acl') return { output: formatAcl(body as AclAnswer), code: 0 };
  if (request.show === 'history') return { output: formatHistory(body as HistoryAnswer), code: 0 };
  if (request.listener === true) return { output: formatListener(body as ListenerAnswer), code: 0 };
  if (Array.isArray(body)) {
    const rows = (body as BackendRow[]).filter((r) => request.cluster === undefined || r.cluster === request.cluster);
    return { output: formatTable(rows), code: 0 };
  }
  const row = body as BackendRow & { snapshot_version?: unknown };
  return { output: `${formatTable([row])}\nsnapshot version ${String(row.snapshot_version)}`, code: 0 };
}

interface AclAnswer {
  readonly listener?: string;
  readonly allow?: readonly string[];
  readonly deny?: readonly string[];
  readonly snapshot_version?: number;
}

/** A listener acl as lines (pure). */
export function formatAcl(answer: AclAnswer): string {
  const list = (blocks: readonly string[] | undefined, empty: string): string => (blocks === undefined || blocks.length === 0 ? empty : blocks.join(' '));
  const lines = [`listener ${answer.listener ?? '-'}`, `allow  ${list(answer.allow, '(all)')}`, `deny   ${list(answer.deny, '(none)')}`];
  if (answer.snapshot_version !== undefined) lines.push(`snapshot version ${answer.snapshot_version}`);
  return lines.join('\n');
}

interface HistoryAnswer {
  readonly id?: string;
  readonly transitions?: readonly { at: string; from: string; to: string; admin: string; reason: string; snapshot_version: number }[];
}

/** A backend's transitions as an aligned table, oldest first (pure). */
export function formatHistory(answer: HistoryAnswer): string {
  const rows = (answer.transitions ?? []).map((t) => [t.at, `${t.from} -> ${t.to}`, t.admin === 'none' ? '' : t.admin, String(t.snapshot_version), t.reason]);
  const title = `backend ${answer.id ?? '-'}`;
  if (rows.length === 0) return `${title}: no transitions recorded`;
  return `${title}\n${alignColumns(['AT', 'CHANGE', 'ADMIN', 'VERSION', 'REASON'], rows)}`;
}

interface ReloadAnswer {
  readonly status?: string;
  readonly error?: string;
  readonly message?: string;
  readonly snapshot_version?: number;
  readonly backends?: {
    readonly add?: readonly { readonly cluster: string; readonly address: string; readonly weight: number }[];
    readonly restore?: readonly { readonly cluster: string; readonly address: string; readonly weight: number }[];
    readonly remove?: readonly string[];
    readonly drain?: readonly string[];
    readonly reweight?: readonly { readonly id: string; readonly from: number; readonly to: number }[];
    readonly keep?: readonly string[];
  };
  readonly limits?: readonly { readonly message: string }[];
  readonly failures?: readonly string[];
  readonly ignored?: readonly string[];
}

/**
 * A reload's answer as lines, and the exit code: 0 applied (or, dry, would apply), 1 refused,
 * over a limit, or a listener could not be opened (pure).
 */
export function formatReload(status: number, answer: ReloadAnswer): { output: string; code: number } {
  const lines: string[] = [];
  const b = answer.backends;
  const named = (list: readonly { cluster: string; address: string; weight: number }[] | undefined): string =>
    (list ?? []).map((x) => `${x.cluster}:${x.address} (weight ${x.weight})`).join(', ');
  if (answer.status !== undefined) lines.push(answer.status === 'dry_run' ? 'dry run: nothing was applied' : `${answer.status}${answer.snapshot_version === undefined ? '' : ` (snapshot version ${answer.snapshot_version})`}`);
  else lines.push(`sluice ctl: ${status} ${answer.error ?? ''}: ${answer.message ?? ''}`);
  if (b !== undefined) {
    const rows: [string, string][] = [
      ['add', named(b.add)],
      ['restore', named(b.restore)],
      ['remove', (b.remove ?? []).join(', ')],
      ['drain', (b.drain ?? []).join(', ')],
      ['reweight', (b.reweight ?? []).map((r) => `${r.id} ${r.from} -> ${r.to}`).join(', ')],
      ['keep', `${(b.keep ?? []).length} backends`],
    ];
    for (const [what, text] of rows) lines.push(`${what.padEnd(9)}${text === '' ? '-' : text}`);
  }
  for (const limit of answer.limits ?? []) lines.push(`limit    ${limit.message}`);
  for (const failure of answer.failures ?? []) lines.push(`failed   ${failure}`);
  for (const key of answer.ignored ?? []) lines.push(`ignored  ${key} (changes only on restart)`);
  const ok = status < 300 && (answer.limits ?? []).length === 0 && (answer.failures ?? []).length === 0;
  return { output: lines.join('\n'), code: ok ? 0 : 1 };
}
