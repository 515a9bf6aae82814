/**
 * The TCP listening sockets of one data-plane worker. Every worker binds every listener
 * with SO_REUSEPORT, so the kernel spreads new connections over the workers by a hash of
 * the connection's addresses, and one worker dying leaves the others accepting.
 *
 * Measured against the alternative, one listening socket whose fd every worker polls
 * (bench/ab.ts, 2 workers, 12 pairs on a busy 2-core machine): the shared fd accepted
 * ~1.2x the new connections/s at the same CPU per connection and halved keep-alive p99,
 * because an idle worker takes what a descheduled one would have been handed by the hash.
 * It is still not used: Node cannot dup a descriptor, so a worker that crashes (its
 * handles are closed) or closes its server first closes the one socket under every other
 * worker, and a restarted worker would poll whatever the fd number means by then.
 *
 * On the handles data path each server's accepts are offered as stream handles first
 * (`StreamHandler`, stream-handle.ts's acceptStreams): a listener without edge settings
 * takes them, so its clients get no net.Socket; one with edge settings declines, and net
 * makes the socket as before. Listening, SO_REUSEPORT and close stay net.Server's.
 */
import net from 'node:net';
import type { ListenerBinding } from '../shared/messages.ts';
import { formatHostPort } from '../shared/address.ts';
import { acceptStreams, type TcpStream } from './stream-handle.ts';

export type ConnectionHandler = (socket: net.Socket, binding: ListenerBinding) => void;
/** Takes an accepted stream (true), or declines it so it becomes a net.Socket (false). */
export type StreamHandler = (stream: TcpStream, binding: ListenerBinding) => boolean;

export interface ListenFailure {
  readonly listener: string;
  readonly address: string;
  readonly code: string;
  readonly message: string;
}

/** Pending connections the kernel queues per listening socket before refusing. */
const ACCEPT_BACKLOG = 511;

function sameAddress(a: ListenerBinding, b: ListenerBinding): boolean {
  return a.host === b.host && a.port === b.port && a.slot === b.slot;
}

export class ListenerSet {
  private readonly servers = new Map<string, { binding: ListenerBinding; server: net.Server }>();
  private readonly onConnection: ConnectionHandler;
  private readonly onServerError: (binding: ListenerBinding, error: Error) => void;
  private readonly onStream: StreamHandler | undefined;

  /** `onStream`: offer accepts as stream handles first (the handles data path). */
  constructor(onConnection: ConnectionHandler, onServerError: (binding: ListenerBinding, error: Error) => void, onStream?: StreamHandler) {
    this.onConnection = onConnection;
    this.onServerError = onServerError;
    this.onStream = onStream;
  }

  /**
   * Make the open listeners equal `bindings`: open the new ones, stop accepting on the
   * removed ones (their open connections are not touched). Resolves with the failures.
   */
  async apply(bindings: readonly ListenerBinding[]): Promise<ListenFailure[]> {
    const wanted = new Map(bindings.map((b) => [b.name, b]));
    for (const [name, open] of this.servers) {
      const next = wanted.get(name);
      if (next === undefined || !sameAddress(open.binding, next)) this.close(name);
    }
    const opening = bindings.filter((b) => !this.servers.has(b.name)).map(async (b) => this.open(b));
    const results = await Promise.all(opening);
    return results.filter((r): r is ListenFailure => r !== undefined);
  }

  names(): string[] {
    return [...this.servers.keys()];
  }

  closeAll(): void {
    for (const name of [...this.servers.keys()]) this.close(name);
  }

  private close(name: string): void {
    this.servers.get(name)?.server.close();
    this.servers.delete(name);
  }

  private open(binding: ListenerBinding): Promise<ListenFailure | undefined> {
    const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true, noDelay: true });
    server.on('connection', (socket: net.Socket) => {
      this.onConnection(socket, binding);
    });
    return new Promise((resolve) => {
      const onError = (error: NodeJS.ErrnoException): void => {
        resolve({
          listener: binding.name,
          address: formatHostPort(binding.host, binding.port),
          code: error.code ?? 'UNKNOWN',
          message: error.message,
        });
      };
      server.once('error', onError);
      server.listen({ host: binding.host, port: binding.port, reusePort: true, backlog: ACCEPT_BACKLOG }, () => {
        server.removeListener('error', onError);
        server.on('error', (error) => {
          this.onServerError(binding, error);
        });
        const onStream = this.onStream;
        if (onStream !== undefined) {
          const problem = acceptStreams(server, (stream) => onStream(stream, binding));
          if (problem !== undefined) this.onServerError(binding, new Error(`accepting as net.Socket: ${problem}`));
        }
        this.servers.set(binding.name, { binding, server });
        resolve(undefined);
      });
    });
  }
}
