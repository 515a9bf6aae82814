/**
 * The cheap backends behind every proxy: nginx answering a small 200 over HTTP/1.1
 * keep-alive, and an iperf3 server for bulk throughput.
 *
 * The HTTP backend listens on 0.0.0.0 so that every 127.x.y.z address reaches it: the
 * 10,000-backend pick-cost workload and the admin-change workload need many distinct
 * backend addresses served by one process. It answers only 127.0.0.0/8 and refuses
 * everyone else, so nothing off the machine can use it.
 */
import path from 'node:path';
import type { ProcessGroup, Started } from '../lib/procs.ts';
import { waitForListen } from '../lib/procs.ts';
import { nginxMain, startNginx, tempPaths } from './nginx-common.ts';

/** The body every HTTP backend answers: small, so the bench measures the proxy, not copying. */
export const BACKEND_BODY = 'ok\n';

export async function startHttpBackend(
  group: ProcessGroup,
  dir: string,
  port: number,
  workers: number,
  fdLimit: number,
): Promise<Started> {
  const home = path.join(dir, 'backend-nginx');
  const config = `${nginxMain(home, workers, fdLimit)}
http {
  access_log off;
${tempPaths(home)}
  keepalive_timeout 600s;
  keepalive_requests 100000000;
  default_type text/plain;
  server {
    listen 0.0.0.0:${port} reuseport backlog=4096;
    allow 127.0.0.0/8;
    deny all;
    location / { return 200 "${BACKEND_BODY.replace('\n', '\\n')}"; }
  }
}
`;
  const started = startNginx(group, 'backend-nginx', home, config);
  await waitForListen(port, 15_000, started);
  return started;
}

export async function startIperfServer(group: ProcessGroup, port: number): Promise<Started> {
  const started = group.start('backend-iperf3', 'iperf3', ['--server', '--bind', '127.0.0.1', '--port', String(port)]);
  await waitForListen(port, 15_000, started);
  return started;
}
