/**
 * nginx's `stream` (layer-4) proxy with N worker processes. Each listener uses `reuseport`,
 * so every worker has its own listening socket like Sluice's workers, and no accept mutex.
 */
import path from 'node:path';
import type { ProcessGroup } from '../lib/procs.ts';
import { waitForListen } from '../lib/procs.ts';
import { nginxStreamModule } from '../lib/install.ts';
import type { ProxyPorts } from './haproxy.ts';
import { nginxMain, startNginx } from './nginx-common.ts';
import type { Target } from './target.ts';

export function nginxStreamConfig(home: string, workers: number, ports: ProxyPorts, fdLimit: number): string {
  return `load_module ${nginxStreamModule};
${nginxMain(home, workers, fdLimit)}
stream {
  proxy_timeout 10m;
  proxy_connect_timeout 5s;
  server {
    listen 127.0.0.1:${ports.httpPort} reuseport backlog=4096;
    proxy_pass 127.0.0.1:${ports.httpBackendPort};
  }
  server {
    listen 127.0.0.1:${ports.iperfPort} reuseport backlog=4096;
    proxy_pass 127.0.0.1:${ports.iperfBackendPort};
  }
}
`;
}

export async function startNginxStream(
  group: ProcessGroup,
  dir: string,
  workers: number,
  ports: ProxyPorts,
  fdLimit: number,
): Promise<Target> {
  const home = path.join(dir, `nginx-${workers}w`);
  const started = startNginx(group, `nginx-${workers}w`, home, nginxStreamConfig(home, workers, ports, fdLimit));
  await waitForListen(ports.httpPort, 15_000, started);
  await waitForListen(ports.iperfPort, 15_000, started);
  return {
    name: `nginx ${workers}w`,
    kind: 'nginx',
    workers,
    httpPort: ports.httpPort,
    iperfPort: ports.iperfPort,
    pid: started.pid,
  };
}
