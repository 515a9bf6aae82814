import { describe, expect, it } from 'vitest';
import { backendAddressProblem } from '../../../src/shared/address.ts';
import { errorsOf, yaml } from '../../helpers/config.ts';

describe('backendAddressProblem: one rule for config, the admin API and discovery', () => {
  it.each<[string, string | undefined]>([
    ['127.0.0.1:9001', undefined],
    ['[::1]:9001', undefined],
    ['api.internal:8080', undefined],
    ['0.0.0.0:9001', "0.0.0.0 means every interface, not a host to connect to: give the backend's own address"],
    ['[::]:9001', ":: means every interface, not a host to connect to: give the backend's own address"],
    ['[0:0::0]:9001', "0:0::0 means every interface, not a host to connect to: give the backend's own address"],
    ['127.0.0.1:0', 'port must be 1-65535'],
    ['127.0.0.1', 'expected host:port'],
  ])('%s', (address, problem) => {
    expect(backendAddressProblem(address)).toBe(problem);
  });

  it('a wildcard backend in config.yaml is refused with file, line and path', () => {
    const text = yaml('listeners: [{name: web, listen: 0.0.0.0:8080, cluster: web}]', 'clusters:', '  - name: web', '    backends: [{address: 0.0.0.0:9001}]');
    expect(errorsOf(text)).toEqual(["config.yaml:4:26 clusters[0].backends[0].address: 0.0.0.0 means every interface, not a host to connect to: give the backend's own address"]);
  });
});
