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

/** Run `count` round trips of `hi` with at most `concurrency` in flight; returns the replies. */
export async function manyRoundTrips(port: number, count: number, concurrency: number): Promise<string[]> {
  const replies: string[] = [];
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < count) {
      next++;
      replies.push((await roundTrip(port, Buffer.from('hi'))).toString());
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  return replies;
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
  // A connection the proxy closes fails the exchange at once, not at its timeout.
  socket.on('error', () => waiter?.());
  socket.on('close', () => waiter?.());
  return {
    socket,
    exchange: (text, timeoutMs = 10_000) =>
      new Promise((resolve, reject) => {
        buffered = '';
        if (socket.destroyed) {
          reject(new Error(`connection closed before the echo of "${text}"`));
          return;
        }
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

/** Connect, send nothing, and collect what arrives until the other side ends. */
export function readAll(port: number, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no end within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.on('end', () => {
      clearTimeout(timer);
      socket.end();
      resolve(Buffer.concat(chunks).toString());
    });
  });
}

/** A running client loop (see clientLoop). */
export interface ClientLoop {
  /** Resolves once `n` more round trips (successful or failed) have finished from now. */
  after(n: number): Promise<void>;
  stop(): Promise<{ ok: number; failed: string[] }>;
}

/**
 * Keep `concurrency` request/response connections going until stopped; counts successes
 * and failures (with their error messages) so a test can assert none failed. A test that
 * needs traffic flowing across a change waits for `after(n)` round trips before and after
 * it, not for a span of time.
 */
export function clientLoop(port: number, concurrency: number): ClientLoop {
  let running = true;
  let ok = 0;
  const failed: string[] = [];
  const waiters = new Set<{ target: number; resolve: () => void }>();
  const finished = (): void => {
    for (const waiter of waiters) {
      if (ok + failed.length < waiter.target) continue;
      waiters.delete(waiter);
      waiter.resolve();
    }
  };
  const lane = async (): Promise<void> => {
    while (running) {
      try {
        const reply = await roundTrip(port, Buffer.from('ping'), 10_000);
        if (reply.length === 0) failed.push('empty reply');
        else ok++;
      } catch (error) {
        failed.push((error as Error).message);
      }
      finished();
    }
  };
  const lanes = Array.from({ length: concurrency }, lane);
  return {
    after: async (n) =>
      new Promise((resolve) => {
        waiters.add({ target: ok + failed.length + n, resolve });
      }),
    stop: async () => {
      running = false;
      await Promise.all(lanes);
      // A waiter left over would keep a test's promise pending for ever; release it.
      for (const waiter of waiters) waiter.resolve();
      waiters.clear();
      return { ok, failed };
    },
  };
}

/**
 * One HTTP/1.1 keep-alive connection held open through the balancer, to send requests on
 * the same TCP connection over time. Only what the test backends answer is understood
 * (a Content-Length body).
 */
export class HeldHttpConnection {
  readonly socket: net.Socket;
  private buffer = Buffer.alloc(0);
  private waiter: (() => void) | undefined;
  closed = false;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      this.waiter?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.waiter?.();
    });
    socket.on('error', () => undefined);
  }

  static async open(port: number): Promise<HeldHttpConnection> {
    return new HeldHttpConnection(await connect(port));
  }

  /** GET `path`; resolves with the body, rejects if the connection closes first. */
  async get(path: string, timeoutMs = 10_000): Promise<string> {
    this.socket.write(`GET ${path} HTTP/1.1\r\nHost: test\r\n\r\n`);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const body = this.takeResponse();
      if (body !== undefined) return body;
      if (this.closed) throw new Error('connection closed before the response');
      if (Date.now() > deadline) throw new Error(`no response within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 100);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = undefined;
    }
  }

  close(): void {
    this.socket.destroy();
  }

  private takeResponse(): string | undefined {
    const end = this.buffer.indexOf('\r\n\r\n');
    if (end < 0) return undefined;
    const head = this.buffer.subarray(0, end).toString();
    const length = Number(/content-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
    if (this.buffer.length < end + 4 + length) return undefined;
    const body = this.buffer.subarray(end + 4, end + 4 + length).toString();
    this.buffer = this.buffer.subarray(end + 4 + length);
    return body;
  }
}

/**
 * Reads until `done` accepts the value and returns that value. Throws when `timeoutMs`
 * passes first, with the last value read, so a test that waits on a condition fails when the
 * condition never held, whether or not it checks the value afterwards.
 */
export async function eventually<T>(read: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 10_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`eventually: not done within ${timeoutMs} ms; last value: ${preview(value)}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

function preview(value: unknown): string {
  try {
    const text = JSON.stringify(value) as string | undefined; // undefined for undefined and functions
    return (text ?? String(value)).slice(0, 500);
  } catch {
    return String(value);
  }
}
