/**
 * The systemd unit (deploy/systemd/sluice.service) as commands a test can run: this checkout
 * stands in for /opt/sluice and a temp file for /etc/sluice/config.yaml.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '');
export const UNIT_TEXT = readFileSync(`${ROOT}/deploy/systemd/sluice.service`, 'utf8');

/** The first value of `Key=` in the unit. */
export function unitKey(key: string): string {
  const line = UNIT_TEXT.split('\n').find((l) => l.startsWith(`${key}=`));
  if (line === undefined) throw new Error(`the unit has no ${key}=`);
  return line.slice(key.length + 1);
}

/** A unit command line as systemd would run it here, as an argv. */
export function unitCommand(line: string, config: string, mainPid?: number): string[] {
  return line.replaceAll('/opt/sluice', ROOT).replaceAll('/etc/sluice/config.yaml', config).replaceAll('$MAINPID', String(mainPid ?? '')).split(/\s+/);
}
