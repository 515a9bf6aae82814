import { existsSync, readFileSync } from 'node:fs';

/**
 * The complete JSON lines of a file another process is appending to (an access log): a last
 * line still being written (no newline yet) is left for the next read, never half-parsed.
 */
export function completeJsonLines<T>(file: string): T[] {
  if (!existsSync(file)) return [];
  const text = readFileSync(file, 'utf8');
  return text
    .slice(0, text.lastIndexOf('\n') + 1)
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as T);
}
