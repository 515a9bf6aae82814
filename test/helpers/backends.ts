/**
 * Real backends for tests, on 127.0.0.1 with kernel-chosen ports. Each counts what it
 * accepted so a test can check where the balancer sent connections.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';

export interface TestBackend {
  readonly port: number;
  readonly address: string;
  /** Connections accepted so far. */
  accepted: number;
  /** Connections currently open. */
  readonly open: Set<net.Socket>;
  close(): Promise<void>;
}

export type BackendBehaviour = 'echo' | 'name';

/**
 * `echo` writes every byte back and ends its side when the client ends its own (so a
 * half-closed client still receives everything); `name` answers with its address and ends.
 */
export async function startBackend(behaviour: BackendBehaviour = 'echo', port = 0): Promise<TestBackend> {
  const open = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    backend.accepted++;
    open.add(socket);
    socket.on('close', () => open.delete(socket));
    socket.on('error', () => socket.destroy());
    if (behaviour === 'echo') socket.pipe(socket);
    else socket.end(backend.address);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const info = server.address() as net.AddressInfo;
  const backend: TestBackend = {
    port: info.port,
    address: `127.0.0.1:${info.port}`,
    accepted: 0,
    open,
    close: async () => {
      for (const socket of open) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return backend;
}

/**
 * A backend whose accept queue is full: the kernel drops new SYNs, so a connect attempt
 * never completes and can only end by the connector's own timeout. Python is used because
 * Node always accepts what it listens for.
 */
export async function startBlackholeBackend(): Promise<{ address: string; close: () => Promise<void> }> {
  const script = [
    'import socket, sys',
    's = socket.socket()',
    "s.bind(('127.0.0.1', 0))",
    's.listen(0)',
    'print(s.getsockname()[1], flush=True)',
    'sys.stdin.read()',
  ].join('\n');
  const child: ChildProcess = spawn('python3', ['-c', script], { stdio: ['pipe', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.stdout?.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
  });
  // One completed connection fills a backlog of 0; every later SYN is dropped.
  const filler = net.connect(port, '127.0.0.1');
  filler.on('error', () => undefined);
  await new Promise<void>((resolve) => filler.once('connect', () => resolve()));
  return {
    address: `127.0.0.1:${port}`,
    close: async () => {
      filler.destroy();
      child.stdin?.end();
      if (child.exitCode === null) await new Promise((resolve) => child.once('exit', resolve));
    },
  };
}
