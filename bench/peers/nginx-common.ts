/**
 * What every nginx the bench starts shares: a private prefix directory (pid file, logs,
 * temp paths), the foreground master, and enough file descriptors for the idle-connection
 * workload. nginx is started with `-c` on a generated file, so the system's
 * /etc/nginx/nginx.conf and its modules-enabled are never read.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { ProcessGroup, Started } from '../lib/procs.ts';

export function nginxMain(dir: string, workers: number, fdLimit: number): string {
  mkdirSync(path.join(dir, 'tmp'), { recursive: true });
  return `daemon off;
master_process on;
worker_processes ${workers};
worker_rlimit_nofile ${fdLimit};
pid ${path.join(dir, 'nginx.pid')};
error_log ${path.join(dir, 'error.log')} warn;
events {
  worker_connections ${fdLimit - 100};
  multi_accept on;
}
`;
}

export function startNginx(group: ProcessGroup, name: string, dir: string, config: string): Started {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'nginx.conf');
  writeFileSync(file, config);
  return group.start(name, 'nginx', ['-c', file, '-p', dir, '-e', path.join(dir, 'error.log')]);
}

export function tempPaths(dir: string): string {
  const tmp = path.join(dir, 'tmp');
  return ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']
    .map((kind) => `  ${kind}_temp_path ${path.join(tmp, kind)};`)
    .join('\n');
}
