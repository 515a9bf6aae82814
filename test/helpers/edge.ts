/**
 * Helpers for the edge tests: clients that appear as distinct IPs (127.0.0.N), probes that
 * tell a served connection from a refused one, a backend that records the first bytes it
 * gets (to read PROXY headers), and the admin API's listener counters.
 */
import net from 'node:net';
import { getJson } from './client.ts';

export type ProbeResult = 'served' | 'refused';

/**
 * Connect from `localAddress`, write a byte, and wait for its echo (served) or for the
 * connection to close without one (refused: Sluice closes refused clients at once).
 */
export function probe(port: number, localAddress: string, timeoutMs = 10_000): Promise<ProbeResult> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`probe from ${localAddress}: neither echo nor close within ${timeoutMs} ms`));
    }, timeoutMs);
    const done = (result: ProbeResult): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    socket.on('connect', () => socket.write('x'));
    socket.on('data', () => done('served'));
    socket.on('error', () => done('refused'));
    socket.on('close', () => done('refused'));
  });
}

/** An established, served connection from `localAddress` (its echo came back). */
export async function holdServed(port: number, localAddress: string): Promise<net.Socket> {
  const socket = net.connect({ port, host: '127.0.0.1', localAddress });
  socket.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => socket.write('x'));
    socket.once('data', () => resolve());
    socket.once('close', () => reject(new Error(`held connection from ${localAddress} was refused`)));
  });
  return socket;
}

export async function closeAll(sockets: readonly net.Socket[]): Promise<void> {
  await Promise.all(
    sockets.map(
      async (socket) =>
        new Promise<void>((resolve) => {
          if (socket.destroyed) {
            resolve();
            return;
          }
          socket.once('close', () => resolve());
          socket.destroy();
        }),
    ),
  );
}

export interface ListenerJson {
  name: string;
  cluster: string | null;
  accepted_total: number;
  refused_total: Record<string, number>;
  limits_table_full_total: number;
  acl: { allow: string[]; deny: string[] };
}

export async function listenerStats(adminUrl: string, name: string): Promise<ListenerJson> {
  return getJson<ListenerJson>(`${adminUrl}/listeners/${name}`);
}

export interface RecordingBackend {
  readonly port: number;
  readonly address: string;
  /** What each connection sent, once it sent at least `expectBytes` or ended. */
  readonly received: Buffer[];
  accepted: number;
  close(): Promise<void>;
}

/**
 * A backend that answers each connection with "ok" once it has `expectBytes` bytes (or the
 * client ended), keeping those bytes for the test to read.
 */
export async function startRecordingBackend(expectBytes: number): Promise<RecordingBackend> {
  const open = new Set<net.Socket>();
  const backend: RecordingBackend = {
    port: 0,
    address: '',
    received: [],
    accepted: 0,
    close: async () => {
      for (const socket of open) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    backend.accepted++;
    open.add(socket);
    socket.on('close', () => open.delete(socket));
    socket.on('error', () => undefined);
    let bytes = Buffer.alloc(0);
    let answered = false;
    const answer = (): void => {
      if (answered) return;
      answered = true;
      backend.received.push(bytes);
      socket.end('ok');
    };
    socket.on('data', (chunk: Buffer) => {
      bytes = Buffer.concat([bytes, chunk]);
      if (bytes.length >= expectBytes) answer();
    });
    socket.on('end', answer);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return Object.assign(backend, { port, address: `127.0.0.1:${port}` });
}

/** Send `bytes` from `localAddress` and half-close, then collect the answer until the other side closes. */
export function exchange(port: number, localAddress: string, bytes: Buffer, timeoutMs = 10_000): Promise<{ reply: Buffer; localPort: number }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress, allowHalfOpen: true });
    const chunks: Buffer[] = [];
    let localPort = 0;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no close within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on('connect', () => {
      localPort = socket.localPort ?? 0;
      socket.end(bytes);
    });
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ reply: Buffer.concat(chunks), localPort });
    });
  });
}
