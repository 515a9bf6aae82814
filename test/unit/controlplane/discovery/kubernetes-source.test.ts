import { ApiException } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { describeFailure, expandHome } from '../../../../src/controlplane/discovery/kubernetes-source.ts';

describe('expandHome', () => {
  it.each([
    ['~/.kube/config', '/home/op/.kube/config'],
    ['~', '/home/op'],
    ['/etc/kube/config', '/etc/kube/config'],
    ['relative/config', 'relative/config'],
    ['~other/config', '~other/config'],
  ])('%s -> %s', (file, expected) => {
    expect(expandHome(file, '/home/op')).toBe(expected);
  });
});

describe('describeFailure (errors from a watch)', () => {
  const status = (code: number, message: string): string => JSON.stringify({ kind: 'Status', code, message });
  it.each<[string, unknown, string]>([
    ['an HTTP status from Watch', Object.assign(new Error('Internal Server Error'), { statusCode: 500 }), 'watch failed: HTTP 500 Internal Server Error'],
    ['a refused connection', new TypeError('fetch failed', { cause: new Error('connect ECONNREFUSED 127.0.0.1:1') }), 'watch failed: fetch failed (connect ECONNREFUSED 127.0.0.1:1)'],
    ['a stream cut mid-way', new TypeError('terminated', { cause: new Error('other side closed') }), 'watch failed: terminated (other side closed)'],
    ['an ApiException with a Status body', new ApiException(403, 'Unknown API Status Code!', status(403, 'endpointslices.discovery.k8s.io is forbidden'), {}), 'watch failed: HTTP 403: endpointslices.discovery.k8s.io is forbidden'],
    ['an ApiException with a text body', new ApiException(502, 'Unknown API Status Code!', 'Bad Gateway', {}), 'watch failed: HTTP 502: Bad Gateway'],
    ['an ApiException without a body', new ApiException(401, 'Unauthorized', undefined, {}), 'watch failed: HTTP 401'],
    ['something that is not an Error', 'boom', 'watch failed: boom'],
  ])('%s', (_name, error, expected) => {
    expect(describeFailure(error)).toBe(expected);
  });
});
