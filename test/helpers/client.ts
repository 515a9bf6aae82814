import net from 'node:net';

/**
 * Connect, write `payload`, half-close, and collect everything until the other side
 * closes. Rejects on a socket error or when nothing ends within `timeoutMs`.
 */
export function roundTrip(port: number, payload: Buffer, timeoutMs = 30_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no end within ${timeoutMs} ms (received ${Buffer.concat(chunks).length} bytes)`));
    }, timeoutMs);
    socket.on('connect', () => {
      socket.end(payload);
    });
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.on('end', () => {
      clearTimeout(timer);
      socket.end();
      resolve(Buffer.concat(chunks));
    });
  });
}

/** Open a connection and wait until it is established. */
export function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

export async function getJson<T>(url: string): Promise<T> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return (await response.json()) as T;
}

/** A held connection to an echo backend through the proxy: write, then read the echo. */
export interface EchoConnection {
  readonly socket: net.Socket;
  exchange(text: string, timeoutMs?: number): Promise<string>;
}

export async function openEcho(port: number): Promise<EchoConnection> {
  const socket = await connect(port);
  let buffered = '';
  let waiter: (() => void) | undefined;
  socket.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    waiter?.();
  });
  socket.on('error', () => waiter?.());
  return {
    socket,
    exchange: (text, timeoutMs = 5000) =>
      new Promise((resolve, reject) => {
        buffered = '';
        const timer = setTimeout(() => {
          waiter = undefined;
          reject(new Error(`no echo of "${text}" within ${timeoutMs} ms (got "${buffered}")`));
        }, timeoutMs);
        waiter = () => {
          if (socket.destroyed && buffered.length < text.length) {
            clearTimeout(timer);
            waiter = undefined;
            reject(new Error(`connection closed before the echo of "${text}"`));
            return;
          }
          if (buffered.length < text.length) return;
          clearTimeout(timer);
          waiter = undefined;
          resolve(buffered);
        };
        socket.write(text);
      }),
  };
}

/** Resolves with the error code of a connect attempt, or 'connected'. */
export function tryConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
  });
}

/**
 * Keep `concurrency` request/response connections going until stopped; counts successes
 * and failures (with their error messages) so a test can assert none failed.
 */
export function clientLoop(port: number, concurrency: number): { stop: () => Promise<{ ok: number; failed: string[] }> } {
  let running = true;
  let ok = 0;
  const failed: string[] = [];
  const lane = async (): Promise<void> => {
    while (running) {
      try {
        const reply = await roundTrip(port, Buffer.from('ping'), 10_000);
        if (reply.length === 0) failed.push('empty reply');
        else ok++;
      } catch (error) {
        failed.push((error as Error).message);
      }
    }
  };
  const lanes = Array.from({ length: concurrency }, lane);
  return {
    stop: async () => {
      running = false;
      await Promise.all(lanes);
      return { ok, failed };
    },
  };
}
