/**
 * Every configuration a bench run compares, as a recipe that starts it on fresh ports:
 * the backend itself (the physical limit), HAProxy and nginx at one worker and at Sluice's
 * worker count, Sluice at both, and any Sluice variants under evaluation.
 */
import type { ProcessGroup } from '../lib/procs.ts';
import { freePorts } from '../lib/procs.ts';
import { startHaproxy } from './haproxy.ts';
import { startNginxStream } from './nginx-stream.ts';
import { startSluiceTarget } from './sluice.ts';
import type { Target, TargetKind } from './target.ts';

export interface Backends {
  readonly httpPort: number;
  readonly iperfPort: number;
}

export interface StartContext {
  readonly group: ProcessGroup;
  readonly dir: string;
  readonly backends: Backends;
  /** Per-process file descriptor limit; the proxies are configured to use it fully. */
  readonly fdLimit: number;
}

export interface TargetSpec {
  readonly name: string;
  readonly kind: TargetKind;
  readonly workers: number;
  start(context: StartContext): Promise<Target>;
}

/** A Sluice run with extra environment variables, e.g. `loop:SLUICE_PIPE=loop`. */
export interface SluiceVariant {
  readonly label: string;
  readonly env: Readonly<Record<string, string>>;
}

function direct(): TargetSpec {
  return {
    name: 'direct',
    kind: 'direct',
    workers: 0,
    start: ({ backends }) =>
      Promise.resolve({
        name: 'direct',
        kind: 'direct',
        workers: 0,
        httpPort: backends.httpPort,
        iperfPort: backends.iperfPort,
        pid: undefined,
      }),
  };
}

async function proxyPorts(backends: Backends): Promise<{
  httpPort: number;
  iperfPort: number;
  httpBackendPort: number;
  iperfBackendPort: number;
}> {
  const [httpPort = 0, iperfPort = 0] = await freePorts(2);
  return { httpPort, iperfPort, httpBackendPort: backends.httpPort, iperfBackendPort: backends.iperfPort };
}

function haproxy(threads: number): TargetSpec {
  return {
    name: `haproxy ${threads}t`,
    kind: 'haproxy',
    workers: threads,
    start: async ({ group, dir, backends, fdLimit }) =>
      // HAProxy needs two descriptors per proxied connection plus a few of its own.
      startHaproxy(group, dir, threads, await proxyPorts(backends), Math.floor((fdLimit - 200) / 2)),
  };
}

function nginx(workers: number): TargetSpec {
  return {
    name: `nginx ${workers}w`,
    kind: 'nginx',
    workers,
    start: async ({ group, dir, backends, fdLimit }) => startNginxStream(group, dir, workers, await proxyPorts(backends), fdLimit),
  };
}

function sluice(workers: number, variant?: SluiceVariant): TargetSpec {
  const label = variant === undefined ? `${workers}w` : `${workers}w ${variant.label}`;
  return {
    name: `sluice ${label}`,
    kind: 'sluice',
    workers,
    start: async ({ group, dir, backends }) => {
      const [adminPort = 0] = await freePorts(1);
      const ports = await proxyPorts(backends);
      return startSluiceTarget(group, dir, {
        label,
        workers,
        adminPort,
        httpPort: ports.httpPort,
        iperfPort: ports.iperfPort,
        httpBackends: [`127.0.0.1:${backends.httpPort}`],
        iperfBackend: `127.0.0.1:${backends.iperfPort}`,
        ...(variant === undefined ? {} : { env: variant.env }),
      });
    },
  };
}

/** The comparison set; `workers` is Sluice's worker count (the peers' second configuration). */
export function targetSpecs(workers: number, variants: readonly SluiceVariant[]): TargetSpec[] {
  const counts = workers === 1 ? [1] : [1, workers];
  return [
    direct(),
    ...counts.map(haproxy),
    ...counts.map(nginx),
    ...counts.map((w) => sluice(w)),
    ...variants.map((v) => sluice(workers, v)),
  ];
}
