/** Helpers for the config tables: YAML built line by line, and the errors a config gets. */
import { ConfigError, parseConfig } from '../../src/shared/config/load.ts';

/** The file name the tables' expected messages start with. */
export const CONFIG_FILE = 'config.yaml';

/** One YAML line per argument, so the line numbers in expectations can be counted by eye. */
export function yaml(...lines: string[]): string {
  return lines.join('\n') + '\n';
}

/** The formatted issues `text` is refused with, or a failure when it is accepted. */
export function errorsOf(text: string): string[] {
  try {
    parseConfig(text, CONFIG_FILE);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    return error.message.split('\n');
  }
  throw new Error('the config was accepted');
}
