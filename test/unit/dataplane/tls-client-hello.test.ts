import { describe, expect, it } from 'vitest';
import { MAX_CLIENT_HELLO_BYTES, parseClientHello } from '../../../src/dataplane/tls-client-hello.ts';
import {
  captureClientHello,
  clientHello,
  clientHelloBody,
  extension,
  handshakeMessage,
  records,
  serverNameExtension,
} from '../../helpers/tls-hello.ts';

const complete = (bytes: Buffer): boolean => parseClientHello(bytes).kind !== 'need-more';

describe('parseClientHello on what node:tls really sends', () => {
  it('reads the server name of a real ClientHello, in one piece and byte by byte', async () => {
    const bytes = await captureClientHello('api.example.com', complete);
    const parsed = parseClientHello(bytes);
    expect(parsed).toMatchObject({ kind: 'complete', value: { serverName: 'api.example.com' } });
    if (parsed.kind !== 'complete') return;
    expect(parsed.consumed).toBe(bytes.length);
    for (let n = 0; n < bytes.length; n++) expect(parseClientHello(bytes.subarray(0, n)).kind).toBe('need-more');
  });

  it('reads a real ClientHello without SNI as having no server name', async () => {
    const bytes = await captureClientHello(undefined, complete);
    expect(parseClientHello(bytes)).toMatchObject({ kind: 'complete', value: { serverName: undefined } });
  });
});

describe('parseClientHello on built ClientHellos', () => {
  it.each([
    ['a plain name', { serverName: 'api.example.com' }, 'api.example.com'],
    ['an upper-case name, lower-cased', { serverName: 'API.Example.COM' }, 'api.example.com'],
    ['a trailing dot, dropped', { serverName: 'x.example.com.' }, 'x.example.com'],
    ['underscores and digits', { serverName: '_svc-1.example.com' }, '_svc-1.example.com'],
    ['no server_name extension', {}, undefined],
    ['no extensions block at all', { noExtensions: true }, undefined],
    ['an empty session id', { serverName: 'a.b', sessionIdLength: 0 }, 'a.b'],
  ])('reads %s', (_name, options, serverName) => {
    const bytes = clientHello(options);
    expect(parseClientHello(bytes)).toEqual({ kind: 'complete', consumed: bytes.length, value: { serverName } });
  });

  it('takes the host_name entry when other name types come first', () => {
    const ext = serverNameExtension([
      [7, 'ignored'],
      [0, 'web.example.com'],
      [0, 'second.example.com'],
    ]);
    const bytes = clientHello({ extensions: [extension(10, Buffer.from([0, 2, 0, 29])), ext] });
    expect(parseClientHello(bytes)).toMatchObject({ kind: 'complete', value: { serverName: 'web.example.com' } });
  });

  it('reads a ClientHello split over several records, whatever the split', () => {
    const handshake = handshakeMessage(clientHelloBody({ serverName: 'split.example.com' }));
    for (const sizes of [[1], [2], [3], [4], [5], [1, 1, 1, 1], [40, 10], [handshake.length - 1]]) {
      const bytes = records(handshake, sizes);
      expect(parseClientHello(bytes)).toEqual({ kind: 'complete', consumed: bytes.length, value: { serverName: 'split.example.com' } });
      for (let n = 0; n < bytes.length; n++) expect(parseClientHello(bytes.subarray(0, n)).kind).toBe('need-more');
    }
  });

  it('asks for the end of the record in progress', () => {
    const bytes = clientHello({ serverName: 'a.example.com' });
    expect(parseClientHello(bytes.subarray(0, 0))).toEqual({ kind: 'need-more', needed: 5 });
    expect(parseClientHello(bytes.subarray(0, 3))).toEqual({ kind: 'need-more', needed: 5 });
    expect(parseClientHello(bytes.subarray(0, 5))).toEqual({ kind: 'need-more', needed: bytes.length });
    expect(parseClientHello(bytes.subarray(0, 20))).toEqual({ kind: 'need-more', needed: bytes.length });
  });

  it('reports as consumed only the records of the ClientHello, not what follows', () => {
    const hello = clientHello({ serverName: 'a.example.com' });
    const bytes = Buffer.concat([hello, Buffer.from([23, 3, 3, 0, 1, 0])]);
    expect(parseClientHello(bytes)).toMatchObject({ kind: 'complete', consumed: hello.length });
  });

  const body = clientHelloBody({ serverName: 'a.example.com' });
  const withBody = (edit: (b: Buffer) => void): Buffer => {
    const copy = Buffer.from(body);
    edit(copy);
    return records(handshakeMessage(copy));
  };
  // Offsets in the body built with the defaults: session id length at 34, cipher suites at 67.
  it.each([
    ['plain HTTP', Buffer.from('GET / HTTP/1.1\r\n'), 'not a TLS handshake record'],
    ['an SSLv2 hello', Buffer.from([0x80, 0x2e, 0x01, 0x00, 0x02]), 'not a TLS handshake record'],
    ['record version 2.0', Buffer.from([22, 2, 0]), 'unsupported TLS record version'],
    ['record version 3.5', Buffer.from([22, 3, 5]), 'unsupported TLS record version'],
    ['a zero-length record', Buffer.from([22, 3, 1, 0, 0]), 'TLS record length out of range'],
    ['a record over 16 KiB', Buffer.from([22, 3, 1, 0x40, 0x01]), 'TLS record length out of range'],
    ['a ServerHello', records(handshakeMessage(body, 2)), 'first handshake message is not a ClientHello'],
    ['a tiny ClientHello', records(handshakeMessage(Buffer.alloc(10, 3))), 'ClientHello too short'],
    ['a ClientHello over 64 KiB', Buffer.from([22, 3, 1, 0, 4, 1, 0x01, 0x00, 0x00]), 'ClientHello larger than 64 KiB'],
    ['version 2', withBody((b) => (b[0] = 2)), 'unsupported ClientHello version'],
    ['a 33-byte session id', withBody((b) => (b[34] = 33)), 'ClientHello session id longer than 32 bytes'],
    ['an odd cipher suite list', withBody((b) => b.writeUInt16BE(5, 67)), 'ClientHello cipher suite list malformed'],
    ['a cipher suite list overrunning', withBody((b) => b.writeUInt16BE(0xfffe, 67)), 'ClientHello truncated'],
    ['an extensions length too long', withBody((b) => b.writeUInt16BE(b.readUInt16BE(76) + 1, 76)), 'ClientHello extensions length does not match'],
  ])('refuses %s', (_name, bytes, reason) => {
    expect(parseClientHello(bytes)).toEqual({ kind: 'invalid', reason });
  });

  it.each([
    ['an empty server name list', extension(0, Buffer.from([0, 0]))],
    ['an empty host name', serverNameExtension([[0, '']])],
    ['a host name with a space', serverNameExtension([[0, 'a b.com']])],
    ['a host name with an empty label', serverNameExtension([[0, 'a..com']])],
    ['a host name starting with a dot', serverNameExtension([[0, '.a.com']])],
    ['a host name of 256 bytes', serverNameExtension([[0, 'a'.repeat(256)]])],
    ['a list length that disagrees', extension(0, Buffer.from([0, 9, 0, 0, 1, 0x61]))],
  ])('refuses %s in server_name', (_name, ext) => {
    expect(parseClientHello(clientHello({ extensions: [ext] }))).toEqual({ kind: 'invalid', reason: 'ClientHello server_name malformed' });
  });

  it('reads a hello over 64 one-byte records and refuses one over 65', () => {
    const handshake = handshakeMessage(clientHelloBody({ serverName: 'a.example.com' }));
    const split = (n: number): Buffer => records(handshake, Array<number>(n - 1).fill(1));
    expect(handshake.length).toBeGreaterThan(70);
    // 64 records: 63 single bytes, then the rest in one.
    expect(parseClientHello(split(64))).toMatchObject({ kind: 'complete', value: { serverName: 'a.example.com' } });
    expect(parseClientHello(split(65))).toEqual({ kind: 'invalid', reason: 'ClientHello spread over more than 64 records' });
  });

  it('refuses two server_name extensions', () => {
    const ext = serverNameExtension([[0, 'a.com']]);
    expect(parseClientHello(clientHello({ extensions: [ext, ext] }))).toEqual({ kind: 'invalid', reason: 'ClientHello has two server_name extensions' });
  });

  it('accepts a ClientHello of exactly 64 KiB and refuses one byte more', () => {
    const sized = (total: number): Buffer => {
      const base = clientHelloBody({ extensions: [serverNameExtension([[0, 'big.example.com']]), extension(21, Buffer.alloc(0))] });
      const body = clientHelloBody({ extensions: [serverNameExtension([[0, 'big.example.com']]), extension(21, Buffer.alloc(total - 4 - base.length))] });
      return records(handshakeMessage(body), [16384, 16384, 16384, 16384]);
    };
    expect(parseClientHello(sized(MAX_CLIENT_HELLO_BYTES))).toMatchObject({ kind: 'complete', value: { serverName: 'big.example.com' } });
    expect(parseClientHello(sized(MAX_CLIENT_HELLO_BYTES + 1))).toEqual({ kind: 'invalid', reason: 'ClientHello larger than 64 KiB' });
  });
});
