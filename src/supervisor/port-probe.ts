/**
 * Is a listener's address already taken by someone else? The data-plane workers bind with
 * SO_REUSEPORT, and the kernel lets any other socket of the same user that also set it bind
 * the very same address: a second Sluice started by mistake would silently take a share of
 * the first one's connections instead of failing. So before a listener is opened (at start,
 * and for a listener a reload adds or moves), the supervisor binds the address once itself
 * without SO_REUSEPORT, which fails on any socket already there, and closes it at once.
 * A takeover (`run --takeover`) skips this: sharing the port with the old process is its
 * point.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { formatHostPort } from '../shared/address.ts';
import type { ListenerBinding } from '../shared/messages.ts';
import type { ListenFailure } from './data-plane-pool.ts';

/** The supervisor's own probe, not a worker's bind: reported with this worker number. */
const SUPERVISOR = -1;

/** The failures of the listeners whose address someone else already holds. */
export async function probeListenAddresses(bindings: readonly ListenerBinding[]): Promise<ListenFailure[]> {
  const outcomes = await Promise.all(bindings.map(async (binding) => probe(binding)));
  return outcomes.filter((failure): failure is ListenFailure => failure !== undefined);
}

function probe(binding: ListenerBinding): Promise<ListenFailure | undefined> {
  // Port 0 asks the kernel for a free port: nothing there to find.
  if (binding.port === 0) return Promise.resolve(undefined);
  return binding.protocol === 'udp' ? probeUdp(binding) : probeTcp(binding);
}

function failure(binding: ListenerBinding, error: NodeJS.ErrnoException): ListenFailure {
  return {
    worker: SUPERVISOR,
    listener: binding.name,
    address: `${formatHostPort(binding.host, binding.port)}${binding.protocol === 'udp' ? ' (udp)' : ''}`,
    code: error.code ?? 'UNKNOWN',
    message: error.message,
  };
}

function probeTcp(binding: ListenerBinding): Promise<ListenFailure | undefined> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', (error: NodeJS.ErrnoException) => {
      resolve(failure(binding, error));
    });
    server.listen({ host: binding.host, port: binding.port, exclusive: true }, () => {
      server.close(() => resolve(undefined));
    });
  });
}

function probeUdp(binding: ListenerBinding): Promise<ListenFailure | undefined> {
  return new Promise((resolve) => {
    const socket = dgram.createSocket({ type: net.isIPv6(binding.host) ? 'udp6' : 'udp4', reuseAddr: false });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      socket.close(() => resolve(failure(binding, error)));
    });
    socket.bind({ address: binding.host, port: binding.port, exclusive: true }, () => {
      socket.close(() => resolve(undefined));
    });
  });
}
