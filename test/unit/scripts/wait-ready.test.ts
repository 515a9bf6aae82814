import { describe, expect, it } from 'vitest';
import { readyUrl, verdict } from '../../../scripts/wait-ready.ts';

describe('wait-ready', () => {
  it.each([
    ['127.0.0.1:9090', 'http://127.0.0.1:9090/readyz'],
    ['0.0.0.0:9090', 'http://127.0.0.1:9090/readyz'],
    ['[::]:9090', 'http://[::1]:9090/readyz'],
    ['[::1]:19090', 'http://[::1]:19090/readyz'],
    ['10.0.0.5:80', 'http://10.0.0.5:80/readyz'],
    ['nonsense', undefined],
  ])('asks %s at %s', (listen, url) => {
    expect(readyUrl(listen)).toBe(url);
  });

  it.each([
    // probe, alive, now, deadline -> verdict
    ['ready', true, 0, 10, 'ready'],
    // A 200 wins even when the pid check raced the process's exit or the deadline.
    ['ready', false, 20, 10, 'ready'],
    ['not-ready', false, 0, 10, 'exited'],
    ['not-ready', false, 20, 10, 'exited'],
    ['not-ready', true, 9, 10, 'wait'],
    ['not-ready', true, 10, 10, 'timeout'],
  ] as const)('%s, alive %s, at %i of %i: %s', (probe, alive, now, deadline, expected) => {
    expect(verdict(probe, alive, now, deadline)).toBe(expected);
  });
});
