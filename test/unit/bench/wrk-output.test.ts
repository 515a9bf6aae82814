import { describe, expect, it } from 'vitest';
import { parseWrk } from '../../../bench/workloads/wrk-output.ts';

const OUTPUT = `Running 5s test @ http://127.0.0.1:8080/
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.53ms    2.10ms  45.12ms   93.10%
    Req/Sec    36.17k     3.02k   40.01k    80.00%
  Latency Distribution
     50%    1.51ms
     75%    1.80ms
     90%    2.20ms
     99%  812.00us
  180867 requests in 5.00s, 26.05MB read
  Socket errors: connect 1, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 4
Requests/sec:  36173.45
Transfer/sec:      5.21MB
`;

describe('parseWrk', () => {
  it('reads requests/s, totals, percentiles in every unit, and all errors', () => {
    expect(parseWrk(OUTPUT)).toEqual({
      requests: 180867,
      seconds: 5,
      requestsPerSecond: 36173.45,
      p50Ms: 1.51,
      p99Ms: 0.812,
      errors: 10,
    });
  });

  it.each([
    ['seconds', '     99%    1.20s', 1200],
    ['minutes', '     99%    1.00m', 60_000],
  ])('converts a p99 in %s to milliseconds', (_unit, line, ms) => {
    const summary = parseWrk(OUTPUT.replace('     99%  812.00us', line));
    expect(typeof summary === 'string' ? summary : summary.p99Ms).toBeCloseTo(ms);
  });

  it('says what is missing instead of returning numbers from partial output', () => {
    expect(parseWrk('unable to connect to 127.0.0.1:1 Connection refused')).toMatch(/Requests\/sec/);
    expect(parseWrk(OUTPUT.replace(/ {2}Latency Distribution[\s\S]*?99%[^\n]*\n/, ''))).toMatch(/--latency/);
  });

  it('counts no errors when wrk reports none', () => {
    const clean = OUTPUT.replace(/ {2}Socket errors[^\n]*\n/, '').replace(/ {2}Non-2xx[^\n]*\n/, '');
    const summary = parseWrk(clean);
    expect(typeof summary === 'string' ? summary : summary.errors).toBe(0);
  });
});
