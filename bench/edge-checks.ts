/**
 * Per-call cost of the edge checks a connection pays before any backend is contacted:
 * acl lookup (10 vs 10,000 blocks), the shared per-IP table (admit + release), and the two
 * parsers. Run: node bench/edge-checks.ts. Single thread, no sockets; a rough guide, not a
 * claim (the machine is shared).
 */
import { performance } from 'node:perf_hooks';
import { parseClientHello } from '../src/dataplane/tls-client-hello.ts';
import { encodeProxyHeader, parseProxyHeader } from '../src/dataplane/proxy-protocol.ts';
import { Acl } from '../src/shared/cidr.ts';
import { parseIpInto } from '../src/shared/ip-address.ts';
import { createIpLimitBuffer, IpLimitTable, ratePolicy } from '../src/shared/ip-limits.ts';
import { clientHello } from '../test/helpers/tls-hello.ts';

function measure(name: string, iterations: number, run: (i: number) => unknown): void {
  let sink = 0;
  for (let i = 0; i < Math.min(iterations, 10_000); i++) sink ^= run(i) === undefined ? 0 : 1; // warm up
  const started = performance.now();
  for (let i = 0; i < iterations; i++) sink ^= run(i) === undefined ? 0 : 1;
  const ns = ((performance.now() - started) * 1e6) / iterations;
  console.log(`${name.padEnd(58)} ${ns.toFixed(0).padStart(6)} ns/op${sink === 2 ? ' ' : ''}`);
}

const addresses = Array.from({ length: 4096 }, (_, i) => `10.${(i >> 8) & 63}.${i & 255}.${(i * 7) & 255}`);
const words = new Int32Array(4);
for (const n of [10, 10_000]) {
  const acl = Acl.fromText([], Array.from({ length: n }, (_, i) => `10.${(i >> 8) & 255}.${i & 255}.0/24`));
  measure(`parse address + acl lookup, ${n} blocks`, 2_000_000, (i) => {
    const family = parseIpInto(addresses[i & 4095] ?? '', words);
    return family === 0 ? undefined : acl.allows(family, words);
  });
}

const table = new IpLimitTable(createIpLimitBuffer({ workers: 1, listenerSlots: 1, capacity: 65_536 }, 1), 0);
const policy = { perIpConnections: 100, ...ratePolicy(10_000, 10_000) };
measure('per-IP admit + release (4,096 clients, count and rate)', 2_000_000, (i) => {
  parseIpInto(addresses[i & 4095] ?? '', words);
  const entry = table.admitIp(0, words, i, policy);
  if (entry >= 0) table.releaseIp(entry);
  return entry;
});

const v1 = encodeProxyHeader('v1', { address: '203.0.113.7', port: 5555 }, { address: '10.0.0.1', port: 443 });
const v2 = encodeProxyHeader('v2', { address: '203.0.113.7', port: 5555 }, { address: '10.0.0.1', port: 443 });
measure('parse PROXY v1 header', 1_000_000, () => parseProxyHeader(v1));
measure('parse PROXY v2 header', 1_000_000, () => parseProxyHeader(v2));
const hello = clientHello({ serverName: 'api.example.com' });
measure(`parse ClientHello (${hello.length} bytes)`, 1_000_000, () => parseClientHello(hello));
