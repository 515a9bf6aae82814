/**
 * Starts a worker thread whose TypeScript modules arrive already stripped of their types.
 *
 * Node strips types with a WebAssembly compiler (amaro) that each thread loads for its
 * first `.ts` module: about 13 MiB of memory per thread (measured: two bare workers
 * importing one `.ts` file cost 43 MiB of RSS against 18 MiB with the sources handed
 * over; bench/idle-rss.ts on the daemon in docs/data-plane-decisions.md). The main thread
 * has it loaded anyway, so it strips the worker's static module graph once and hands the
 * JavaScript over in workerData; a resolve-free load hook in the worker serves it. A module
 * the walk did not find (a dynamic import, a file it could not read) loads the ordinary
 * way, so the hand-over only saves memory, it never changes what runs. Stripping keeps
 * every line and column, so stack traces are unchanged.
 */
import { readFileSync } from 'node:fs';
import { getCompileCacheDir, stripTypeScriptTypes } from 'node:module';
import { Worker, type WorkerOptions } from 'node:worker_threads';
import { cachedStrip } from './stripped-cache.ts';

/** The workerData key that carries the stripped sources; deleted once the entry loaded. */
export const STRIPPED_SOURCES_KEY = 'sluiceStrippedSources';

/**
 * Runs as the worker's first (CommonJS) code: serve the handed-over sources, import the
 * entry, then drop the sources so their memory can be collected.
 */
const BOOTSTRAP = `
const { registerHooks } = require('node:module');
const { workerData } = require('node:worker_threads');
const sources = workerData.${STRIPPED_SOURCES_KEY}.sources;
const entry = workerData.${STRIPPED_SOURCES_KEY}.entry;
const hooks = registerHooks({ load(url, context, next) {
  const source = sources[url];
  return source === undefined ? next(url, context) : { format: 'module', source, shortCircuit: true };
} });
import(entry).finally(() => {
  hooks.deregister();
  delete workerData.${STRIPPED_SOURCES_KEY};
});
`;

/** `import … from './x.ts'`, `export … from '../y.ts'`, `import './z.ts'`: relative static imports only. */
const RELATIVE_IMPORT = /(?:^|[\s;}])(?:import|export)\s(?:[^'";]*?\sfrom\s*)?['"](\.\.?\/[^'"]+\.ts)['"]/g;

/** The relative `.ts` specifiers a stripped module imports statically (pure: text in, specifiers out). */
export function relativeImports(javascript: string): string[] {
  return [...javascript.matchAll(RELATIVE_IMPORT)].map((match) => match[1] ?? '');
}

/** Every `.ts` module reachable from `entry` by relative static imports, stripped, by URL. */
export function strippedGraph(entry: URL, strip: (typescript: string) => string = cachedStrip(getCompileCacheDir(), stripQuietly)): Record<string, string> {
  const sources: Record<string, string> = {};
  const queue = [entry.href];
  for (let url = queue.pop(); url !== undefined; url = queue.pop()) {
    if (url in sources) continue;
    let javascript: string;
    try {
      javascript = strip(readFileSync(new URL(url), 'utf8'));
    } catch {
      // Left to the worker's own loader, which reports a real problem with its usual error.
      continue;
    }
    sources[url] = javascript;
    for (const specifier of relativeImports(javascript)) queue.push(new URL(specifier, url).href);
  }
  return sources;
}

/**
 * `stripTypeScriptTypes` announces itself as experimental once per process; Node's own
 * type stripping, which does the same work, does not. The warning would reach operators'
 * logs for no reason, so that one warning is held back.
 */
function stripQuietly(typescript: string): string {
  const original = Object.getOwnPropertyDescriptor(process, 'emitWarning');
  const emit = original?.value as ((...args: unknown[]) => void) | undefined;
  if (original === undefined || emit === undefined) return stripTypeScriptTypes(typescript, { mode: 'strip' });
  const filtered = (warning: unknown, ...rest: unknown[]): void => {
    const text = warning instanceof Error ? warning.message : String(warning);
    if (!text.startsWith('stripTypeScriptTypes is an experimental feature')) Reflect.apply(emit, process, [warning, ...rest]);
  };
  Object.defineProperty(process, 'emitWarning', { ...original, value: filtered });
  try {
    return stripTypeScriptTypes(typescript, { mode: 'strip' });
  } finally {
    Object.defineProperty(process, 'emitWarning', original);
  }
}

/** `new Worker(entry, options)`, with the entry's TypeScript graph stripped by this thread. */
export function startThread(entry: URL, options: Omit<WorkerOptions, 'workerData' | 'eval'> & { readonly workerData: object }): Worker {
  const handover = { entry: entry.href, sources: strippedGraph(entry) };
  const workerData: Record<string, unknown> = { ...options.workerData, [STRIPPED_SOURCES_KEY]: handover };
  return new Worker(BOOTSTRAP, { ...options, eval: true, workerData });
}
