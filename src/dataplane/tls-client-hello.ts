/**
 * Reads the server name (SNI) from the first bytes a TLS client sends, without terminating
 * TLS: the bytes are only looked at, and the caller forwards them untouched.
 *
 * The input is the raw byte stream so far: TLS records (5-byte header, at most 16 KiB of
 * body each) carrying the ClientHello handshake message, which may be split over several
 * records and arrive over several TCP segments. The parser is a pure function of those
 * bytes: complete (with the server name, or undefined when the client sent none), need-more
 * (with how many bytes to wait for: the end of the record in progress), or invalid.
 *
 * Bounds: a ClientHello larger than MAX_CLIENT_HELLO_BYTES, or spread over more than
 * MAX_CLIENT_HELLO_RECORDS records, is invalid, so a peer cannot make Sluice buffer more than
 * MAX_CLIENT_HELLO_STREAM_BYTES before it decides. Every length field
 * is checked against the bytes that contain it before it is followed.
 *
 * Invalid (the connection is closed): a first record that is not a handshake record of TLS
 * 1.0-1.3 framing (e.g. plain HTTP, SSLv2), a first handshake message that is not a
 * ClientHello, any length that overruns its container, a duplicated server_name extension,
 * or a host name that is not letters, digits, `-`, `_` and dots.
 */
import { invalid, needMore, type ParseResult } from './parse-result.ts';

export interface ClientHello {
  /** Lower case, without a trailing dot; undefined when the client sent no host name. */
  readonly serverName: string | undefined;
}

/** Handshake header + body. Envoy's TLS inspector uses the same bound. */
export const MAX_CLIENT_HELLO_BYTES = 64 * 1024;
/**
 * Records the ClientHello may be spread over. Real clients use one; without a cap, 1-byte
 * records would let record headers grow the buffered bytes five-fold past the hello bound.
 */
export const MAX_CLIENT_HELLO_RECORDS = 64;
/** The most bytes the parser ever asks to see: the hello, its record headers, and the rest of its last record. */
export const MAX_CLIENT_HELLO_STREAM_BYTES = MAX_CLIENT_HELLO_BYTES + MAX_CLIENT_HELLO_RECORDS * 5 + 16 * 1024;

const RECORD_HEADER_BYTES = 5;
const MAX_RECORD_BODY = 16 * 1024;
const CONTENT_HANDSHAKE = 22;
const HANDSHAKE_CLIENT_HELLO = 1;
const HANDSHAKE_HEADER_BYTES = 4;
/** version + random + session id length + 2-byte cipher suite list + compression list. */
const MIN_CLIENT_HELLO_BODY = 2 + 32 + 1 + 2 + 2 + 1 + 1;
const EXTENSION_SERVER_NAME = 0;
const NAME_TYPE_HOST = 0;
const MAX_HOST_NAME_BYTES = 255;

export function parseClientHello(bytes: Uint8Array): ParseResult<ClientHello> {
  // Pass 1: walk the records until the handshake header says how long the hello is and
  // the records here hold all of it.
  let at = 0;
  let helloLength = -1; // handshake body length, once its 4-byte header is here
  let handshakeBytes = 0; // handshake bytes in the records before the one at `at`
  for (let records = 1; ; records++) {
    if (records > MAX_CLIENT_HELLO_RECORDS) return invalid('ClientHello spread over more than 64 records');
    const header = checkRecordHeader(bytes, at);
    if (header !== undefined) return header;
    const bodyLength = ((bytes[at + 3] ?? 0) << 8) | (bytes[at + 4] ?? 0);
    const bodyStart = at + RECORD_HEADER_BYTES;
    const recordEnd = bodyStart + bodyLength;
    if (helloLength < 0) {
      // The 4-byte handshake header may itself straddle records; check what is here early.
      const available = Math.min(bytes.length, recordEnd) - bodyStart;
      const early = checkHandshakeHeader(bytes, at, handshakeBytes, available);
      if (early !== undefined) return early;
      if (handshakeBytes + available >= HANDSHAKE_HEADER_BYTES) {
        helloLength = (handshakeByte(bytes, 1) << 16) | (handshakeByte(bytes, 2) << 8) | handshakeByte(bytes, 3);
      }
    }
    // Records are whole units (a client always sends all of one), so wait for its end.
    if (bytes.length < recordEnd) return needMore(recordEnd);
    if (helloLength >= 0 && handshakeBytes + bodyLength >= HANDSHAKE_HEADER_BYTES + helloLength) {
      return parseBody(gatherBody(bytes, records, helloLength), recordEnd);
    }
    handshakeBytes += bodyLength;
    at = recordEnd;
  }
}

/** undefined when the 5-byte record header at `at` is acceptable (or not all here yet: need-more). */
function checkRecordHeader(bytes: Uint8Array, at: number): ParseResult<ClientHello> | undefined {
  const have = bytes.length - at;
  if (have >= 1 && bytes[at] !== CONTENT_HANDSHAKE) return invalid('not a TLS handshake record');
  if (have >= 2 && bytes[at + 1] !== 3) return invalid('unsupported TLS record version');
  if (have >= 3 && (bytes[at + 2] ?? 0) > 4) return invalid('unsupported TLS record version');
  if (have < RECORD_HEADER_BYTES) return needMore(at + RECORD_HEADER_BYTES);
  const bodyLength = ((bytes[at + 3] ?? 0) << 8) | (bytes[at + 4] ?? 0);
  if (bodyLength === 0 || bodyLength > MAX_RECORD_BODY) return invalid('TLS record length out of range');
  return undefined;
}

/**
 * Validate whatever part of the handshake header is here: its type must be ClientHello and
 * its length within bounds. `before` handshake bytes precede this record's body.
 */
function checkHandshakeHeader(bytes: Uint8Array, at: number, before: number, available: number): ParseResult<ClientHello> | undefined {
  const haveAfter = before + available;
  if (before === 0 && available >= 1 && bytes[at + RECORD_HEADER_BYTES] !== HANDSHAKE_CLIENT_HELLO) {
    return invalid('first handshake message is not a ClientHello');
  }
  if (haveAfter >= HANDSHAKE_HEADER_BYTES) {
    const length = (handshakeByte(bytes, 1) << 16) | (handshakeByte(bytes, 2) << 8) | handshakeByte(bytes, 3);
    if (length < MIN_CLIENT_HELLO_BODY) return invalid('ClientHello too short');
    if (length + HANDSHAKE_HEADER_BYTES > MAX_CLIENT_HELLO_BYTES) return invalid('ClientHello larger than 64 KiB');
  }
  return undefined;
}

/**
 * Byte `k` of the handshake stream (record bodies concatenated), for k < 4: walks record
 * headers from the start. Only used for the 4-byte handshake header, which may straddle
 * records, so the walk is at most 4 records long.
 */
function handshakeByte(bytes: Uint8Array, k: number): number {
  let at = 0;
  let skipped = 0;
  for (;;) {
    const bodyLength = ((bytes[at + 3] ?? 0) << 8) | (bytes[at + 4] ?? 0);
    if (k - skipped < bodyLength) return bytes[at + RECORD_HEADER_BYTES + (k - skipped)] ?? 0;
    skipped += bodyLength;
    at += RECORD_HEADER_BYTES + bodyLength;
  }
}

/** The ClientHello body (after its 4-byte header) as one contiguous array. */
function gatherBody(bytes: Uint8Array, records: number, helloLength: number): Uint8Array {
  const firstBody = ((bytes[3] ?? 0) << 8) | (bytes[4] ?? 0);
  if (records === 1 || firstBody >= HANDSHAKE_HEADER_BYTES + helloLength) {
    return bytes.subarray(RECORD_HEADER_BYTES + HANDSHAKE_HEADER_BYTES, RECORD_HEADER_BYTES + HANDSHAKE_HEADER_BYTES + helloLength);
  }
  const body = new Uint8Array(helloLength);
  let at = 0;
  let handshakeOffset = 0; // offset in the handshake stream of this record's first body byte
  let written = 0;
  while (written < helloLength) {
    const bodyLength = ((bytes[at + 3] ?? 0) << 8) | (bytes[at + 4] ?? 0);
    const bodyStart = at + RECORD_HEADER_BYTES;
    // Skip the handshake header bytes that fall in this record.
    const skip = Math.max(0, HANDSHAKE_HEADER_BYTES - handshakeOffset);
    if (skip < bodyLength) {
      const take = Math.min(bodyLength - skip, helloLength - written);
      body.set(bytes.subarray(bodyStart + skip, bodyStart + skip + take), written);
      written += take;
    }
    handshakeOffset += bodyLength;
    at = bodyStart + bodyLength;
  }
  return body;
}

function u16(b: Uint8Array, at: number): number {
  return ((b[at] ?? 0) << 8) | (b[at + 1] ?? 0);
}

function parseBody(body: Uint8Array, consumed: number): ParseResult<ClientHello> {
  const end = body.length;
  if (body[0] !== 3) return invalid('unsupported ClientHello version');
  let p = 2 + 32;
  const sessionId = body[p] ?? 0;
  if (sessionId > 32) return invalid('ClientHello session id longer than 32 bytes');
  p += 1 + sessionId;
  if (p + 2 > end) return invalid('ClientHello truncated');
  const cipherSuites = u16(body, p);
  if (cipherSuites < 2 || cipherSuites % 2 !== 0) return invalid('ClientHello cipher suite list malformed');
  p += 2 + cipherSuites;
  if (p + 1 > end) return invalid('ClientHello truncated');
  const compression = body[p] ?? 0;
  if (compression < 1) return invalid('ClientHello compression list empty');
  p += 1 + compression;
  if (p > end) return invalid('ClientHello truncated');
  if (p === end) return { kind: 'complete', consumed, value: { serverName: undefined } };
  if (p + 2 > end) return invalid('ClientHello extensions truncated');
  const extensionsEnd = p + 2 + u16(body, p);
  if (extensionsEnd !== end) return invalid('ClientHello extensions length does not match');
  p += 2;
  let serverName: string | undefined;
  let sawServerName = false;
  while (p < end) {
    if (end - p < 4) return invalid('ClientHello extension truncated');
    const type = u16(body, p);
    const length = u16(body, p + 2);
    p += 4;
    if (p + length > end) return invalid('ClientHello extension truncated');
    if (type === EXTENSION_SERVER_NAME) {
      if (sawServerName) return invalid('ClientHello has two server_name extensions');
      sawServerName = true;
      const name = readServerName(body, p, p + length);
      if (name === null) return invalid('ClientHello server_name malformed');
      serverName = name;
    }
    p += length;
  }
  return { kind: 'complete', consumed, value: { serverName } };
}

/** The first host_name of a server_name extension body; undefined if none; null if malformed. */
function readServerName(body: Uint8Array, start: number, end: number): string | undefined | null {
  if (end - start < 2) return null;
  const listEnd = start + 2 + u16(body, start);
  if (listEnd !== end || listEnd === start + 2) return null;
  let p = start + 2;
  let found: string | undefined;
  while (p < listEnd) {
    if (listEnd - p < 3) return null;
    const nameType = body[p] ?? 0;
    const length = u16(body, p + 1);
    p += 3;
    if (p + length > listEnd) return null;
    if (nameType === NAME_TYPE_HOST && found === undefined) {
      const name = hostName(body, p, p + length);
      if (name === undefined) return null;
      found = name;
    }
    p += length;
  }
  return found;
}

/** Letters, digits, `-`, `_`, non-empty dot-separated labels; lower-cased, one trailing dot dropped. */
function hostName(body: Uint8Array, start: number, end: number): string | undefined {
  if (end > start && body[end - 1] === 0x2e) end--;
  const length = end - start;
  if (length < 1 || length > MAX_HOST_NAME_BYTES) return undefined;
  let previous = 0x2e; // a leading dot is an empty label
  for (let i = start; i < end; i++) {
    const c = body[i] ?? 0;
    const ok = (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x5f || c === 0x2e;
    if (!ok || (c === 0x2e && previous === 0x2e)) return undefined;
    previous = c;
  }
  return Buffer.from(body.buffer, body.byteOffset + start, length).toString('latin1').toLowerCase();
}
