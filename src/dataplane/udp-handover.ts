/**
 * UDP sessions across a handover (see supervisor/handover.ts), the data plane's two halves:
 *
 * - HeldDatagrams: the new process binds its UDP listeners before the old one has handed its
 *   sessions over. The kernel may hash a client to the new socket at once; a datagram served
 *   then would start a session on a freshly picked backend. So the new listener holds what it
 *   receives (bounded, in arrival order) until the sessions arrive, then serves it.
 * - HandedOverAffinities: the old process's sessions as client -> backend. A client's first
 *   datagram on the new side starts its session on that backend (if it is still eligible),
 *   once; an entry lapses when its session would have timed out on the old side.
 *
 * Pure: time is an argument (ms, the caller's monotonic clock).
 */
import type dgram from 'node:dgram';
import type { UdpHandoverSession } from '../shared/messages.ts';

/** Datagrams a held listener keeps per worker; more are dropped (and counted by the caller). */
export const HELD_DATAGRAMS_MAX = 4096;

export interface HeldDatagram {
  readonly datagram: Buffer;
  readonly client: dgram.RemoteInfo;
}

export class HeldDatagrams {
  private readonly queue: HeldDatagram[] = [];
  private bytes = 0;
  private readonly maxDatagrams: number;
  private readonly maxBytes: number;

  constructor(maxDatagrams: number, maxBytes: number) {
    this.maxDatagrams = maxDatagrams;
    this.maxBytes = maxBytes;
  }

  get size(): number {
    return this.queue.length;
  }

  /** False when full: the caller drops the datagram. */
  push(datagram: Buffer, client: dgram.RemoteInfo): boolean {
    if (this.queue.length >= this.maxDatagrams || this.bytes + datagram.length > this.maxBytes) return false;
    this.queue.push({ datagram, client });
    this.bytes += datagram.length;
    return true;
  }

  /** Everything held, oldest first; the queue is empty after. */
  take(): HeldDatagram[] {
    this.bytes = 0;
    return this.queue.splice(0);
  }
}

export interface Affinity {
  readonly cluster: string;
  readonly backend: string;
  /** When the session would have timed out on the old side. */
  readonly expiresAt: number;
}

export class HandedOverAffinities {
  private readonly byClient = new Map<string, Affinity>();
  /** The latest expiry: after it, the whole table is dropped. */
  private until = 0;

  /**
   * At most `capacity` entries (the listener's max_sessions), the most recently active first,
   * as the old side exported them; sessions already past `sessionTimeoutMs` are left out.
   */
  constructor(sessions: readonly UdpHandoverSession[], now: number, sessionTimeoutMs: number, capacity: number) {
    for (const s of sessions) {
      if (this.byClient.size >= capacity) break;
      if (s.idleMs >= sessionTimeoutMs || this.byClient.has(s.client)) continue;
      const expiresAt = now + sessionTimeoutMs - Math.max(0, s.idleMs);
      this.byClient.set(s.client, { cluster: s.cluster, backend: s.backend, expiresAt });
      if (expiresAt > this.until) this.until = expiresAt;
    }
  }

  get size(): number {
    return this.byClient.size;
  }

  /** The client's handed-over backend, once: the entry is gone after. */
  take(client: string, now: number): Affinity | undefined {
    if (now >= this.until) {
      this.byClient.clear();
      return undefined;
    }
    const affinity = this.byClient.get(client);
    if (affinity === undefined) return undefined;
    this.byClient.delete(client);
    return affinity.expiresAt > now ? affinity : undefined;
  }
}

/** The sessions to hand over, most recently active first, at most `limit`. */
export function handoverSessions(
  leastRecentFirst: readonly { key: string; lastActive: number; route: { name: string }; backend: { id: string } }[],
  now: number,
  limit: number,
): UdpHandoverSession[] {
  const out: UdpHandoverSession[] = [];
  for (let i = leastRecentFirst.length - 1; i >= 0 && out.length < limit; i--) {
    const s = leastRecentFirst[i];
    if (s === undefined) continue;
    out.push({ client: s.key, cluster: s.route.name, backend: s.backend.id, idleMs: Math.max(0, Math.round(now - s.lastActive)) });
  }
  return out;
}
