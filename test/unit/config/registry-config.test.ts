/** `registry:` in config.yaml: checked by `sluice validate` like every other key, with file:line:col. */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/shared/config/load.ts';
import { CONFIG_FILE, errorsOf, yaml } from '../../helpers/config.ts';

const BODY = ['listeners:', '  - {name: web, protocol: tcp, listen: 127.0.0.1:8080, cluster: web}', 'clusters:', '  - {name: web, algorithm: round_robin, backends: [{address: 127.0.0.1:9001}]}'];

describe('registry.etcd in config.yaml', () => {
  it('fills the defaults of an empty etcd block', () => {
    const config = parseConfig(yaml('registry:', '  etcd: {}', ...BODY), CONFIG_FILE);
    expect(config.registry?.etcd).toEqual({ endpoints: ['http://127.0.0.1:2379'], prefix: '/sluice/v1/', required: false });
  });

  it('is absent without a registry block (the daemon behaves as without a fleet)', () => {
    expect(parseConfig(yaml(...BODY), CONFIG_FILE).registry).toBeUndefined();
  });

  it.each([
    ['an endpoint that is not a URL', ['registry:', '  etcd:', '    endpoints: [127.0.0.1:2379]'], 'config.yaml:3:17 registry.etcd.endpoints[0]: expected an endpoint like http://127.0.0.1:2379'],
    ['a prefix without its slashes', ['registry:', '  etcd:', '    prefix: sluice'], 'config.yaml:3:13 registry.etcd.prefix: expected a key prefix that starts and ends with /, like /sluice/v1/'],
    ['an instance name with a slash', ['registry:', '  etcd:', '    instance: lb/1'], 'config.yaml:3:15 registry.etcd.instance: expected an instance name without / or spaces'],
  ])('reports %s with file:line:col', (_, lines, expected) => {
    expect(errorsOf(yaml(...lines, ...BODY))).toEqual([expected]);
  });

  it('reports a misspelt key in the etcd block', () => {
    expect(errorsOf(yaml('registry:', '  etcd:', '    endpoint: [http://127.0.0.1:2379]', ...BODY))[0]).toMatch(/^config\.yaml:3:5 registry\.etcd: unknown key "endpoint"/);
  });
});
