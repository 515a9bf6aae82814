/**
 * `accept_proxy: {trusted: [...]}`: only the listed peers may name their client in a PROXY
 * header. The config key (valid and invalid values), its snapshot entry, and the trust
 * matcher each data-plane worker compiles from it.
 */
import { describe, expect, it } from 'vitest';
import { snapshotListener } from '../../../src/controlplane/listener-snapshot.ts';
import { buildEdgePolicy } from '../../../src/dataplane/edge-policy.ts';
import { aclAllowsText } from '../../../src/shared/cidr.ts';
import { parseConfig } from '../../../src/shared/config/load.ts';
import { decodeSnapshot, encodeSnapshot } from '../../../src/shared/snapshot/codec.ts';
import type { SnapshotListener } from '../../../src/shared/snapshot/types.ts';
import { CONFIG_FILE, errorsOf, yaml } from '../../helpers/config.ts';
import { testListener, testSnapshot } from '../../helpers/snapshot.ts';

/** A config whose one listener has `line` on line 5. */
function withListenerLine(line: string): string {
  return yaml('listeners:', '  - name: edge', '    listen: 127.0.0.1:8443', '    cluster: web', `    ${line}`, 'clusters:', '  - name: web', '    backends: []');
}

function listenerOf(line: string) {
  const listener = parseConfig(withListenerLine(line), CONFIG_FILE).listeners[0];
  if (listener === undefined) throw new Error('no listener');
  return listener;
}

describe('accept_proxy in config.yaml', () => {
  it.each([
    ['true: every peer is trusted', 'accept_proxy: true', true],
    ['false: no header is read', 'accept_proxy: false', false],
    ['trusted blocks, in canonical form', 'accept_proxy: {trusted: [10.0.0.0/8, 192.168.1.7, "2001:DB8::/32"]}', { trusted: ['10.0.0.0/8', '192.168.1.7/32', '2001:db8::/32'] }],
    ['an IPv4-mapped block is an IPv4 block', 'accept_proxy: {trusted: ["::ffff:10.1.0.0/112"]}', { trusted: ['10.1.0.0/16'] }],
  ])('reads %s', (_case, line, value) => {
    expect(listenerOf(line).accept_proxy).toEqual(value);
  });

  it.each([
    ['text', 'accept_proxy: yes please', '5:19 listeners[0].accept_proxy: expected true, false or {trusted: [CIDR, ...]}'],
    ['a bare list', 'accept_proxy: [10.0.0.0/8]', '5:19 listeners[0].accept_proxy: expected true, false or {trusted: [CIDR, ...]}'],
    ['an empty trusted list', 'accept_proxy: {trusted: []}', '5:29 listeners[0].accept_proxy.trusted: expected at least one block; write accept_proxy: false to read no header'],
    ['host bits in a block', 'accept_proxy: {trusted: [10.0.0.1/8]}', '5:30 listeners[0].accept_proxy.trusted[0]: "10.0.0.1/8" has host bits set; did you mean 10.0.0.0/8?'],
    ['a name instead of a block', 'accept_proxy: {trusted: [10.0.0.0/8, lb.example.com]}', '5:42 listeners[0].accept_proxy.trusted[1]: "lb.example.com" is not a CIDR block like 10.0.0.0/8 or 2001:db8::/32'],
    ['one block, not a list', 'accept_proxy: {trusted: 10.0.0.0/8}', '5:29 listeners[0].accept_proxy.trusted: expected a list'],
    ['an unknown key beside trusted', 'accept_proxy: {trusted: [10.0.0.0/8], deny: [10.0.0.1]}', '5:19 listeners[0].accept_proxy: unknown key "deny"; allowed: trusted'],
  ])('refuses %s', (_case, line, message) => {
    expect(errorsOf(withListenerLine(line))).toEqual([`config.yaml:${message}`]);
  });

  it('refuses it on a UDP listener, trusted or not', () => {
    const text = yaml('listeners:', '  - {name: dns, protocol: udp, listen: 127.0.0.1:5353, cluster: web, accept_proxy: {trusted: [10.0.0.0/8]}}', 'clusters:', '  - name: web', '    backends: []');
    expect(errorsOf(text)).toEqual(['config.yaml:2:84 listeners[0].accept_proxy: accept_proxy applies only to TCP listeners (protocol: udp has no edge gate)']);
  });
});

describe('accept_proxy in the snapshot', () => {
  it.each([
    ['accept_proxy: true', { acceptProxy: true }],
    ['accept_proxy: false', {}],
    ['accept_proxy: {trusted: [10.0.0.0/8, "::1"]}', { acceptProxy: true, proxyTrusted: ['10.0.0.0/8', '::1/128'] }],
  ])('%s becomes %j', (line, fields) => {
    const entry = snapshotListener(listenerOf(line));
    expect({ acceptProxy: entry.acceptProxy, proxyTrusted: entry.proxyTrusted }).toEqual({ acceptProxy: undefined, proxyTrusted: undefined, ...fields });
  });

  it('round-trips the trusted blocks through the codec, and refuses a bad one', () => {
    const snapshot = testSnapshot({ listeners: [testListener({ acceptProxy: true, proxyTrusted: ['10.0.0.0/8', '2001:db8::/32'] })] });
    expect(decodeSnapshot(encodeSnapshot(snapshot))).toEqual(snapshot);
    const bad = { ...snapshot, listeners: [{ ...testListener(), acceptProxy: true, proxyTrusted: ['10.0.0.1/8'] }] };
    expect(() => decodeSnapshot(new TextEncoder().encode(JSON.stringify(bad)))).toThrow('$.listeners[0].proxyTrusted[0]: "10.0.0.1/8" has host bits set');
  });
});

describe('the trust matcher a worker builds', () => {
  const policyOf = (listener: SnapshotListener) => buildEdgePolicy(listener, new Map(), undefined);

  it.each([
    ['a peer inside a trusted block', '10.1.2.3', true],
    ['a dual-stack peer inside an IPv4 block', '::ffff:10.1.2.3', true],
    ['a peer inside a trusted IPv6 block', '2001:db8::5', true],
    ['a peer outside every block', '192.168.0.1', false],
    ['loopback, when not listed', '127.0.0.1', false],
  ])('trusts %s: %s', (_case, peer, trusted) => {
    const trust = policyOf(testListener({ acceptProxy: true, proxyTrusted: ['10.0.0.0/8', '2001:db8::/32'] }))?.proxyTrusted;
    expect(trust === undefined ? undefined : aclAllowsText(trust, peer)).toBe(trusted);
  });

  it('trusts every peer with accept_proxy: true (no matcher), and trusts nobody with an empty list', () => {
    expect(policyOf(testListener({ acceptProxy: true }))?.proxyTrusted).toBeUndefined();
    const none = policyOf(testListener({ acceptProxy: true, proxyTrusted: [] }))?.proxyTrusted;
    expect(none === undefined ? undefined : [aclAllowsText(none, '10.0.0.1'), aclAllowsText(none, '::1')]).toEqual([false, false]);
  });

  it('reuses the compiled matcher while the blocks stay the same', () => {
    const listener = testListener({ acceptProxy: true, proxyTrusted: ['10.0.0.0/8'] });
    const first = policyOf(listener);
    expect(buildEdgePolicy({ ...listener }, new Map(), first)?.proxyTrusted).toBe(first?.proxyTrusted);
    expect(buildEdgePolicy({ ...listener, proxyTrusted: ['10.0.0.0/16'] }, new Map(), first)?.proxyTrusted).not.toBe(first?.proxyTrusted);
  });
});
