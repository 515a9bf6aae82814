import { describe, expect, it } from 'vitest';
import { maxIdleConnections, parseBenchOptions, parseVariant } from '../../../bench/lib/options.ts';

const MACHINE = { cores: 2, fdLimit: 20_000 };

describe('bench options', () => {
  it('defaults to 3 rounds of 5 s, Sluice at the core count, and the report in docs/', () => {
    const o = parseBenchOptions([], MACHINE);
    expect(o).toMatchObject({ rounds: 3, durationS: 5, workers: 2, out: 'docs/benchmarks.md', quick: false, install: true });
    expect(o.idleConnections).toBe(9_750);
    expect(o.rssConnections).toBe(20_000);
    // Every row of issue #18's targets has its workload in a default run.
    expect(o.workloads).toEqual(expect.arrayContaining(['close', 'keepalive', 'bulk_up', 'bulk_down', 'udp_one', 'udp_long', 'propagation', 'idle_memory', 'idle_rss', 'admin_change']));
  });

  it('--quick is one short round with small counts and no report file', () => {
    const o = parseBenchOptions(['--quick'], MACHINE);
    expect(o).toMatchObject({ rounds: 1, durationS: 1, idleConnections: 200, rssConnections: 200, pickBackends: 100, adminChanges: 5, out: undefined });
  });

  it.each([
    [['--duration', '500ms'], /at least 1s/],
    [['--duration', 'soon'], /at least 1s/],
    [['--rounds', '0'], /--rounds must be a positive integer/],
    [['--rss-connections', '0'], /--rss-connections must be a positive integer/],
    [['--workloads', 'keepalive,bogus'], /unknown "bogus"; known: keepalive/],
    [['--idle-connections', '20000'], /more than the 20000 file descriptors/],
    [['--variant', 'nolabel'], /LABEL:KEY=VALUE/],
    [['--frobnicate'], /Unknown option/],
  ])('rejects %j with a precise message', (argv, message) => {
    expect(() => parseBenchOptions(argv, MACHINE)).toThrow(message);
  });

  it('reads variants as a label and environment variables', () => {
    expect(parseVariant('previous:A=1,B=two')).toEqual({ label: 'previous', env: { A: '1', B: 'two' } });
  });

  it('keeps two descriptors per idle connection within the process limit, at most 10,000', () => {
    expect(maxIdleConnections(1024)).toBe(262);
    expect(maxIdleConnections(1_000_000)).toBe(10_000);
  });
});
