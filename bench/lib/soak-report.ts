/**
 * The soak's options, samples, table and verdicts (pure: argv and samples in, text out).
 * A sample is what the daemon holds at one point of the run; the verdict compares the end
 * (after the load and an idle wait) with the start: descriptors, handles and timers must be
 * back exactly, heap and RSS within a tolerance (they move with garbage collection and the
 * allocator, not only with leaks).
 */
import { parseArgs } from 'node:util';

export const SOAK_USAGE = `usage: npm run soak -- [options]
  --connections N         short TCP connections (default 1000000)
  --datagrams N           UDP request/reply datagrams answered (default 10000000)
  --concurrency N         TCP connections in flight (default 64)
  --udp-clients N         UDP clients in flight (default 64)
  --per-socket N          replies per UDP client socket before a new one (a new session) (default 100)
  --workers N             the daemon's data-plane workers (default 2)
  --warmup-connections N  connections before the start sample (default 10000)
  --warmup-datagrams N    datagrams before the start sample (default 100000)
  --tolerance P           heap and RSS: end may exceed start by P percent (default 5)
  --connections-every N   a sample every N connections (default 100000)
  --datagrams-every N     a sample every N datagrams (default 1000000)
  --max-seconds S         stop the load after S seconds, report, exit 2 (default 3600)
  --idle-seconds S        at the end, wait at most S seconds for the daemon to go idle (default 60)`;

export interface SoakOptions {
  readonly connections: number;
  readonly datagrams: number;
  readonly concurrency: number;
  readonly udpClients: number;
  readonly perSocket: number;
  readonly workers: number;
  readonly warmupConnections: number;
  readonly warmupDatagrams: number;
  readonly tolerancePercent: number;
  readonly connectionsEvery: number;
  readonly datagramsEvery: number;
  readonly maxSeconds: number;
  readonly idleSeconds: number;
}

const INTEGER_OPTIONS = {
  connections: ['connections', 1_000_000, 0],
  datagrams: ['datagrams', 10_000_000, 0],
  concurrency: ['concurrency', 64, 1],
  udpClients: ['udp-clients', 64, 1],
  perSocket: ['per-socket', 100, 1],
  workers: ['workers', 2, 1],
  warmupConnections: ['warmup-connections', 10_000, 0],
  warmupDatagrams: ['warmup-datagrams', 100_000, 0],
  tolerancePercent: ['tolerance', 5, 0],
  connectionsEvery: ['connections-every', 100_000, 1],
  datagramsEvery: ['datagrams-every', 1_000_000, 1],
  maxSeconds: ['max-seconds', 3600, 1],
  idleSeconds: ['idle-seconds', 60, 1],
} as const satisfies Record<keyof SoakOptions, readonly [string, number, number]>;

/** Throws an Error with a precise message for an unknown flag or a value out of range. */
export function parseSoakOptions(argv: readonly string[]): SoakOptions {
  const { values } = parseArgs({
    args: [...argv],
    options: Object.fromEntries(Object.values(INTEGER_OPTIONS).map(([flag]) => [flag, { type: 'string' as const }])),
    strict: true,
    allowPositionals: false,
  });
  const read = ([flag, fallback, min]: readonly [string, number, number]): number => {
    const text = values[flag];
    if (typeof text !== 'string') return fallback;
    const n = Number(text.replaceAll('_', ''));
    if (!Number.isInteger(n) || n < min) throw new Error(`--${flag} must be an integer of at least ${min}, got ${text}`);
    return n;
  };
  const entries = Object.entries(INTEGER_OPTIONS).map(([key, spec]) => [key, read(spec)]);
  return Object.fromEntries(entries) as SoakOptions;
}

export interface SoakSample {
  readonly point: string;
  /** Connections and datagrams finished so far (warm-up not counted). */
  readonly connections: number;
  readonly datagrams: number;
  /** Open descriptors of the daemon process (/proc/PID/fd). */
  readonly fds: number;
  /** libuv handles of the data-plane workers by kind, summed over workers, timers excluded. */
  readonly handles: Readonly<Record<string, number>>;
  /** Active timers of the data-plane workers (kind `Timeout`). */
  readonly timers: number;
  /** V8 heap in use: the main thread (from /metrics) and the data-plane workers together. */
  readonly heapMainBytes: number;
  readonly heapWorkersBytes: number;
  readonly rssKiB: number;
  /** Still open in the daemon when sampled. */
  readonly openConnections: number;
  readonly udpSessions: number;
}

const TIMER_KIND = 'Timeout';

/** Split the workers' resource counts into timers and the other handles, summed over workers. */
export function splitResources(perWorker: readonly Readonly<Record<string, number>>[]): { handles: Record<string, number>; timers: number } {
  const handles: Record<string, number> = {};
  let timers = 0;
  for (const resources of perWorker) {
    for (const [kind, n] of Object.entries(resources)) {
      if (kind === TIMER_KIND) timers += n;
      else handles[kind] = (handles[kind] ?? 0) + n;
    }
  }
  return { handles, timers };
}

export function total(counts: Readonly<Record<string, number>>): number {
  return Object.values(counts).reduce((a, b) => a + b, 0);
}

const MIB = 1024 * 1024;

function mib(bytes: number): string {
  return (bytes / MIB).toFixed(1);
}

function count(n: number): string {
  return n.toLocaleString('en-US');
}

export function renderTable(samples: readonly SoakSample[]): string {
  const header = '| point | connections | datagrams | fds | handles | timers | heap main MiB | heap workers MiB | RSS MiB | open conns | udp sessions |';
  const rule = '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|';
  const rows = samples.map(
    (s) =>
      `| ${s.point} | ${count(s.connections)} | ${count(s.datagrams)} | ${s.fds} | ${total(s.handles)} | ${s.timers} | ${mib(s.heapMainBytes)} | ${mib(s.heapWorkersBytes)} | ${mib(s.rssKiB * 1024)} | ${s.openConnections} | ${s.udpSessions} |`,
  );
  return [header, rule, ...rows].join('\n');
}

export interface Verdict {
  readonly quantity: string;
  readonly ok: boolean;
  readonly line: string;
}

function exact(quantity: string, start: number, end: number, detail = ''): Verdict {
  const ok = start === end;
  return { quantity, ok, line: `${quantity}: start ${start}, end ${end}${detail} - ${ok ? 'ok' : 'NOT BACK'} (must be equal)` };
}

function within(quantity: string, start: number, end: number, tolerancePercent: number, show: (n: number) => string): Verdict {
  const change = start === 0 ? (end === 0 ? 0 : Infinity) : ((end - start) / start) * 100;
  const ok = change <= tolerancePercent;
  const sign = change >= 0 ? '+' : '';
  return {
    quantity,
    ok,
    line: `${quantity}: start ${show(start)}, end ${show(end)} (${sign}${change.toFixed(1)}%) - ${ok ? 'ok' : 'NOT BACK'} (at most +${tolerancePercent}%)`,
  };
}

/** Kinds whose count differs between two handle maps, e.g. ` (TCPSocketWrap 0 -> 3)`. */
export function handleDifference(start: Readonly<Record<string, number>>, end: Readonly<Record<string, number>>): string {
  const kinds = [...new Set([...Object.keys(start), ...Object.keys(end)])].sort();
  const changed = kinds.filter((k) => (start[k] ?? 0) !== (end[k] ?? 0)).map((k) => `${k} ${start[k] ?? 0} -> ${end[k] ?? 0}`);
  return changed.length === 0 ? '' : ` (${changed.join(', ')})`;
}

export function verdicts(start: SoakSample, end: SoakSample, tolerancePercent: number): Verdict[] {
  const handleDetail = handleDifference(start.handles, end.handles);
  const handles = exact('handles', total(start.handles), total(end.handles), handleDetail);
  return [
    exact('fds', start.fds, end.fds),
    // Equal totals with a kind moved are still a difference.
    handleDetail === '' ? handles : { ...handles, ok: false, line: handles.line.replace(' - ok ', ' - NOT BACK ') },
    exact('timers', start.timers, end.timers),
    within('heap (main thread)', start.heapMainBytes, end.heapMainBytes, tolerancePercent, (n) => `${mib(n)} MiB`),
    within('heap (data-plane workers)', start.heapWorkersBytes, end.heapWorkersBytes, tolerancePercent, (n) => `${mib(n)} MiB`),
    within('RSS', start.rssKiB, end.rssKiB, tolerancePercent, (n) => `${mib(n * 1024)} MiB`),
  ];
}
