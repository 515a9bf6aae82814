/**
 * A small authoritative DNS server on 127.0.0.1 (UDP and TCP on one port) whose answers a
 * test scripts: records, an rcode (SERVFAIL, REFUSED), silence (timeouts), or forced
 * truncation. Over UDP it truncates like a real server: an answer larger than the client's
 * EDNS size (512 without EDNS) goes out empty with TC set, so the client must retry over TCP.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import type { Answer, DecodedPacket, Question } from 'dns-packet';

export interface ScriptedAnswer {
  readonly rcode?: 'NOERROR' | 'NXDOMAIN' | 'SERVFAIL' | 'REFUSED';
  readonly answers?: readonly Answer[];
  readonly additionals?: readonly Answer[];
  readonly authorities?: readonly Answer[];
  /** Send nothing back: the client times out. */
  readonly silent?: boolean;
  /** Over UDP, answer with TC and no records whatever the size. */
  readonly truncate?: boolean;
  /** Over UDP, first send this answer under another id (a forged or stale reply). */
  readonly forgedFirst?: readonly Answer[];
}

export interface TestDnsServer {
  readonly port: number;
  readonly address: string;
  /** Questions received, `udp SRV _api._tcp.example` style, in order. */
  readonly log: string[];
  answer: (question: Question) => ScriptedAnswer;
  close(): Promise<void>;
}

const RCODE_BITS: Record<NonNullable<ScriptedAnswer['rcode']>, number> = { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3, REFUSED: 5 };

export async function startDnsServer(answer: (question: Question) => ScriptedAnswer): Promise<TestDnsServer> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await listen(answer);
    } catch (error) {
      // The UDP port the kernel picked may be taken for TCP; pick again.
      if (attempt >= 10 || (error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error;
    }
  }
}

async function listen(initial: (question: Question) => ScriptedAnswer): Promise<TestDnsServer> {
  const udp = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve));
  const port = udp.address().port;
  const tcp = net.createServer();
  const connections = new Set<net.Socket>();
  try {
    await new Promise<void>((resolve, reject) => {
      tcp.once('error', reject);
      tcp.listen(port, '127.0.0.1', resolve);
    });
  } catch (error) {
    udp.close();
    throw error;
  }
  const server: TestDnsServer = {
    port,
    address: `127.0.0.1:${port}`,
    log: [],
    answer: initial,
    close: async () => {
      for (const socket of connections) socket.destroy();
      await Promise.all([new Promise<void>((resolve) => udp.close(() => resolve())), new Promise<void>((resolve) => tcp.close(() => resolve()))]);
    },
  };
  udp.on('message', (data, from) => {
    const forged = forge(server, data);
    if (forged !== undefined) udp.send(forged, from.port, from.address);
    const reply = respond(server, data, 'udp');
    if (reply !== undefined) udp.send(reply, from.port, from.address);
  });
  tcp.on('connection', (socket) => {
    connections.add(socket);
    socket.on('close', () => connections.delete(socket));
    socket.on('error', () => socket.destroy());
    let buffered = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
        const message = buffered.subarray(2, 2 + buffered.readUInt16BE(0));
        buffered = buffered.subarray(2 + message.length);
        const reply = respond(server, message, 'tcp');
        if (reply === undefined) continue;
        const length = Buffer.alloc(2);
        length.writeUInt16BE(reply.length);
        socket.write(Buffer.concat([length, reply]));
      }
    });
  });
  return server;
}

function respond(server: TestDnsServer, data: Buffer, transport: 'udp' | 'tcp'): Buffer | undefined {
  const query = dnsPacket.decode(data);
  const question = query.questions?.[0];
  if (question === undefined) return undefined;
  server.log.push(`${transport} ${question.type} ${question.name}`);
  const scripted = server.answer(question);
  if (scripted.silent === true) return undefined;
  const header = { type: 'response' as const, id: query.id ?? 0, flags: dnsPacket.AUTHORITATIVE_ANSWER | RCODE_BITS[scripted.rcode ?? 'NOERROR'], questions: [question] };
  const full = dnsPacket.encode({ ...header, answers: [...(scripted.answers ?? [])], additionals: [...(scripted.additionals ?? [])], authorities: [...(scripted.authorities ?? [])] });
  if (full.length > 65_535) throw new Error(`a scripted answer of ${full.length} bytes does not fit one DNS message`);
  if (transport === 'tcp') return full;
  if (scripted.truncate === true || full.length > udpLimit(query)) return dnsPacket.encode({ ...header, flags: header.flags | dnsPacket.TRUNCATED_RESPONSE });
  return full;
}

function forge(server: TestDnsServer, data: Buffer): Buffer | undefined {
  const query = dnsPacket.decode(data);
  const question = query.questions?.[0];
  const answers = question === undefined ? undefined : server.answer(question).forgedFirst;
  if (question === undefined || answers === undefined) return undefined;
  return dnsPacket.encode({ type: 'response', id: ((query.id ?? 0) + 1) % 65_536, flags: 0, questions: [question], answers: [...answers] });
}

function udpLimit(query: DecodedPacket): number {
  const opt = query.additionals?.find((record) => record.type === 'OPT');
  return opt === undefined ? 512 : Math.max(512, opt.udpPayloadSize);
}
