/**
 * Host names of backends, resolved where a decision needs it (an admin add, a first verdict),
 * never on the data path: the data plane connects to the name and the OS resolves it then.
 * Bounded: a lookup that has not answered within the timeout counts as a failure.
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { canonicalHost } from '../shared/address.ts';

export type Resolution = { readonly ok: true; readonly addresses: readonly string[] } | { readonly ok: false; readonly reason: string };

export type Lookup = (host: string) => Promise<readonly { readonly address: string }[]>;

const LOOKUP_TIMEOUT_MS = 2_000;

const systemLookup: Lookup = async (host) => dnsLookup(host, { all: true });

export async function resolveHost(host: string, lookup: Lookup = systemLookup, timeoutMs = LOOKUP_TIMEOUT_MS): Promise<Resolution> {
  if (isIP(host) !== 0) return { ok: true, addresses: [canonicalHost(host)] };
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<Resolution>((resolve) => {
    timer = setTimeout(() => resolve({ ok: false, reason: `no answer within ${timeoutMs} ms` }), timeoutMs);
  });
  const answer = lookup(host).then(
    (found): Resolution => (found.length === 0 ? { ok: false, reason: 'no address' } : { ok: true, addresses: found.map((a) => canonicalHost(a.address)) }),
    (error: unknown): Resolution => ({ ok: false, reason: (error as NodeJS.ErrnoException).code ?? (error as Error).message }),
  );
  try {
    return await Promise.race([answer, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
