/**
 * HAProxy in `mode tcp`, the reference the targets are set against. One process with
 * `nbthread` threads sharing one listening socket per frontend (HAProxy's default), no
 * logging, timeouts long enough for the idle-connection workload.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { ProcessGroup } from '../lib/procs.ts';
import { waitForListen } from '../lib/procs.ts';
import type { Target } from './target.ts';

export interface ProxyPorts {
  readonly httpPort: number;
  readonly iperfPort: number;
  readonly httpBackendPort: number;
  readonly iperfBackendPort: number;
}

export function haproxyConfig(threads: number, ports: ProxyPorts, maxConnections: number): string {
  return `global
  nbthread ${threads}
  maxconn ${maxConnections}

defaults
  mode tcp
  maxconn ${maxConnections}
  timeout connect 5s
  timeout client 10m
  timeout server 10m

listen http
  bind 127.0.0.1:${ports.httpPort}
  server backend 127.0.0.1:${ports.httpBackendPort}

listen iperf
  bind 127.0.0.1:${ports.iperfPort}
  server backend 127.0.0.1:${ports.iperfBackendPort}
`;
}

export async function startHaproxy(
  group: ProcessGroup,
  dir: string,
  threads: number,
  ports: ProxyPorts,
  maxConnections: number,
): Promise<Target> {
  const name = `haproxy ${threads}t`;
  const home = path.join(dir, `haproxy-${threads}t`);
  mkdirSync(home, { recursive: true });
  const file = path.join(home, 'haproxy.cfg');
  writeFileSync(file, haproxyConfig(threads, ports, maxConnections));
  // -db: stay in the foreground, so the pid we hold is the process that proxies.
  const started = group.start(`haproxy-${threads}t`, 'haproxy', ['-db', '-f', file]);
  await waitForListen(ports.httpPort, 15_000, started);
  await waitForListen(ports.iperfPort, 15_000, started);
  return { name, kind: 'haproxy', workers: threads, httpPort: ports.httpPort, iperfPort: ports.iperfPort, pid: started.pid };
}
