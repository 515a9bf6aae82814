/**
 * The DNS discovery source: looks the name up, turns the records into endpoints and reports
 * them; asks again when the answer's TTL (clamped into the refresh window) runs out, or after
 * a jittered back-off when the lookup failed. Runs in the control plane, never on a data-plane
 * worker; it only observes: holds and "keep the last set" are the reconciler's.
 * Timers are unref'd (a source never keeps the process alive); stop() aborts the lookup in
 * flight and waits for it, so no socket or timer outlives it.
 */
import net from 'node:net';
import type { Answer } from 'dns-packet';
import type { DnsDiscoveryConfig } from '../../shared/config/discovery-schema.ts';
import type { HostPort } from '../../shared/address.ts';
import { parseResolvers, queryDns, systemResolvers } from './dns-client.ts';
import type { DnsQuestionType } from './dns-client.ts';
import { delayAfterAnswer, delayAfterError } from './refresh-policy.ts';
import { addressEndpoints, normalizeName, srvEndpoints } from './srv.ts';
import type { SrvRecord } from './srv.ts';
import type { DiscoveredEndpoint, DiscoveryResult, DiscoverySource } from './types.ts';

/** Per resolver and transport. */
const DEFAULT_QUERY_TIMEOUT_MS = 2_000;
/** SRV targets the answer gave no address for, looked up one by one: at most this many, */
export const MAX_TARGET_LOOKUPS = 1_024;
/** this many at a time. */
const TARGET_LOOKUP_CONCURRENCY = 8;

export interface LookupOptions {
  readonly resolvers: readonly HostPort[];
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
}

export interface DnsSourceOptions {
  readonly timeoutMs?: number;
  readonly random?: () => number;
  /** Where the system's resolvers are read from when the config names none. */
  readonly resolvConf?: string;
}

export class DnsSource implements DiscoverySource {
  readonly #config: DnsDiscoveryConfig;
  readonly #timeoutMs: number;
  readonly #random: () => number;
  readonly #resolvConf: string | undefined;
  readonly #abort = new AbortController();
  #timer: NodeJS.Timeout | undefined;
  #inFlight: Promise<void> | undefined;
  #failures = 0;

  constructor(config: DnsDiscoveryConfig, options: DnsSourceOptions = {}) {
    this.#config = config;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS;
    this.#random = options.random ?? Math.random;
    this.#resolvConf = options.resolvConf;
  }

  start(report: (result: DiscoveryResult) => void): void {
    if (this.#abort.signal.aborted) throw new Error('a stopped DnsSource cannot start again');
    this.#refresh(report);
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    clearTimeout(this.#timer);
    await this.#inFlight;
  }

  #refresh(report: (result: DiscoveryResult) => void): void {
    this.#inFlight = this.#lookup().then((result) => {
      if (this.#abort.signal.aborted) return;
      const delay = result.kind === 'answer' ? this.#afterAnswer(result.ttlSeconds) : delayAfterError(++this.#failures, this.#config.refresh, this.#random);
      // Scheduled before reporting: a consumer that throws fails loudly but does not stop the refreshes.
      this.#timer = setTimeout(() => this.#refresh(report), delay).unref();
      report(result);
    });
  }

  #afterAnswer(ttlSeconds: number | undefined): number {
    this.#failures = 0;
    return delayAfterAnswer(ttlSeconds, this.#config.refresh);
  }

  async #lookup(): Promise<DiscoveryResult> {
    // Read on every refresh: the system's resolvers may change under a running daemon.
    const resolvers = this.#config.resolvers === undefined ? await systemResolvers(this.#resolvConf) : parseResolvers(this.#config.resolvers);
    try {
      return await lookupEndpoints(this.#config, { resolvers, timeoutMs: this.#timeoutMs, signal: this.#abort.signal });
    } catch (error) {
      // Not expected (lookups report failures as results), but a refresh must never end the loop.
      return { kind: 'error', message: `${this.#config.name}: ${error instanceof Error ? error.message : String(error)}` };
    }
  }
}

/** One refresh: the question, then (SRV) the targets' addresses, as one result. */
export async function lookupEndpoints(config: Pick<DnsDiscoveryConfig, 'name' | 'record' | 'port'>, options: LookupOptions): Promise<DiscoveryResult> {
  if (config.record === 'srv') return lookupSrv(config.name, options);
  const type = config.record === 'a' ? 'A' : 'AAAA';
  const lookup = await lookupAddresses(config.name, type, options);
  if (!lookup.ok) return { kind: 'error', message: lookup.message };
  return answer(addressEndpoints(lookup.ips, config.port ?? 0), lookup.ttl);
}

async function lookupSrv(name: string, options: LookupOptions): Promise<DiscoveryResult> {
  const lookup = await queryDns(name, 'SRV', options);
  if (!lookup.ok) return { kind: 'error', message: `${name} SRV: ${lookup.message}` };
  const records: (SrvRecord & { ttl: number })[] = [];
  for (const record of lookup.answers) {
    if (record.type !== 'SRV') continue;
    const { priority = 0, weight = 0, port, target } = record.data;
    records.push({ priority, weight, port, target, ttl: record.ttl ?? 0 });
  }
  if (records.length === 0) return answer([], lookup.negativeTtl);
  const known = addressesByName(lookup.additionals);
  const ttls = records.map((record) => record.ttl);
  const missing = [...new Set(records.map((record) => normalizeName(record.target)))].filter((target) => target !== '' && net.isIP(target) === 0 && !known.has(target));
  if (missing.length > MAX_TARGET_LOOKUPS) {
    return { kind: 'error', message: `${name} SRV: ${missing.length} targets without addresses in the answer; at most ${MAX_TARGET_LOOKUPS} are looked up` };
  }
  const failure = await resolveTargets(missing, known, options);
  if (failure !== undefined) return { kind: 'error', message: `${name} SRV target ${failure}` };
  const addressesOf = (target: string): readonly string[] => {
    const normal = normalizeName(target);
    return net.isIP(normal) !== 0 ? [normal] : (known.get(normal)?.ips ?? []);
  };
  // The answer is as fresh as its shortest-lived part: an SRV record or a target's address.
  for (const target of new Set(records.map((record) => normalizeName(record.target)))) {
    const ttl = known.get(target)?.ttl;
    if (ttl !== undefined) ttls.push(ttl);
  }
  return answer(srvEndpoints(records, addressesOf), Math.min(...ttls));
}

interface Addresses {
  readonly ips: string[];
  /** Seconds; none for a target that has no addresses and whose answer gave no SOA. */
  readonly ttl?: number;
}

/** A and AAAA records of the additional section, by owner name. */
function addressesByName(records: readonly Answer[]): Map<string, Addresses> {
  const byName = new Map<string, Addresses>();
  for (const record of records) {
    if (record.type !== 'A' && record.type !== 'AAAA') continue;
    const key = normalizeName(record.name);
    const entry = byName.get(key);
    byName.set(key, { ips: [...(entry?.ips ?? []), record.data], ttl: Math.min(entry?.ttl ?? Number.POSITIVE_INFINITY, record.ttl ?? 0) });
  }
  return byName;
}

/** Looks up A and AAAA of each target into `known`; the first failure, if any. */
async function resolveTargets(targets: readonly string[], known: Map<string, Addresses>, options: LookupOptions): Promise<string | undefined> {
  let next = 0;
  let failure: string | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < targets.length) {
      const target = targets[next++] ?? '';
      const [v4, v6] = await Promise.all([lookupAddresses(target, 'A', options), lookupAddresses(target, 'AAAA', options)]);
      if (!v4.ok || !v6.ok) {
        failure ??= (!v4.ok ? v4 : (v6 as { message: string })).message;
        return;
      }
      const ttls = [v4.ttl, v6.ttl].filter((ttl) => ttl !== undefined);
      known.set(target, ttls.length === 0 ? { ips: [...v4.ips, ...v6.ips] } : { ips: [...v4.ips, ...v6.ips], ttl: Math.min(...ttls) });
    }
  };
  await Promise.all(Array.from({ length: Math.min(TARGET_LOOKUP_CONCURRENCY, targets.length) }, worker));
  return failure;
}

type AddressLookup = { ok: true; ips: string[]; ttl?: number } | { ok: false; message: string };

async function lookupAddresses(name: string, type: Extract<DnsQuestionType, 'A' | 'AAAA'>, options: LookupOptions): Promise<AddressLookup> {
  const lookup = await queryDns(name, type, options);
  if (!lookup.ok) return { ok: false, message: `${name} ${type}: ${lookup.message}` };
  // A recursive answer may lead with the CNAME chain; the addresses at its end are the ones.
  const ips: string[] = [];
  const ttls: number[] = [];
  for (const record of lookup.answers) {
    if (record.type !== type) continue;
    ips.push(record.data);
    ttls.push(record.ttl ?? 0);
  }
  const ttl = ttls.length === 0 ? lookup.negativeTtl : Math.min(...ttls);
  return ttl === undefined ? { ok: true, ips } : { ok: true, ips, ttl };
}

function answer(endpoints: readonly DiscoveredEndpoint[], ttlSeconds: number | undefined): DiscoveryResult {
  return ttlSeconds === undefined ? { kind: 'answer', endpoints } : { kind: 'answer', endpoints, ttlSeconds };
}
