import { describe, expect, it } from 'vitest';
import { parseResolvConf } from '../../../src/controlplane/discovery/dns-client.ts';

describe('parseResolvConf', () => {
  const table: [string, string, { host: string; port: number }[]][] = [
    ['nameserver lines in order, on port 53', 'nameserver 10.0.0.2\nnameserver 10.0.0.3\n', [{ host: '10.0.0.2', port: 53 }, { host: '10.0.0.3', port: 53 }]],
    ['comments, options and search lines skipped', '# generated\nsearch example.com\noptions ndots:5\n  nameserver\t127.0.0.53  \n', [{ host: '127.0.0.53', port: 53 }]],
    ['IPv6, with a zone', 'nameserver ::1\nnameserver fe80::1%eth0\n', [{ host: '::1', port: 53 }, { host: 'fe80::1%eth0', port: 53 }]],
    ['a name instead of an address skipped', 'nameserver dns.example\nnameserver 1.1.1.1\n', [{ host: '1.1.1.1', port: 53 }]],
    ['a line without a value skipped', 'nameserver\n', []],
    ['an empty file', '', []],
  ];
  it.each(table)('%s', (_name, text, expected) => {
    expect(parseResolvConf(text)).toEqual(expected);
  });
});
