/**
 * The memory settings that must be in place before the process starts (issue #18,
 * docs/data-plane-decisions.md "Process memory at idle") reach the daemon through the
 * shipped entry points: bin/sluice (the Dockerfile's ENTRYPOINT) and `sluice master` (the
 * systemd unit's ExecStart), read from the running daemon's /proc/PID/environ; and the
 * master, which only waits on its child, does not load the daemon's packages.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { eventually } from '../helpers/client.ts';
import { CLI, followLogs, tcpConfig, writeConfig } from '../helpers/daemon.ts';
import { startMaster } from '../helpers/master.ts';
import { freePorts } from '../helpers/ports.ts';

const BIN = fileURLToPath(new URL('../../bin/sluice', import.meta.url));

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** The environment a running process was started with. */
function environOf(pid: number): Record<string, string> {
  const entries = readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0').filter((e) => e.includes('='));
  return Object.fromEntries(entries.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
}

/** Preloaded in the master: every package module it resolves, to stderr as `PACKAGE <url>`. */
const PACKAGE_TRACE = `data:text/javascript,${encodeURIComponent(`
import { registerHooks } from 'node:module';
import { writeSync } from 'node:fs';
registerHooks({ resolve(specifier, context, next) {
  const resolved = next(specifier, context);
  if (resolved.url.includes('/node_modules/')) writeSync(2, 'PACKAGE ' + resolved.url + '\\n');
  return resolved;
} });
`)}`;

async function readyz(adminPort: number): Promise<number> {
  try {
    return (await fetch(`http://127.0.0.1:${adminPort}/readyz`)).status;
  } catch {
    return 0;
  }
}

async function config(): Promise<{ yaml: string; adminPort: number }> {
  const [port, adminPort] = await freePorts(2);
  return { yaml: tcpConfig({ listenPort: port!, adminPort: adminPort!, backends: ['127.0.0.1:1'], workers: 1 }), adminPort: adminPort! };
}

describe('memory settings at start-up', () => {
  it("the daemon that `bin/sluice master` starts runs with MALLOC_ARENA_MAX=2, a 1 MiB semi-space cap and systemd's cache directory as compile cache, which it fills", async () => {
    const { yaml } = await config();
    const cacheDirectory = mkdtempSync(path.join(tmpdir(), 'sluice-cache-'));
    cleanups.push(() => rmSync(cacheDirectory, { recursive: true, force: true }));
    // env -u: what the test runner has in its own environment must not decide the outcome;
    // CACHE_DIRECTORY is what systemd's CacheDirectory= sets.
    const master = await startMaster(yaml, {
      command: (file) => [
        '/usr/bin/env', '-u', 'MALLOC_ARENA_MAX', '-u', 'NODE_OPTIONS', '-u', 'NODE_COMPILE_CACHE', `CACHE_DIRECTORY=${cacheDirectory}`,
        BIN, 'master', '--config', file, '--log-level', 'info',
      ],
    });
    cleanups.push(async () => master.kill());
    const [child] = master.childPids();

    const daemon = environOf(child!);
    expect(daemon['MALLOC_ARENA_MAX']).toBe('2');
    expect(daemon['NODE_OPTIONS']).toBe('--max-semi-space-size=1');
    expect(daemon['NODE_COMPILE_CACHE']).toBe(cacheDirectory);
    expect(environOf(master.child.pid!)['MALLOC_ARENA_MAX']).toBe('2');
    // The worker threads' stripped sources, written by the child once its workers started
    // (in Node's directory for this Node version, which getCompileCacheDir() names).
    const [versionDir] = readdirSync(cacheDirectory);
    const stripped = readdirSync(path.join(cacheDirectory, versionDir!, 'sluice-stripped'));
    expect(stripped.filter((f) => f.endsWith('.js')).length).toBeGreaterThan(50);
  });

  it("an operator's own MALLOC_ARENA_MAX and --max-semi-space-size win over bin/sluice's", async () => {
    const { yaml, adminPort } = await config();
    const env = { ...process.env, MALLOC_ARENA_MAX: '4', NODE_OPTIONS: '--max-semi-space-size=16' };
    const child = spawn(BIN, ['run', '--config', writeConfig(yaml)], { stdio: ['ignore', 'pipe', 'pipe'], env });
    const { exited } = followLogs(child, 'sluice', 30_000);
    cleanups.push(async () => {
      child.kill('SIGKILL');
      await exited;
    });
    // Ready means bin/sluice has exec'd node: the pid is the daemon's from then on.
    await eventually(() => readyz(adminPort), (status) => status === 200, 30_000);

    const daemon = environOf(child.pid!);
    expect(daemon['MALLOC_ARENA_MAX']).toBe('4');
    expect(daemon['NODE_OPTIONS']).toBe('--max-semi-space-size=16');
  });

  it("`sluice master` loads pino for its log and none of the daemon's packages (Fastify, zod, yaml, prom-client)", async () => {
    const { yaml } = await config();
    const master = spawn(process.execPath, ['--import', PACKAGE_TRACE, CLI, 'master', '--config', writeConfig(yaml), '--log-level', 'info'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const { logs, stderr, waitForLog, exited } = followLogs(master, 'master', 30_000);
    cleanups.push(async () => {
      for (const line of logs) if (line.msg === 'child started') process.kill(line['child'] as number, 'SIGKILL');
      master.kill('SIGKILL');
      await exited;
    });
    // The child (bin/sluice, without the trace) has loaded the daemon by then; the master all it ever will.
    await waitForLog((l) => l['component'] === 'master' && l.msg === 'child ready');

    const packages = new Set([...stderr().matchAll(/^PACKAGE .*\/node_modules\/((?:@[^/]+\/)?[^/]+)\//gm)].map((m) => m[1]));
    expect(packages).toContain('pino');
    for (const name of ['fastify', 'zod', 'yaml', 'prom-client']) expect(packages).not.toContain(name);
  });
});
