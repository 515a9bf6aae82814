import { describe, expect, it } from 'vitest';
import { encodeProxyHeader, MAX_V2_BYTES, parseProxyHeader } from '../../../src/dataplane/proxy-protocol.ts';

const SIG = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');

function v2(versionCommand: number, family: number, body: Buffer, length = body.length): Buffer {
  const fixed = Buffer.alloc(4);
  fixed[0] = versionCommand;
  fixed[1] = family;
  fixed.writeUInt16BE(length, 2);
  return Buffer.concat([SIG, fixed, body]);
}

function inet(src: number[], dst: number[], sport: number, dport: number): Buffer {
  const ports = Buffer.alloc(4);
  ports.writeUInt16BE(sport, 0);
  ports.writeUInt16BE(dport, 2);
  return Buffer.concat([Buffer.from(src), Buffer.from(dst), ports]);
}

const text = (s: string): Buffer => Buffer.from(s, 'latin1');

describe('parseProxyHeader: v1', () => {
  it.each([
    ['PROXY TCP4 203.0.113.7 10.0.0.1 5555 80\r\n', { address: '203.0.113.7', port: 5555, family: 4 }, { address: '10.0.0.1', port: 80, family: 4 }],
    ['PROXY TCP6 2001:db8::1 ::1 65535 0\r\n', { address: '2001:db8::1', port: 65535, family: 6 }, { address: '::1', port: 0, family: 6 }],
    ['PROXY TCP6 ::ffff:1.2.3.4 ::1 1 2\r\n', { address: '1.2.3.4', port: 1, family: 4 }, { address: '::1', port: 2, family: 6 }],
  ])('reads %j', (header, source, destination) => {
    const bytes = Buffer.concat([text(header), text('GET / HTTP/1.0\r\n')]);
    expect(parseProxyHeader(bytes)).toEqual({
      kind: 'complete',
      consumed: header.length,
      value: { version: 1, command: 'proxy', source, destination },
    });
  });

  it('reads UNKNOWN as no address, ignoring what follows it on the line', () => {
    expect(parseProxyHeader(text('PROXY UNKNOWN ffff:f::1 ::1 1 2\r\nrest'))).toEqual({
      kind: 'complete',
      consumed: 'PROXY UNKNOWN ffff:f::1 ::1 1 2\r\n'.length,
      value: { version: 1, command: 'proxy', source: undefined, destination: undefined },
    });
  });

  it.each([
    ['', 1],
    ['P', 2],
    ['PROXY', 6],
    ['PROXY TCP4 1.2.3.4', 19],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r', 32],
  ])('asks for more after %j', (prefix, needed) => {
    expect(parseProxyHeader(text(prefix))).toEqual({ kind: 'need-more', needed });
  });

  it.each([
    ['GET / HTTP/1.1\r\n', 'not a PROXY protocol header'],
    ['PROXZ TCP4', 'not a PROXY protocol header'],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n', 'v1 header: a byte that is not printable ASCII'],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX', 'v1 header: CR not followed by LF'],
    ['PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n', 'v1 header: protocol is not TCP4, TCP6 or UNKNOWN'],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n', 'v1 header: expected TCP4|TCP6 and four fields'],
    ['PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n', 'v1 header: expected TCP4|TCP6 and four fields'],
    ['PROXY TCP4 ::1 5.6.7.8 1 2\r\n', 'v1 header: bad address or port'],
    ['PROXY TCP6 1.2.3.4 ::1 1 2\r\n', 'v1 header: bad address or port'],
    ['PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n', 'v1 header: bad address or port'],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n', 'v1 header: bad address or port'],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n', 'v1 header: bad address or port'],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n', 'v1 header: bad address or port'],
    [`PROXY UNKNOWN ${'x'.repeat(100)}`, 'v1 header longer than 107 bytes'],
  ])('refuses %j: %s', (header, reason) => {
    expect(parseProxyHeader(text(header))).toEqual({ kind: 'invalid', reason });
  });

  it('accepts a line of exactly 107 bytes and refuses one of 108', () => {
    const at107 = `PROXY UNKNOWN ${'x'.repeat(107 - 16)}\r\n`;
    expect(at107.length).toBe(107);
    expect(parseProxyHeader(text(at107)).kind).toBe('complete');
    const at108 = `PROXY UNKNOWN ${'x'.repeat(108 - 16)}\r\n`;
    expect(parseProxyHeader(text(at108))).toEqual({ kind: 'invalid', reason: 'v1 header longer than 107 bytes' });
  });
});

describe('parseProxyHeader: v2', () => {
  it('reads an IPv4 PROXY header and reports what follows as not consumed', () => {
    const header = v2(0x21, 0x11, inet([203, 0, 113, 7], [10, 0, 0, 1], 5555, 443));
    expect(parseProxyHeader(Buffer.concat([header, text('hello')]))).toEqual({
      kind: 'complete',
      consumed: 28,
      value: {
        version: 2,
        command: 'proxy',
        source: { address: '203.0.113.7', port: 5555, family: 4 },
        destination: { address: '10.0.0.1', port: 443, family: 4 },
      },
    });
  });

  it('reads an IPv6 header with TLVs after the addresses', () => {
    const src = [0x20, 0x01, 0x0d, 0xb8, ...Array<number>(11).fill(0), 1];
    const dst = [...Array<number>(15).fill(0), 1];
    const tlvs = Buffer.from([0x04, 0x00, 0x02, 0xaa, 0xbb, 0x05, 0x00, 0x00]);
    const body = Buffer.concat([inet(src, dst, 1, 2), tlvs]);
    const parsed = parseProxyHeader(v2(0x21, 0x21, body));
    expect(parsed).toEqual({
      kind: 'complete',
      consumed: 16 + 36 + 8,
      value: { version: 2, command: 'proxy', source: { address: '2001:db8::1', port: 1, family: 6 }, destination: { address: '::1', port: 2, family: 6 } },
    });
  });

  it.each([
    ['LOCAL with addresses', v2(0x20, 0x11, inet([1, 2, 3, 4], [5, 6, 7, 8], 1, 2)), 'local'],
    ['PROXY over AF_UNSPEC', v2(0x21, 0x00, Buffer.alloc(0)), 'proxy'],
    ['PROXY over AF_UNIX', v2(0x21, 0x31, Buffer.alloc(216)), 'proxy'],
  ])('reads %s as carrying no address', (_name, header, command) => {
    expect(parseProxyHeader(header)).toEqual({
      kind: 'complete',
      consumed: header.length,
      value: { version: 2, command, source: undefined, destination: undefined },
    });
  });

  it('asks for the fixed part, then for the whole length', () => {
    const header = v2(0x21, 0x11, inet([1, 2, 3, 4], [5, 6, 7, 8], 1, 2));
    expect(parseProxyHeader(header.subarray(0, 5))).toEqual({ kind: 'need-more', needed: 16 });
    expect(parseProxyHeader(header.subarray(0, 12))).toEqual({ kind: 'need-more', needed: 16 });
    expect(parseProxyHeader(header.subarray(0, 16))).toEqual({ kind: 'need-more', needed: 28 });
    expect(parseProxyHeader(header.subarray(0, 27))).toEqual({ kind: 'need-more', needed: 28 });
  });

  it.each([
    ['version 1 in a v2 frame', v2(0x11, 0x11, inet([1, 2, 3, 4], [5, 6, 7, 8], 1, 2)), 'v2 header: bad version or command'],
    ['command 2', v2(0x22, 0x11, inet([1, 2, 3, 4], [5, 6, 7, 8], 1, 2)), 'v2 header: bad version or command'],
    ['family 4', v2(0x21, 0x41, Buffer.alloc(12)), 'v2 header: bad address family or transport'],
    ['transport 3', v2(0x21, 0x13, Buffer.alloc(12)), 'v2 header: bad address family or transport'],
    ['AF_INET shorter than its addresses', v2(0x21, 0x11, Buffer.alloc(11)), 'v2 header: length too short for its address family'],
    ['AF_INET6 shorter than its addresses', v2(0x21, 0x21, Buffer.alloc(35)), 'v2 header: length too short for its address family'],
    ['a TLV overrunning the header', v2(0x21, 0x11, Buffer.concat([Buffer.alloc(12), Buffer.from([1, 0, 5, 0])])), 'v2 header: malformed TLV'],
    ['a TLV cut in its header', v2(0x21, 0x11, Buffer.concat([Buffer.alloc(12), Buffer.from([1, 0])])), 'v2 header: malformed TLV'],
    ['a length over the bound', v2(0x21, 0x11, Buffer.alloc(0), MAX_V2_BYTES), 'v2 header longer than the 2048-byte bound'],
    ['a broken signature', Buffer.concat([Buffer.from([0x0d, 0x0a, 0x0d, 0x0b]), Buffer.alloc(20)]), 'not a PROXY protocol header'],
  ])('refuses %s', (_name, header, reason) => {
    expect(parseProxyHeader(header)).toEqual({ kind: 'invalid', reason });
  });

  it('refuses a bad version byte before the rest of the fixed part arrives', () => {
    expect(parseProxyHeader(Buffer.concat([SIG, Buffer.from([0x31])]))).toEqual({ kind: 'invalid', reason: 'v2 header: bad version or command' });
  });
});

describe('encodeProxyHeader', () => {
  it.each([
    ['v1', '127.0.0.5', 40000, '127.0.0.1', 8080, 'PROXY TCP4 127.0.0.5 127.0.0.1 40000 8080\r\n'],
    ['v1', '::ffff:127.0.0.5', 1, '::ffff:127.0.0.1', 2, 'PROXY TCP4 127.0.0.5 127.0.0.1 1 2\r\n'],
    ['v1', '2001:db8::1', 1, '::1', 2, 'PROXY TCP6 2001:db8::1 ::1 1 2\r\n'],
    ['v1', '127.0.0.5', 1, '::1', 2, 'PROXY TCP6 ::ffff:7f00:5 ::1 1 2\r\n'],
    ['v1', 'not-an-ip', 1, '::1', 2, 'PROXY UNKNOWN\r\n'],
  ] as const)('%s %s:%d → %s:%d', (version, src, sport, dst, dport, expected) => {
    expect(encodeProxyHeader(version, { address: src, port: sport }, { address: dst, port: dport }).toString('latin1')).toBe(expected);
  });

  it('writes v2 headers that the parser reads back to the same addresses', () => {
    const pairs: [string, string][] = [
      ['127.0.0.5', '127.0.0.1'],
      ['2001:db8::5', 'fe80::1'],
      ['10.0.0.1', '2001:db8::1'],
    ];
    for (const [src, dst] of pairs) {
      const header = encodeProxyHeader('v2', { address: src, port: 1234 }, { address: dst, port: 443 });
      const parsed = parseProxyHeader(header);
      expect(parsed.kind).toBe('complete');
      if (parsed.kind !== 'complete') continue;
      expect(parsed.consumed).toBe(header.length);
      expect(parsed.value.source).toMatchObject({ address: src, port: 1234 });
      expect(parsed.value.destination).toMatchObject({ address: dst, port: 443 });
    }
  });

  it('writes the exact v2 bytes for IPv4', () => {
    const header = encodeProxyHeader('v2', { address: '127.0.0.5', port: 0x1234 }, { address: '127.0.0.1', port: 80 });
    expect(header.toString('hex')).toBe(`${SIG.toString('hex')}2111000c7f0000057f00000112340050`);
  });

  it('writes AF_UNSPEC when an end is not an IP address', () => {
    const header = encodeProxyHeader('v2', { address: 'unix', port: 0 }, { address: '::1', port: 1 });
    expect(header.toString('hex')).toBe(`${SIG.toString('hex')}21000000`);
  });
});
