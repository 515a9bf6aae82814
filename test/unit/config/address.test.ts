import { describe, it, expect } from 'vitest';
import {
  analyzeHostPort,
  formatHostPort,
  listenAddressesOverlap,
  parseHostPort,
} from '../../../src/shared/address.ts';

describe('parseHostPort', () => {
  it.each([
    ['1.2.3.4:80', '1.2.3.4', 80],
    ['0.0.0.0:1', '0.0.0.0', 1],
    ['[::1]:80', '::1', 80],
    ['[::]:65535', '::', 65_535],
    ['[fe80::1%eth0]:8080', 'fe80::1%eth0', 8080],
    ['localhost:80', 'localhost', 80],
    ['name.example:443', 'name.example', 443],
    ['my_service:9000', 'my_service', 9000],
    ['a-b.c-d.example:8080', 'a-b.c-d.example', 8080],
  ])('reads %s', (text, host, port) => {
    expect(parseHostPort(text)).toEqual({ host, port });
  });

  it.each([
    ['', 'empty'],
    ['localhost', 'no port'],
    ['localhost:', 'empty port'],
    [':80', 'empty host'],
    ['::1:80', 'IPv6 without brackets'],
    ['[::1]80', 'no colon after the bracket'],
    ['[::1:80', 'unclosed bracket'],
    ['[localhost]:80', 'a name in brackets'],
    ['[1.2.3.4]:80', 'IPv4 in brackets'],
    ['999.1.1.1:80', 'an IPv4 octet out of range'],
    ['1.2.3:80', 'a short IPv4 address'],
    ['-bad.example:80', 'a label starting with a dash'],
    ['bad-.example:80', 'a label ending with a dash'],
    ['a..b:80', 'an empty label'],
    ['host name:80', 'a space'],
    ['host:8a', 'a non-numeric port'],
    ['host:-1', 'a negative port'],
    ['host:+80', 'a signed port'],
    ['host:8.0', 'a fractional port'],
    ['host:0', 'port 0'],
    ['host:65536', 'port 65536'],
    ['host:70000', 'port 70000'],
  ])('refuses %j (%s)', (text) => {
    expect(parseHostPort(text)).toBeUndefined();
  });

  it.each([
    ['localhost:0', 'port_range'],
    ['[::1]:70000', 'port_range'],
    ['localhost:x', 'syntax'],
    ['bad host:70000', 'syntax'],
  ])('tells a port out of range apart from a malformed address: %s', (text, problem) => {
    expect(analyzeHostPort(text)).toEqual({ ok: false, problem });
  });
});

describe('formatHostPort', () => {
  it.each([
    ['1.2.3.4', 80, '1.2.3.4:80'],
    ['localhost', 8080, 'localhost:8080'],
    ['::1', 80, '[::1]:80'],
  ])('writes %s and %i as %s, which reads back the same', (host, port, text) => {
    expect(formatHostPort(host, port)).toBe(text);
    expect(parseHostPort(text)).toEqual({ host, port });
  });
});

describe('listenAddressesOverlap', () => {
  const at = (text: string) => {
    const parsed = parseHostPort(text);
    if (parsed === undefined) throw new Error(`bad test address ${text}`);
    return parsed;
  };

  it.each([
    ['127.0.0.1:80', '127.0.0.1:80', true],
    ['127.0.0.1:80', '127.0.0.1:81', false],
    ['127.0.0.1:80', '127.0.0.2:80', false],
    ['0.0.0.0:80', '127.0.0.1:80', true],
    ['127.0.0.1:80', '[::]:80', true],
    ['[::]:80', '0.0.0.0:81', false],
    ['[::1]:80', '[0:0::1]:80', true],
    ['[0:0:0:0:0:0:0:0]:80', '10.0.0.1:80', true],
    ['Example.COM:80', 'example.com:80', true],
    ['localhost:80', '127.0.0.1:80', false],
  ])('%s and %s overlap: %s', (a, b, overlap) => {
    expect(listenAddressesOverlap(at(a), at(b))).toBe(overlap);
    expect(listenAddressesOverlap(at(b), at(a))).toBe(overlap);
  });
});
