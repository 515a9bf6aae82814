/**
 * Wait until a Sluice started on this config answers GET /readyz with 200: systemd runs it
 * as the unit's ExecStartPost (deploy/systemd/sluice.service), so `systemctl start` returns
 * only once the listeners are open, and fails when Sluice does not get there.
 *
 *   node scripts/wait-ready.ts --config /etc/sluice/config.yaml [--pid $MAINPID] [--timeout 60s]
 *
 * Exit 0: ready. Exit 1: the process named by --pid exited, the timeout passed, or the
 * config cannot be read (the message says which, on stderr, so it reaches the journal).
 * The address comes from the config's admin.listen, so the unit does not repeat it.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { parseHostPort } from '../src/shared/address.ts';
import { loadConfig } from '../src/shared/config/load.ts';
import { parseDuration } from '../src/shared/duration.ts';

const POLL_INTERVAL_MS = 200;
const REQUEST_TIMEOUT_MS = 1000;
const DEFAULT_TIMEOUT_MS = 60_000;

/**
 * The URL of /readyz for an admin.listen address; a wildcard host is asked on loopback,
 * where it also listens. Undefined for an address that does not parse.
 */
export function readyUrl(adminListen: string): string | undefined {
  const address = parseHostPort(adminListen);
  if (address === undefined) return undefined;
  const host = address.host === '0.0.0.0' ? '127.0.0.1' : address.host === '::' ? '::1' : address.host;
  return `http://${host.includes(':') ? `[${host}]` : host}:${address.port}/readyz`;
}

type Probe = 'ready' | 'not-ready';
/** What one poll saw, and what the waiter does next. */
export type Verdict = 'ready' | 'exited' | 'timeout' | 'wait';

/** The decision after one poll: pure, so the order of the checks is tested as a table. */
export function verdict(probe: Probe, alive: boolean, now: number, deadline: number): Verdict {
  if (probe === 'ready') return 'ready';
  if (!alive) return 'exited';
  return now >= deadline ? 'timeout' : 'wait';
}

async function probe(url: string): Promise<Probe> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    await response.body?.cancel();
    return response.status === 200 ? 'ready' : 'not-ready';
  } catch {
    return 'not-ready';
  }
}

function isAlive(pid: number | undefined): boolean {
  if (pid === undefined) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to someone else; only ESRCH means it is gone.
    return (error as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { config: { type: 'string' }, pid: { type: 'string' }, timeout: { type: 'string' } }, strict: true });
  if (values.config === undefined) {
    process.stderr.write('wait-ready: --config FILE is required\n');
    return 1;
  }
  const url = readyUrl(loadConfig(values.config).admin.listen);
  if (url === undefined) {
    process.stderr.write(`wait-ready: ${values.config}: admin.listen does not parse\n`);
    return 1;
  }
  const timeoutMs = values.timeout === undefined ? DEFAULT_TIMEOUT_MS : parseDuration(values.timeout);
  if (timeoutMs === undefined) {
    process.stderr.write(`wait-ready: --timeout ${values.timeout ?? ''}: expected a duration like 500ms, 2s or 5m\n`);
    return 1;
  }
  const pid = values.pid === undefined ? undefined : Number(values.pid);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const seen = verdict(await probe(url), isAlive(pid), Date.now(), deadline);
    if (seen === 'ready') return 0;
    if (seen === 'exited') {
      process.stderr.write(`wait-ready: sluice (pid ${pid}) exited before ${url} answered 200\n`);
      return 1;
    }
    if (seen === 'timeout') {
      process.stderr.write(`wait-ready: ${url} did not answer 200 within ${timeoutMs} ms\n`);
      return 1;
    }
    await sleep(POLL_INTERVAL_MS);
  }
}

if (import.meta.main) process.exitCode = await main();
