/**
 * Process memory at idle (issue #18's "process RSS at idle, 2 workers, demo config"): a
 * fresh daemon, started by bin/sluice, on the shipped config.yaml with its demo backends, measured by
 * bench/idle-rss.ts (RSS and PSS from /proc/PID/smaps_rollup when ready and idle, after a
 * load run, after an idle pause), and beside it a fresh HAProxy with as many threads, idle,
 * for reference. Fresh processes each round: memory a process once used is not given back.
 */
import { type Rollup, measureOnce, readRollup } from '../idle-rss.ts';
import { SLUICE_BIN, SLUICE_CLI } from '../peers/sluice.ts';
import type { Target } from '../peers/target.ts';
import type { Metrics } from './http-load.ts';

/** The shipped config's target: 2 data-plane workers whatever the bench's --workers. */
export const IDLE_RSS_WORKERS = 2;
const CONCURRENCY = 64;

const mib = (kib: number): number => kib / 1024;

export interface IdleRssLoad {
  readonly connections: number;
  readonly idleMs: number;
}

export async function runSluiceIdleRss(load: IdleRssLoad, log: (line: string) => void): Promise<Metrics> {
  const rows = await measureOnce({
    workers: IDLE_RSS_WORKERS,
    connections: load.connections,
    concurrency: CONCURRENCY,
    idleMs: load.idleMs,
    cli: SLUICE_CLI,
    // As installs start it: bin/sluice sets what it sets before node starts.
    bin: SLUICE_BIN,
    env: {},
    traceModules: false,
    mappings: false,
    print: (line) => log(`idle_rss sluice: ${line.trim()}`),
  });
  const [ready, afterLoad, afterIdle] = rows.map((r) => r.rollup);
  if (ready === undefined || afterLoad === undefined || afterIdle === undefined) throw new Error(`idle-rss measured ${rows.length} phases, expected 3`);
  return {
    rss_idle_mib: mib(ready.rssKiB),
    pss_idle_mib: mib(ready.pssKiB),
    rss_after_load_mib: mib(afterLoad.rssKiB),
    rss_after_idle_mib: mib(afterIdle.rssKiB),
    pss_after_idle_mib: mib(afterIdle.pssKiB),
    threads: ready.threads,
  };
}

/** A proxy that has served nothing: its memory as it stands. One process (HAProxy runs -db). */
export function idleRollup(target: Target): Metrics {
  if (target.pid === undefined) throw new Error(`${target.name} has no process`);
  const rollup: Rollup = readRollup(target.pid);
  return { rss_idle_mib: mib(rollup.rssKiB), pss_idle_mib: mib(rollup.pssKiB), threads: rollup.threads };
}
