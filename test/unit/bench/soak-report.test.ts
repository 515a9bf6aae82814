import { describe, expect, it } from 'vitest';
import { inspectorUrl } from '../../../bench/lib/inspector-gc.ts';
import { parseSoakOptions, renderTable, splitResources, verdicts, type SoakSample } from '../../../bench/lib/soak-report.ts';

const MIB = 1024 * 1024;

function sample(overrides: Partial<SoakSample> = {}): SoakSample {
  return {
    point: 'start',
    connections: 0,
    datagrams: 0,
    fds: 50,
    handles: { MessagePort: 2, TCPServerWrap: 2, UDPWrap: 2 },
    timers: 1,
    heapMainBytes: 20 * MIB,
    heapWorkersBytes: 18 * MIB,
    rssKiB: 200 * 1024,
    openConnections: 0,
    udpSessions: 0,
    ...overrides,
  };
}

describe('soak options', () => {
  it('defaults to the issue sizes: a million connections, ten million datagrams, samples every 100,000 and 1,000,000', () => {
    expect(parseSoakOptions([])).toMatchObject({
      connections: 1_000_000,
      datagrams: 10_000_000,
      connectionsEvery: 100_000,
      datagramsEvery: 1_000_000,
      concurrency: 64,
      tolerancePercent: 5,
    });
  });

  it('scales down for a quick run', () => {
    expect(parseSoakOptions(['--connections', '20000', '--datagrams', '200_000'])).toMatchObject({ connections: 20_000, datagrams: 200_000 });
  });

  it.each([
    [['--connections', 'many'], /--connections must be an integer of at least 0, got many/],
    [['--concurrency', '0'], /--concurrency must be an integer of at least 1, got 0/],
    [['--tolerance', '2.5'], /--tolerance must be an integer/],
    [['--frobnicate', '1'], /Unknown option/],
  ])('rejects %j with a precise message', (argv, message) => {
    expect(() => parseSoakOptions(argv)).toThrow(message);
  });
});

describe('soak samples', () => {
  it('counts timers apart from the other handles, summed over workers', () => {
    expect(splitResources([{ MessagePort: 1, Timeout: 2, TCPServerWrap: 1 }, { MessagePort: 1, UDPWrap: 3 }])).toEqual({
      handles: { MessagePort: 2, TCPServerWrap: 1, UDPWrap: 3 },
      timers: 2,
    });
  });

  it('renders one row per sample', () => {
    const table = renderTable([sample(), sample({ point: '100,000 conns', connections: 100_000, openConnections: 64 })]);
    expect(table.split('\n')).toHaveLength(4);
    expect(table).toContain('| 100,000 conns | 100,000 | 0 | 50 | 6 | 1 | 20.0 | 18.0 | 200.0 | 64 | 0 |');
  });
});

describe('soak verdicts', () => {
  const okOf = (end: Partial<SoakSample>): Record<string, boolean> =>
    Object.fromEntries(verdicts(sample(), sample({ point: 'end', ...end }), 5).map((v) => [v.quantity, v.ok]));

  it('passes when everything is back', () => {
    expect(Object.values(okOf({})).every(Boolean)).toBe(true);
  });

  it.each([
    ['fds', { fds: 51 }],
    ['timers', { timers: 2 }],
    ['handles', { handles: { MessagePort: 2, TCPServerWrap: 2, UDPWrap: 3 } }],
    // The same total with one kind traded for another is still a leak.
    ['handles', { handles: { MessagePort: 2, TCPServerWrap: 1, UDPWrap: 3 } }],
    ['heap (main thread)', { heapMainBytes: 21.2 * MIB }],
    ['heap (data-plane workers)', { heapWorkersBytes: 19 * MIB }],
    ['RSS', { rssKiB: 211 * 1024 }],
  ])('fails %s when it did not come back', (quantity, end) => {
    const ok = okOf(end);
    expect(ok[quantity]).toBe(false);
    expect(Object.entries(ok).filter(([q]) => q !== quantity).every(([, v]) => v)).toBe(true);
  });

  it('allows heap and RSS growth up to the tolerance, and any shrinking', () => {
    expect(Object.values(okOf({ heapMainBytes: 21 * MIB, rssKiB: 150 * 1024 })).every(Boolean)).toBe(true);
  });

  it('names the handle kinds that moved', () => {
    const lines = verdicts(sample(), sample({ handles: { MessagePort: 2, TCPServerWrap: 2, UDPWrap: 2, TCPSocketWrap: 3 } }), 5).map((v) => v.line);
    expect(lines).toContain('handles: start 6, end 9 (TCPSocketWrap 0 -> 3) - NOT BACK (must be equal)');
  });
});

describe('the inspector URL', () => {
  it('is read from the "Debugger listening" line of the log', () => {
    const log = 'Debugger listening on ws://127.0.0.1:41234/0f3c-77aa-b1\nFor help, see: https://nodejs.org/en/docs/inspector\n';
    expect(inspectorUrl(log)).toBe('ws://127.0.0.1:41234/0f3c-77aa-b1');
    expect(inspectorUrl('{"msg":"sluice started"}')).toBeUndefined();
  });
});
