/**
 * Real backends for tests, on 127.0.0.1 with kernel-chosen ports. Each counts what it
 * accepted so a test can check where the balancer sent connections.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
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

export interface HttpTestBackend {
  readonly port: number;
  readonly address: string;
  /** Decides each `GET /health` answer (200 when true, 503 when false); gets the request's index. */
  health: (index: number) => boolean;
  /** `GET /health` requests so far. */
  healthRequests: number;
  /** Other requests so far (the ones clients sent through the balancer). */
  requests: number;
  close(): Promise<void>;
}

/**
 * An HTTP backend: `GET /health` answers as `health` says; any other request gets the
 * backend's address as its body. Keep-alive connections stay open for a minute, so a test
 * can hold one across health changes.
 */
export async function startHttpBackend(port = 0): Promise<HttpTestBackend> {
  const sockets = new Set<net.Socket>();
  const server = http.createServer((request, response) => {
    if (request.url === '/health') {
      const ok = backend.health(backend.healthRequests++);
      response.statusCode = ok ? 200 : 503;
      response.end(ok ? 'ok' : 'failing');
      return;
    }
    backend.requests++;
    response.end(backend.address);
  });
  server.keepAliveTimeout = 60_000;
  server.on('connection', (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const info = server.address() as net.AddressInfo;
  const backend: HttpTestBackend = {
    port: info.port,
    address: `127.0.0.1:${info.port}`,
    health: () => true,
    healthRequests: 0,
    requests: 0,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return backend;
}

export interface KillableBackend {
  readonly port: number;
  readonly address: string;
  /**
   * Stop like a process that exits: serve what was already accepted or queued, close the
   * listening socket (new connects are refused) and exit. Resolves once it is gone.
   */
  kill(): Promise<void>;
}

/**
 * A `name` backend (writes its address, then closes) in its own Python process. Its kill
 * drains the kernel's accept queue before closing the listening socket, so the test sees
 * the balancer's behaviour and not the connections a dying process resets: a Node server
 * cannot accept what is queued before it closes.
 */
export async function startKillableBackend(port = 0): Promise<KillableBackend> {
  const script = [
    'import selectors, socket, sys',
    's = socket.socket()',
    's.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)',
    `s.bind(('127.0.0.1', ${port}))`,
    's.listen(512)',
    's.setblocking(False)',
    "name = ('127.0.0.1:%d' % s.getsockname()[1]).encode()",
    'print(s.getsockname()[1], flush=True)',
    'def serve_queued():',
    '    while True:',
    '        try:',
    '            c, _ = s.accept()',
    '        except BlockingIOError:',
    '            return',
    '        c.setblocking(True)',
    '        try:',
    '            c.sendall(name)',
    '        except OSError:',
    '            pass',
    '        c.close()',
    'sel = selectors.DefaultSelector()',
    "sel.register(s, selectors.EVENT_READ, 'accept')",
    "sel.register(sys.stdin, selectors.EVENT_READ, 'command')",
    'while True:',
    '    for key, _ in sel.select():',
    "        if key.data == 'accept':",
    '            serve_queued()',
    '        else:',
    '            sys.stdin.readline()',
    '            serve_queued()',
    '            s.close()',
    '            sys.exit(0)',
  ].join('\n');
  const child = spawn('python3', ['-c', script], { stdio: ['pipe', 'pipe', 'inherit'] });
  const actualPort = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`killable backend exited with ${code} before listening`)));
    child.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    port: actualPort,
    address: `127.0.0.1:${actualPort}`,
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.stdin.write('die\n');
      await exited;
    },
  };
}
