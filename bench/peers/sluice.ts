/**
 * The real Sluice daemon (`bin/sluice run --config FILE`) on a generated config. An
 * instance may carry extra environment variables: that is how a data-plane variant under
 * evaluation runs side by side with the unchanged one in the same bench run.
 */
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ProcessGroup, Started } from '../lib/procs.ts';
import { delay } from '../lib/procs.ts';
import type { Target } from './target.ts';

export const SLUICE_CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));
/** The launcher installs run (it sets the process's memory settings before node starts). */
export const SLUICE_BIN = fileURLToPath(new URL('../../bin/sluice', import.meta.url));

/**
 * How to start the daemon: this checkout's through bin/sluice, so the bench measures it as it
 * ships; another checkout's src/cli.ts (a --variant) with this node. bin/sluice execs node, so
 * the pid started is the daemon's (its CPU and memory are read from it).
 */
export function sluiceCommand(cli: string = SLUICE_CLI): { readonly command: string; readonly args: readonly string[] } {
  return cli === SLUICE_CLI ? { command: SLUICE_BIN, args: [] } : { command: process.execPath, args: [cli] };
}

export interface SluiceListener {
  readonly name: string;
  readonly port: number;
  readonly cluster: string;
}

export interface SluiceCluster {
  readonly name: string;
  readonly backends: readonly string[];
}

export interface SluiceSetup {
  readonly workers: number;
  readonly adminPort: number;
  readonly listeners: readonly SluiceListener[];
  readonly clusters: readonly SluiceCluster[];
}

export function sluiceConfig(setup: SluiceSetup): string {
  const listeners = setup.listeners
    .map((l) => `  - name: ${l.name}\n    protocol: tcp\n    listen: 127.0.0.1:${l.port}\n    cluster: ${l.cluster}`)
    .join('\n');
  const clusters = setup.clusters
    .map((c) => {
      const backends =
        c.backends.length === 0 ? '    backends: []' : `    backends:\n${c.backends.map((a) => `      - {address: "${a}"}`).join('\n')}`;
      return `  - name: ${c.name}
    algorithm: round_robin
    connect_timeout: 5s
    idle_timeout: 10m
    health_check: {type: none}
${backends}`;
    })
    .join('\n');
  return `workers: ${setup.workers}
admin:
  listen: 127.0.0.1:${setup.adminPort}
shutdown:
  drain_timeout: 1s
listeners:
${listeners}
clusters:
${clusters}
`;
}

export interface SluiceInstance {
  readonly started: Started;
  readonly adminUrl: string;
  /** The config file it runs on (rewrite it and POST /config/reload to change it). */
  readonly configFile: string;
  readonly setup: SluiceSetup;
}

/** Start the daemon and wait for its start-up line (every worker listening). */
export async function startSluice(
  group: ProcessGroup,
  dir: string,
  name: string,
  setup: SluiceSetup,
  env: Readonly<Record<string, string>> = {},
  cli: string = SLUICE_CLI,
): Promise<SluiceInstance> {
  const home = path.join(dir, name);
  mkdirSync(home, { recursive: true });
  const file = path.join(home, 'config.yaml');
  writeFileSync(file, sluiceConfig(setup));
  const { command, args } = sluiceCommand(cli);
  const started = group.start(name, command, [...args, 'run', '--config', file, '--log-level', 'info'], {
    env: { ...process.env, ...env },
  });
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (readFileSync(started.logFile, 'utf8').includes('"msg":"sluice started"')) break;
    if (started.child.exitCode !== null) throw new Error(`${name} exited at start-up (see ${started.logFile})`);
    if (Date.now() > deadline) throw new Error(`${name} did not start within 60 s (see ${started.logFile})`);
    await delay(100);
  }
  return { started, adminUrl: `http://127.0.0.1:${setup.adminPort}`, configFile: file, setup };
}

/** The usual Sluice target: an HTTP and an iperf3 listener, each with one backend. */
export async function startSluiceTarget(
  group: ProcessGroup,
  dir: string,
  options: {
    readonly label: string;
    readonly workers: number;
    readonly adminPort: number;
    readonly httpPort: number;
    readonly iperfPort: number;
    readonly httpBackends: readonly string[];
    readonly iperfBackend: string;
    readonly env?: Readonly<Record<string, string>>;
    /** Another checkout's src/cli.ts, to compare two versions of the daemon. */
    readonly cli?: string;
  },
): Promise<Target> {
  const setup: SluiceSetup = {
    workers: options.workers,
    adminPort: options.adminPort,
    listeners: [
      { name: 'http', port: options.httpPort, cluster: 'http' },
      { name: 'iperf', port: options.iperfPort, cluster: 'iperf' },
    ],
    clusters: [
      { name: 'http', backends: options.httpBackends },
      { name: 'iperf', backends: [options.iperfBackend] },
    ],
  };
  const fileName = `sluice-${options.label.replace(/[^a-zA-Z0-9]+/g, '-')}`;
  const instance = await startSluice(group, dir, fileName, setup, options.env ?? {}, options.cli);
  return {
    name: `sluice ${options.label}`,
    kind: 'sluice',
    workers: options.workers,
    httpPort: options.httpPort,
    iperfPort: options.iperfPort,
    pid: instance.started.pid,
  };
}
