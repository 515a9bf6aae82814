/**
 * The PROXY protocol (HAProxy, versions 1 and 2): parse the header a balancer in front of
 * Sluice sends first on a connection, and encode the header Sluice sends to a backend, so
 * each side learns the real client address.
 *
 * The parser is a pure function of the bytes received so far (no socket, no clock): it
 * answers complete (with how many bytes the header took), need-more (with how many bytes to
 * wait for), or invalid. It never reads past a bound: a v1 line is at most 107 bytes (the
 * spec's limit) and a v2 header at most MAX_V2_BYTES, so a peer cannot make Sluice buffer
 * more than that before it decides.
 *
 * What is accepted (spec: haproxy.org/download/2.9/doc/proxy-protocol.txt):
 * - v1: `PROXY TCP4|TCP6 src dst sport dport\r\n` with strict addresses (the family must
 *   match the keyword) and ports 0-65535 without leading zeros; `PROXY UNKNOWN...\r\n`
 *   (anything up to CRLF) means "no address".
 * - v2: the 12-byte signature, version 2, command LOCAL or PROXY; AF_INET / AF_INET6 give
 *   addresses; AF_UNSPEC and AF_UNIX mean "no address" (use the connection's own). TLVs
 *   after the addresses must be well formed, and are otherwise ignored.
 */
import { formatIp, ipFromBytes, ipToBytes, isIpv4Mapped, parseIpInto } from '../shared/ip-address.ts';
import { invalid, needMore, type ParseResult } from './parse-result.ts';

export interface ProxyEndpoint {
  readonly address: string;
  readonly port: number;
  readonly family: 4 | 6;
}

export interface ProxyHeader {
  readonly version: 1 | 2;
  /** `local`: the sender speaks for itself (health checks); no client address is carried. */
  readonly command: 'proxy' | 'local';
  readonly source: ProxyEndpoint | undefined;
  readonly destination: ProxyEndpoint | undefined;
}

/** The spec's maximum v1 line, CRLF included. */
export const MAX_V1_BYTES = 107;
/** Our bound on a v2 header (16 fixed bytes + addresses + TLVs); real senders use < 300. */
export const MAX_V2_BYTES = 2048;

const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V2_FIXED_BYTES = 16;
const CR = 0x0d;
const LF = 0x0a;

/** Which version `bytes` starts like: 1, 2, 0 (neither) or -1 (too short to tell). */
function versionOf(bytes: Uint8Array): 0 | 1 | 2 | -1 {
  if (bytes.length === 0) return -1;
  const signature = bytes[0] === V1_PREFIX[0] ? V1_PREFIX : bytes[0] === V2_SIGNATURE[0] ? V2_SIGNATURE : undefined;
  if (signature === undefined) return 0;
  const n = Math.min(bytes.length, signature.length);
  for (let i = 0; i < n; i++) if (bytes[i] !== signature[i]) return 0;
  if (bytes.length < signature.length) return -1;
  return signature === V1_PREFIX ? 1 : 2;
}

export function parseProxyHeader(bytes: Uint8Array): ParseResult<ProxyHeader> {
  const version = versionOf(bytes);
  // A v2 signature in progress can only complete with the 16-byte fixed part.
  if (version === -1) return needMore(bytes[0] === V2_SIGNATURE[0] ? V2_FIXED_BYTES : bytes.length + 1);
  if (version === 0) return invalid('not a PROXY protocol header');
  return version === 1 ? parseV1(bytes) : parseV2(bytes);
}

// ── version 1 ────────────────────────────────────────────────────────────────

function parseV1(bytes: Uint8Array): ParseResult<ProxyHeader> {
  // The LF may be at index 106 at the latest, so the CR at 105.
  const lastCr = MAX_V1_BYTES - 2;
  const limit = Math.min(bytes.length, lastCr + 1);
  let end = -1;
  for (let i = V1_PREFIX.length; i < limit; i++) {
    const c = bytes[i] ?? 0;
    if (c === CR) {
      if (i + 1 >= bytes.length) return needMore(i + 2);
      if (bytes[i + 1] !== LF) return invalid('v1 header: CR not followed by LF');
      end = i;
      break;
    }
    if (c < 0x20 || c > 0x7e) return invalid('v1 header: a byte that is not printable ASCII');
  }
  if (end === -1) return bytes.length > lastCr ? invalid('v1 header longer than 107 bytes') : needMore(bytes.length + 1);
  const line = Buffer.from(bytes.buffer, bytes.byteOffset + V1_PREFIX.length, end - V1_PREFIX.length).toString('latin1');
  const consumed = end + 2;
  if (line.startsWith('UNKNOWN')) {
    return { kind: 'complete', consumed, value: { version: 1, command: 'proxy', source: undefined, destination: undefined } };
  }
  const fields = line.split(' ');
  if (fields.length !== 5) return invalid('v1 header: expected TCP4|TCP6 and four fields');
  const [protocol, src, dst, sport, dport] = fields as [string, string, string, string, string];
  const family = protocol === 'TCP4' ? 4 : protocol === 'TCP6' ? 6 : 0;
  if (family === 0) return invalid('v1 header: protocol is not TCP4, TCP6 or UNKNOWN');
  const source = v1Endpoint(src, sport, family);
  const destination = v1Endpoint(dst, dport, family);
  if (source === undefined || destination === undefined) return invalid('v1 header: bad address or port');
  return { kind: 'complete', consumed, value: { version: 1, command: 'proxy', source, destination } };
}

const PORT_TEXT = /^(?:0|[1-9]\d{0,4})$/;
const scratch = new Int32Array(4);

function v1Endpoint(address: string, port: string, family: 4 | 6): ProxyEndpoint | undefined {
  if (!PORT_TEXT.test(port) || Number(port) > 65535) return undefined;
  // TCP6 must be written as IPv6 (a mapped IPv4 is fine); TCP4 must be dotted IPv4.
  const written6 = address.includes(':');
  if ((family === 4) === written6) return undefined;
  const parsed = parseIpInto(address, scratch);
  if (parsed === 0) return undefined;
  return { address: formatIp(scratch, parsed), port: Number(port), family: parsed };
}

// ── version 2 ────────────────────────────────────────────────────────────────

const AF_UNSPEC = 0;
const AF_INET = 1;
const AF_INET6 = 2;
const AF_UNIX = 3;
const INET_ADDRESS_BYTES = 12;
const INET6_ADDRESS_BYTES = 36;
const UNIX_ADDRESS_BYTES = 216;

function parseV2(bytes: Uint8Array): ParseResult<ProxyHeader> {
  if (bytes.length < V2_FIXED_BYTES) {
    // Reject a bad version or command as soon as its byte is here.
    if (bytes.length > 12 && !validVersionCommand(bytes[12] ?? 0)) return invalid('v2 header: bad version or command');
    if (bytes.length > 13 && !validFamily(bytes[13] ?? 0)) return invalid('v2 header: bad address family or transport');
    return needMore(V2_FIXED_BYTES);
  }
  const versionCommand = bytes[12] ?? 0;
  const familyByte = bytes[13] ?? 0;
  if (!validVersionCommand(versionCommand)) return invalid('v2 header: bad version or command');
  if (!validFamily(familyByte)) return invalid('v2 header: bad address family or transport');
  const length = ((bytes[14] ?? 0) << 8) | (bytes[15] ?? 0);
  const total = V2_FIXED_BYTES + length;
  if (total > MAX_V2_BYTES) return invalid('v2 header longer than the 2048-byte bound');
  const af = familyByte >> 4;
  const addressBytes = af === AF_INET ? INET_ADDRESS_BYTES : af === AF_INET6 ? INET6_ADDRESS_BYTES : af === AF_UNIX ? UNIX_ADDRESS_BYTES : 0;
  if (length < addressBytes) return invalid('v2 header: length too short for its address family');
  if (bytes.length < total) return needMore(total);
  if (!validTlvs(bytes, V2_FIXED_BYTES + addressBytes, total)) return invalid('v2 header: malformed TLV');
  const local = (versionCommand & 0x0f) === 0;
  if (local || af === AF_UNSPEC || af === AF_UNIX) {
    return { kind: 'complete', consumed: total, value: { version: 2, command: local ? 'local' : 'proxy', source: undefined, destination: undefined } };
  }
  const family = af === AF_INET ? 4 : 6;
  const size = family === 4 ? 4 : 16;
  const ports = V2_FIXED_BYTES + 2 * size;
  const source = v2Endpoint(bytes, V2_FIXED_BYTES, family, ports);
  const destination = v2Endpoint(bytes, V2_FIXED_BYTES + size, family, ports + 2);
  return { kind: 'complete', consumed: total, value: { version: 2, command: 'proxy', source, destination } };
}

function validVersionCommand(byte: number): boolean {
  return byte >> 4 === 2 && (byte & 0x0f) <= 1;
}

function validFamily(byte: number): boolean {
  return byte >> 4 <= AF_UNIX && (byte & 0x0f) <= 2;
}

function validTlvs(bytes: Uint8Array, start: number, end: number): boolean {
  let at = start;
  while (at < end) {
    if (end - at < 3) return false;
    const length = ((bytes[at + 1] ?? 0) << 8) | (bytes[at + 2] ?? 0);
    at += 3 + length;
  }
  return at === end;
}

function v2Endpoint(bytes: Uint8Array, addressAt: number, family: 4 | 6, portAt: number): ProxyEndpoint {
  ipFromBytes(bytes, addressAt, family, scratch);
  const port = ((bytes[portAt] ?? 0) << 8) | (bytes[portAt + 1] ?? 0);
  // An IPv4 client behind an IPv6 sender arrives mapped; it is an IPv4 client.
  const actual = isIpv4Mapped(scratch) ? 4 : family;
  return { address: formatIp(scratch, actual), port, family: actual };
}

// ── encoding (send_proxy) ────────────────────────────────────────────────────

export interface Endpoint {
  readonly address: string;
  readonly port: number;
}

const sourceWords = new Int32Array(4);
const destinationWords = new Int32Array(4);

/**
 * The header a backend gets first. Both ends IPv4 → TCP4 / AF_INET; otherwise both are
 * sent as IPv6 (an IPv4 end in its mapped form). An end that is not an IP address (never
 * the case for a TCP socket, but the type allows it) gives "UNKNOWN" / AF_UNSPEC.
 */
export function encodeProxyHeader(version: 'v1' | 'v2', source: Endpoint, destination: Endpoint): Buffer {
  const sourceFamily = parseIpInto(source.address, sourceWords, { allowZone: true });
  const destinationFamily = parseIpInto(destination.address, destinationWords, { allowZone: true });
  const known = sourceFamily !== 0 && destinationFamily !== 0 && validPort(source.port) && validPort(destination.port);
  const family: 4 | 6 = sourceFamily === 4 && destinationFamily === 4 ? 4 : 6;
  if (version === 'v1') {
    if (!known) return Buffer.from('PROXY UNKNOWN\r\n', 'latin1');
    const keyword = family === 4 ? 'TCP4' : 'TCP6';
    const line = `PROXY ${keyword} ${formatIp(sourceWords, family)} ${formatIp(destinationWords, family)} ${source.port} ${destination.port}\r\n`;
    return Buffer.from(line, 'latin1');
  }
  if (!known) {
    const header = Buffer.alloc(V2_FIXED_BYTES);
    V2_SIGNATURE.copy(header, 0);
    header[12] = 0x21; // version 2, PROXY
    header[13] = 0x00; // AF_UNSPEC
    return header;
  }
  const size = family === 4 ? 4 : 16;
  const length = 2 * size + 4;
  const header = Buffer.alloc(V2_FIXED_BYTES + length);
  V2_SIGNATURE.copy(header, 0);
  header[12] = 0x21; // version 2, PROXY
  header[13] = family === 4 ? 0x11 : 0x21; // AF_INET or AF_INET6, STREAM
  header.writeUInt16BE(length, 14);
  ipToBytes(sourceWords, family, header, V2_FIXED_BYTES);
  ipToBytes(destinationWords, family, header, V2_FIXED_BYTES + size);
  header.writeUInt16BE(source.port, V2_FIXED_BYTES + 2 * size);
  header.writeUInt16BE(destination.port, V2_FIXED_BYTES + 2 * size + 2);
  return header;
}

function validPort(port: number): boolean {
  return Number.isInteger(port) && port >= 0 && port <= 65535;
}
