import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/shared/config/load.ts';
import { proxyTrustWarnings } from '../../../src/supervisor/proxy-trust-warning.ts';
import { CONFIG_FILE, yaml } from '../../helpers/config.ts';

function warningsFor(listen: string, acceptProxy: string): string[] {
  const config = parseConfig(
    yaml('listeners:', `  - {name: edge, listen: "${listen}", cluster: web, accept_proxy: ${acceptProxy}}`, 'clusters:', '  - name: web', '    backends: []'),
    CONFIG_FILE,
  );
  return proxyTrustWarnings(config.listeners).map((w) => `${w.listener}: ${w.message.slice(0, w.message.indexOf(' trusts'))}`);
}

describe('the start-up warning for accept_proxy: true', () => {
  it.each([
    ['every interface (IPv4)', '0.0.0.0:8443', 'true', ['edge: accept_proxy: true on every interface']],
    ['every interface (IPv6)', '[::]:8443', 'true', ['edge: accept_proxy: true on every interface']],
    ['a routable address', '10.0.0.5:8443', 'true', ['edge: accept_proxy: true on 10.0.0.5']],
    ['loopback: only this host can connect', '127.0.0.1:8443', 'true', []],
    ['IPv6 loopback', '[::1]:8443', 'true', []],
    ['a trusted list: the operator named the peers', '0.0.0.0:8443', '{trusted: [10.0.0.0/8]}', []],
    ['no header read', '0.0.0.0:8443', 'false', []],
  ])('%s', (_case, listen, acceptProxy, expected) => {
    expect(warningsFor(listen, acceptProxy)).toEqual(expected);
  });
});
