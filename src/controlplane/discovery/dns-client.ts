/**
 * A stub resolver for discovery: one question to the configured resolvers, over UDP first and
 * over TCP when the answer comes back truncated (RFC 7766), so a 1,000-record SRV set is read
 * whole. Each resolver is tried in turn until one answers; an answer is accepted only from the
 * address queried, with the query's id and question (RFC 5452). Results are classified the
 * way the reconciler needs: NXDOMAIN and NODATA are good (empty) answers; timeout, SERVFAIL,
 * REFUSED, a malformed reply and network errors are errors, so the last set stays.
 */
import { randomInt } from 'node:crypto';
import dgram from 'node:dgram';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import type { Answer, DecodedPacket, Packet } from 'dns-packet';
import { analyzeHostPort, formatHostPort } from '../../shared/address.ts';
import type { HostPort } from '../../shared/address.ts';
import { normalizeName } from './srv.ts';

export type DnsQuestionType = 'A' | 'AAAA' | 'SRV';
export type DnsErrorCode = 'timeout' | 'servfail' | 'refused' | 'malformed' | 'network' | 'no_resolvers';

export type DnsLookup =
  | {
      readonly ok: true;
      readonly nxdomain: boolean;
      readonly answers: readonly Answer[];
      readonly additionals: readonly Answer[];
      /** The negative-caching TTL (RFC 2308) of an empty answer, from its SOA. */
      readonly negativeTtl?: number;
    }
  | { readonly ok: false; readonly code: DnsErrorCode; readonly message: string };

export interface DnsQueryOptions {
  readonly resolvers: readonly HostPort[];
  /** Per resolver and transport, in milliseconds. */
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
}

/** RFC 8020-era advice (DNS flag day 2020): a UDP payload that is not fragmented on the way. */
const EDNS_UDP_SIZE = 1232;
const RCODE_MASK = 0xf;
const RCODES: Record<number, string> = { 0: 'NOERROR', 1: 'FORMERR', 2: 'SERVFAIL', 3: 'NXDOMAIN', 4: 'NOTIMP', 5: 'REFUSED' };

export async function queryDns(name: string, type: DnsQuestionType, options: DnsQueryOptions): Promise<DnsLookup> {
  if (options.resolvers.length === 0) return { ok: false, code: 'no_resolvers', message: 'no resolvers (none configured, none in /etc/resolv.conf)' };
  let last: DnsLookup | undefined;
  for (const resolver of options.resolvers) {
    if (options.signal?.aborted === true) break;
    last = await queryOne(name, type, resolver, options);
    if (last.ok) return last;
  }
  return last ?? { ok: false, code: 'network', message: 'stopped' };
}

async function queryOne(name: string, type: DnsQuestionType, resolver: HostPort, options: DnsQueryOptions): Promise<DnsLookup> {
  const id = randomInt(0, 65_536);
  const query: Packet = {
    type: 'query',
    id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type, name, class: 'IN' }],
    additionals: [{ type: 'OPT', name: '.', udpPayloadSize: EDNS_UDP_SIZE, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }],
  };
  const where = formatHostPort(resolver.host, resolver.port);
  try {
    let reply = await exchangeUdp(dnsPacket.encode(query), id, resolver, options);
    if (reply.flag_tc) reply = await exchangeTcp(dnsPacket.encode(query), id, resolver, options);
    if (!questionMatches(reply, name, type)) return { ok: false, code: 'malformed', message: `${where}: the answer is for another question` };
    return classify(reply, where);
  } catch (error) {
    const failure = describeFailure(error);
    return { ok: false, code: failure.code, message: `${where}: ${failure.message}` };
  }
}

function classify(reply: DecodedPacket, where: string): DnsLookup {
  const rcode = (reply.flags ?? 0) & RCODE_MASK;
  const answers = reply.answers ?? [];
  const additionals = (reply.additionals ?? []).filter((record) => record.type !== 'OPT');
  if (rcode === 0 || rcode === 3) {
    const soa = (reply.authorities ?? []).find((record) => record.type === 'SOA');
    const negativeTtl = soa === undefined ? undefined : Math.min(soa.ttl ?? 0, soa.data.minimum ?? 0);
    const base = { ok: true as const, nxdomain: rcode === 3, answers: rcode === 3 ? [] : answers, additionals };
    return negativeTtl === undefined || answers.length > 0 ? base : { ...base, negativeTtl };
  }
  const text = RCODES[rcode] ?? `rcode ${rcode}`;
  const code: DnsErrorCode = rcode === 2 ? 'servfail' : rcode === 5 ? 'refused' : 'malformed';
  return { ok: false, code, message: `${where}: ${text}` };
}

function questionMatches(reply: DecodedPacket, name: string, type: DnsQuestionType): boolean {
  const question = reply.questions?.[0];
  return question !== undefined && question.type === type && normalizeName(question.name) === normalizeName(name);
}

class DnsFailure extends Error {
  readonly code: DnsErrorCode;
  constructor(code: DnsErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

function describeFailure(error: unknown): { code: DnsErrorCode; message: string } {
  if (error instanceof DnsFailure) return { code: error.code, message: error.message };
  return { code: 'network', message: error instanceof Error ? error.message : String(error) };
}

/**
 * One datagram out, the first reply with our id from the resolver's address back. Replies
 * that fail to decode or carry another id are ignored (a late answer to an earlier query, or
 * a spoofing attempt) and the wait goes on until the timeout.
 */
function exchangeUdp(message: Buffer, id: number, resolver: HostPort, options: DnsQueryOptions): Promise<DecodedPacket> {
  return withTimeout(options, (settle) => {
    const socket = dgram.createSocket(net.isIPv6(resolver.host) ? 'udp6' : 'udp4');
    socket.on('error', (error) => settle.fail(error));
    socket.on('message', (data, from) => {
      if (from.port !== resolver.port || !sameHost(from.address, resolver.host)) return;
      const reply = decode(data);
      if (reply?.id === id && reply.type === 'response') settle.done(reply);
    });
    socket.send(message, resolver.port, resolver.host, (error) => {
      if (error) settle.fail(error);
    });
    return () => socket.close();
  }, 'udp');
}

/** RFC 1035 4.2.2: each message on TCP is prefixed with its length in two bytes. */
function exchangeTcp(message: Buffer, id: number, resolver: HostPort, options: DnsQueryOptions): Promise<DecodedPacket> {
  return withTimeout(options, (settle) => {
    const socket = net.connect({ host: resolver.host, port: resolver.port });
    const chunks: Buffer[] = [];
    let received = 0;
    socket.on('error', (error) => settle.fail(error));
    socket.on('connect', () => {
      const length = Buffer.alloc(2);
      length.writeUInt16BE(message.length);
      socket.end(Buffer.concat([length, message]));
    });
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      received += chunk.length;
      if (received < 2) return;
      const all = chunks.length === 1 ? chunk : Buffer.concat(chunks);
      const size = all.readUInt16BE(0);
      if (received < 2 + size) return;
      const reply = decode(all.subarray(2, 2 + size));
      if (reply?.id !== id) settle.fail(new DnsFailure('malformed', 'tcp: a reply that is not the answer to the query'));
      else settle.done(reply);
    });
    socket.on('end', () => settle.fail(new DnsFailure('malformed', 'tcp: the connection closed before a whole reply')));
    return () => socket.destroy();
  }, 'tcp');
}

interface Settle<T> {
  done(value: T): void;
  fail(error: Error): void;
}

/** Runs one exchange under the timeout and the abort signal; `start` returns its cleanup. */
function withTimeout<T>(options: DnsQueryOptions, start: (settle: Settle<T>) => () => void, transport: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    if (options.signal?.aborted === true) {
      reject(new DnsFailure('network', 'stopped'));
      return;
    }
    let finished = false;
    const finish = (outcome: () => void): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      // Sockets report only asynchronously, so `cleanup` is set before any of them can finish.
      cleanup();
      outcome();
    };
    const onAbort = (): void => finish(() => reject(new DnsFailure('network', 'stopped')));
    const timer = setTimeout(() => finish(() => reject(new DnsFailure('timeout', `${transport}: no answer within ${options.timeoutMs} ms`))), options.timeoutMs);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const cleanup = start({ done: (value) => finish(() => resolve(value)), fail: (error) => finish(() => reject(error)) });
  });
}

function decode(data: Buffer): DecodedPacket | undefined {
  try {
    return dnsPacket.decode(data);
  } catch {
    return undefined;
  }
}

function sameHost(a: string, b: string): boolean {
  return a === b || a.replace(/^::ffff:/, '') === b.replace(/^::ffff:/, '');
}

/**
 * The `nameserver` lines of a resolv.conf, on port 53. A scoped IPv6 address (`fe80::1%eth0`)
 * is kept with its zone; anything that is not an IP address is skipped, as glibc does.
 */
export function parseResolvConf(text: string): HostPort[] {
  const resolvers: HostPort[] = [];
  for (const line of text.split('\n')) {
    const [keyword, value] = line.trim().split(/\s+/);
    if (keyword !== 'nameserver' || value === undefined) continue;
    if (net.isIP(value.split('%')[0] ?? '') === 0) continue;
    resolvers.push({ host: value, port: 53 });
  }
  return resolvers;
}

export async function systemResolvers(path = '/etc/resolv.conf'): Promise<HostPort[]> {
  try {
    return parseResolvConf(await readFile(path, 'utf8'));
  } catch {
    return [];
  }
}

/** `127.0.0.1:8600` strings from config (checked there) to host and port. */
export function parseResolvers(addresses: readonly string[]): HostPort[] {
  return addresses.flatMap((address) => {
    const analysis = analyzeHostPort(address);
    return analysis.ok ? [{ host: analysis.host, port: analysis.port }] : [];
  });
}
