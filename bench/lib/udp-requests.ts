/**
 * UDP request/reply against an echo service through a proxy: `clients` closed loops, each
 * sending a datagram carrying its sequence number and waiting for that number to come back.
 * A client's socket is replaced after `perSocket` replies, so the proxy sees a stream of new
 * source ports (new sessions, new backend sockets) as well as long-lived ones. A reply not
 * back within `lossTimeoutMs` is counted lost and the client sends the next request.
 */
import dgram from 'node:dgram';

export interface UdpRequestsOptions {
  readonly port: number;
  /** Replies to collect in all. */
  readonly count: number;
  readonly clients: number;
  readonly perSocket: number;
  readonly size: number;
  readonly lossTimeoutMs: number;
  /** Called after every reply with the number of replies so far. */
  readonly onReply?: (replies: number) => void;
  /** Polled while running: true ends the run early (a time bound). */
  readonly stop?: () => boolean;
}

export interface UdpRequestsResult {
  readonly replies: number;
  readonly lost: number;
  /** Client sockets used (each one a session in the proxy). */
  readonly sockets: number;
}

export async function udpRequests(options: UdpRequestsOptions): Promise<UdpRequestsResult> {
  let replies = 0;
  let lost = 0;
  let sockets = 0;
  let sent = 0;
  // Every request sent and not lost gets a reply: this sends exactly `count` answered ones.
  const wanted = (): boolean => sent - lost < options.count && options.stop?.() !== true;

  const lane = (): Promise<void> =>
    new Promise((resolve) => {
      const payload = Buffer.alloc(Math.max(8, options.size), 0x61);
      let socket: dgram.Socket | undefined;
      let seq = 0;
      let used = 0;
      let timer: NodeJS.Timeout | undefined;

      const finish = (): void => {
        clearTimeout(timer);
        const last = socket;
        socket = undefined;
        if (last === undefined) resolve();
        else last.close(() => resolve());
      };
      const send = (): void => {
        if (socket === undefined || !wanted()) {
          finish();
          return;
        }
        sent++;
        seq++;
        payload.writeUInt32BE(seq, 0);
        socket.send(payload, options.port, '127.0.0.1');
        timer = setTimeout(() => {
          lost++;
          send();
        }, options.lossTimeoutMs);
      };
      const open = (): void => {
        const next = dgram.createSocket('udp4');
        sockets++;
        used = 0;
        next.on('error', () => undefined);
        next.on('message', (reply: Buffer) => {
          if (reply.length < 4 || reply.readUInt32BE(0) !== seq) return;
          clearTimeout(timer);
          replies++;
          options.onReply?.(replies);
          if (++used < options.perSocket) {
            send();
            return;
          }
          // A fresh source port: the proxy sees a new session; the old one idles out there.
          next.close();
          open();
        });
        next.bind(0, '127.0.0.1', () => {
          socket = next;
          send();
        });
      };
      open();
    });

  await Promise.all(Array.from({ length: options.clients }, lane));
  return { replies, lost, sockets };
}
