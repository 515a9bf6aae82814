/**
 * `npm run demo`: start three tiny HTTP backends and two UDP echo backends on the addresses
 * config.yaml names, then the Sluice daemon on config.yaml, and print what to try. Ctrl-C
 * stops both (the daemon drains first).
 */
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const DEMO_PORTS = [9001, 9002, 9003];
const DEMO_UDP_PORTS = [9101, 9102];
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

/** Answers every datagram with `echo from ADDRESS: payload`, so a client sees who served it. */
function startUdpBackend(port: number): Promise<dgram.Socket> {
  const socket = dgram.createSocket('udp4');
  socket.on('message', (message, remote) => {
    socket.send(Buffer.concat([Buffer.from(`echo from 127.0.0.1:${port}: `), message]), remote.port, remote.address);
  });
  return new Promise((resolve, reject) => {
    socket.once('error', (error) => reject(new Error(`demo UDP backend 127.0.0.1:${port}: ${error.message}`)));
    socket.bind(port, '127.0.0.1', () => resolve(socket));
  });
}

const backends = await Promise.all(DEMO_PORTS.map(startBackend));
const udpBackends = await Promise.all(DEMO_UDP_PORTS.map(startUdpBackend));
// bin/sluice, as installs run it: it sets the memory settings that must precede the process
// (docs/data-plane-decisions.md, "Process memory at idle"), and the demo is what a user measures first.
const sluice = fileURLToPath(new URL('../bin/sluice', import.meta.url));
// Its own process group: a terminal's Ctrl-C reaches the daemon once, through us, and
// not twice (a second signal means "stop at once" to the daemon).
const daemon = spawn(sluice, ['run', '--config', configFile], { stdio: 'inherit', detached: true });

process.stdout.write(`
  Sluice demo: HTTP backends on ${DEMO_PORTS.map((p) => `127.0.0.1:${p}`).join(', ')},
  UDP echo backends on ${DEMO_UDP_PORTS.map((p) => `127.0.0.1:${p}`).join(', ')}, daemon on ${configFile}.
  Try, in another terminal:
    for i in 1 2 3 4 5 6; do curl -s http://127.0.0.1:8080/; done   # round robin over the backends
    for i in 1 2 3 4; do echo hello | nc -u -w1 127.0.0.1 8053; done # UDP: each new client port is a new session
    node -e "const s=require('dgram').createSocket('udp4');s.on('message',m=>{console.log(String(m));process.exit()});s.send('hi',8053,'127.0.0.1');setTimeout(()=>{console.log('no reply');process.exit(1)},2000)"
    curl -s http://127.0.0.1:9090/backends                           # state and live counters
    curl -s http://127.0.0.1:9090/listeners                          # per listener: connections, UDP sessions
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
  for (const socket of udpBackends) socket.close();
  process.exitCode = code ?? 1;
});
