/**
 * TLS ClientHello bytes for tests: built field by field (so a test can break exactly one
 * field), or captured from a real node:tls client.
 */
import net from 'node:net';
import tls from 'node:tls';

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

function u24(n: number): Buffer {
  return Buffer.from([(n >> 16) & 255, (n >> 8) & 255, n & 255]);
}

export function extension(type: number, data: Buffer): Buffer {
  return Buffer.concat([u16(type), u16(data.length), data]);
}

/** A server_name extension listing `names` as [name_type, name] pairs. */
export function serverNameExtension(names: readonly (readonly [number, string])[]): Buffer {
  const entries = Buffer.concat(names.map(([type, name]) => Buffer.concat([Buffer.from([type]), u16(name.length), Buffer.from(name, 'latin1')])));
  return extension(0, Buffer.concat([u16(entries.length), entries]));
}

export interface HelloOptions {
  readonly serverName?: string;
  /** Extensions in order; default: server_name (when given) then supported_versions. */
  readonly extensions?: readonly Buffer[];
  /** No extensions block at all (a TLS 1.0-era hello). */
  readonly noExtensions?: boolean;
  readonly sessionIdLength?: number;
  readonly cipherSuites?: number;
}

/** The ClientHello handshake body (after the 4-byte handshake header). */
export function clientHelloBody(options: HelloOptions = {}): Buffer {
  const sessionId = options.sessionIdLength ?? 32;
  const ciphers = options.cipherSuites ?? 3;
  const fixed = Buffer.concat([
    Buffer.from([3, 3]),
    Buffer.alloc(32, 7),
    Buffer.from([sessionId]),
    Buffer.alloc(sessionId, 9),
    u16(ciphers * 2),
    Buffer.alloc(ciphers * 2, 0x13),
    Buffer.from([1, 0]),
  ]);
  if (options.noExtensions === true) return fixed;
  const defaults: Buffer[] = [];
  if (options.serverName !== undefined) defaults.push(serverNameExtension([[0, options.serverName]]));
  defaults.push(extension(43, Buffer.from([2, 3, 4])));
  const extensions = Buffer.concat(options.extensions ?? defaults);
  return Buffer.concat([fixed, u16(extensions.length), extensions]);
}

export function handshakeMessage(body: Buffer, type = 1): Buffer {
  return Buffer.concat([Buffer.from([type]), u24(body.length), body]);
}

/** Frame handshake bytes into records; `sizes` are record body sizes (the rest goes in one last record). */
export function records(handshake: Buffer, sizes: readonly number[] = [], recordVersion = 0x0301): Buffer {
  const out: Buffer[] = [];
  let at = 0;
  const frame = (body: Buffer): void => {
    out.push(Buffer.concat([Buffer.from([22]), u16(recordVersion), u16(body.length), body]));
  };
  for (const size of sizes) {
    if (at >= handshake.length) break;
    frame(handshake.subarray(at, at + size));
    at += size;
  }
  if (at < handshake.length) frame(handshake.subarray(at));
  return Buffer.concat(out);
}

export function clientHello(options: HelloOptions = {}, sizes: readonly number[] = []): Buffer {
  return records(handshakeMessage(clientHelloBody(options)), sizes);
}

/**
 * What a real node:tls client sends first: a plain TCP server on 127.0.0.1 records the bytes
 * until `enough` says they are complete, then both sides are closed.
 */
export async function captureClientHello(servername: string | undefined, enough: (bytes: Buffer) => boolean): Promise<Buffer> {
  const server = net.createServer();
  const captured = new Promise<Buffer>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no ClientHello within 20 s')), 20_000);
    server.once('connection', (socket) => {
      let bytes = Buffer.alloc(0);
      socket.on('data', (chunk: Buffer) => {
        bytes = Buffer.concat([bytes, chunk]);
        if (!enough(bytes)) return;
        clearTimeout(timer);
        socket.destroy();
        resolve(bytes);
      });
      socket.on('error', () => undefined);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  const client = tls.connect({ host: '127.0.0.1', port, ...(servername === undefined ? {} : { servername }), rejectUnauthorized: false });
  client.on('error', () => undefined);
  try {
    return await captured;
  } finally {
    client.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

