/**
 * `npm run demo`: start three tiny HTTP backends on the addresses config.yaml names, then
 * the Sluice daemon on config.yaml, and print what to try. Ctrl-C stops both (the daemon
 * drains first).
 */
import { spawn } from 'node:child_process';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const DEMO_PORTS = [9001, 9002, 9003];
const { values } = parseArgs({ options: { config: { type: 'string', default: 'config.yaml' } } });
const configFile = values.config;

function startBackend(port: number): Promise<http.Server> {
  const server = http.createServer((request, response) => {
    response.setHeader('content-type', 'text/plain');
    response.end(`hello from demo backend 127.0.0.1:${port} (${request.method ?? 'GET'} ${request.url ?? '/'})\n`);
  });
  return new Promise((resolve, reject) => {
    server.once('error', (error) => reject(new Error(`demo backend 127.0.0.1:${port}: ${error.message}`)));
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

const backends = await Promise.all(DEMO_PORTS.map(startBackend));
const cli = fileURLToPath(new URL('../src/cli.ts', import.meta.url));
// Its own process group: a terminal's Ctrl-C reaches the daemon once, through us, and
// not twice (a second signal means "stop at once" to the daemon).
const daemon = spawn(process.execPath, [cli, 'run', '--config', configFile], { stdio: 'inherit', detached: true });

process.stdout.write(`
  Sluice demo: backends on ${DEMO_PORTS.map((p) => `127.0.0.1:${p}`).join(', ')}, daemon on ${configFile}.
  Try, in another terminal:
    for i in 1 2 3 4 5 6; do curl -s http://127.0.0.1:8080/; done   # round robin over the backends
    curl -s http://127.0.0.1:9090/backends                           # state and live counters
    curl -s http://127.0.0.1:9090/readyz
    curl -s http://127.0.0.1:9090/metrics | grep ^sluice_backend_connections  # Prometheus
    open http://127.0.0.1:9090/ in a browser                         # live dashboard, drain buttons
  Ctrl-C drains and stops.

`);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    daemon.kill(signal);
  });
}
process.on('exit', () => {
  if (daemon.exitCode === null) daemon.kill('SIGKILL');
});
daemon.on('exit', (code) => {
  for (const server of backends) server.close();
  process.exitCode = code ?? 1;
});
