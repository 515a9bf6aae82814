/**
 * Stripped TypeScript kept on disk beside Node's compile cache, so that a warm start strips
 * nothing. With `NODE_COMPILE_CACHE` warm, Node does not load its type stripper (amaro, whose
 * WebAssembly memory stays resident: ~14 MiB of RSS) for the main thread's own modules; the
 * hand-over to the worker threads (thread-modules.ts) would load it all the same to strip
 * their graphs, unless it finds them here.
 *
 * An entry is named by a hash of the Node version and the TypeScript text, so a changed file
 * or another Node never reads a stale entry; it is written whole (a temporary file, then a
 * rename), so a crash or a second process writing the same entry leaves no half-written one.
 * Without a cache directory, or with one that cannot be written, it strips every time.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** `strip`, remembered in `dir` (Node's compile cache directory); `strip` itself without one. */
export function cachedStrip(dir: string | undefined, strip: (typescript: string) => string): (typescript: string) => string {
  if (dir === undefined) return strip;
  const cacheDir = path.join(dir, 'sluice-stripped');
  return (typescript) => {
    const key = createHash('sha256').update(process.version).update('\0').update(typescript).digest('hex');
    const file = path.join(cacheDir, `${key}.js`);
    try {
      return readFileSync(file, 'utf8');
    } catch {
      // Not cached yet.
    }
    const javascript = strip(typescript);
    try {
      mkdirSync(cacheDir, { recursive: true });
      const temporary = `${file}.${process.pid}.tmp`;
      writeFileSync(temporary, javascript);
      renameSync(temporary, file);
    } catch {
      // A cache that cannot be written: this start strips, as without one.
    }
    return javascript;
  };
}
