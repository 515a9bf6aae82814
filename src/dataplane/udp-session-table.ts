/**
 * The UDP session table of one listener in one worker: client (address and port) → session, with the
 * sessions also on one doubly linked list ordered by last activity (least recent at the
 * head). That single order answers both questions the proxy asks:
 * - which sessions have been idle for the session timeout: a prefix of the list, so the
 *   idle sweep costs O(expired), never O(table);
 * - which session to evict when the table is full: the head (least recently used), O(1).
 *
 * Intrusive: the caller's session objects carry the list links, so a session costs no
 * allocation here beyond its Map entry. Pure: time is an argument (milliseconds from any
 * monotonic clock), so tests are tables without timers.
 *
 * What must stay true:
 * - `lastActive` never decreases along the list (a time that goes backwards is clamped to
 *   the tail's), so the expired sessions are always exactly a prefix;
 * - a session is in the Map if and only if it is on the list, at most once;
 * - `size` never exceeds `capacity` after `add` (the caller evicts first; `add` refuses).
 */
import type { ClientId } from './udp-client-id.ts';

export interface SessionNode {
  /** Client address and port, as the proxy spells it (handover, messages). */
  readonly key: string;
  /** What the table is indexed by (udp-client-id.ts): one per client address and port. */
  readonly id: ClientId;
  /** Time of the last datagram either way (ms, monotonic clock). */
  lastActive: number;
  /** List links; owned by the table. */
  older: SessionNode | undefined;
  newer: SessionNode | undefined;
  inTable: boolean;
}

export class SessionTable<Session extends SessionNode> {
  private readonly byId = new Map<ClientId, Session>();
  /** Least recently active. */
  private head: Session | undefined;
  /** Most recently active. */
  private tail: Session | undefined;
  private limit: number;

  constructor(capacity: number) {
    this.limit = validCapacity(capacity);
  }

  get size(): number {
    return this.byId.size;
  }

  get capacity(): number {
    return this.limit;
  }

  get full(): boolean {
    return this.byId.size >= this.limit;
  }

  /** Lower or raise the bound; the caller evicts (`oldest`) while `size > capacity`. */
  set capacity(capacity: number) {
    this.limit = validCapacity(capacity);
  }

  get(id: ClientId): Session | undefined {
    return this.byId.get(id);
  }

  /** The least recently active session (the next to evict or to expire), if any. */
  oldest(): Session | undefined {
    return this.head;
  }

  /**
   * Insert a new session as the most recent one. Throws if its key is present or the table
   * is full: both are caller bugs (look up first; evict `oldest()` first).
   */
  add(session: Session, now: number): void {
    if (session.inTable || this.byId.has(session.id)) throw new Error(`session ${session.key} is already in the table`);
    if (this.full) throw new Error(`session table is full (${this.limit}); evict before adding`);
    this.byId.set(session.id, session);
    session.inTable = true;
    session.lastActive = this.clamp(now);
    this.append(session);
  }

  /** Record activity: the session becomes the most recent. O(1). */
  touch(session: Session, now: number): void {
    if (!session.inTable) return;
    session.lastActive = this.clamp(now);
    if (this.tail === session) return;
    this.unlink(session);
    this.append(session);
  }

  /** Remove a session (no-op if it is not in the table). O(1). */
  remove(session: Session): void {
    if (!session.inTable) return;
    this.byId.delete(session.id);
    session.inTable = false;
    this.unlink(session);
  }

  /**
   * The oldest session if it has been idle for `idleMs` at `now` (then the caller removes
   * it and asks again), else undefined. Looping on this costs O(expired).
   */
  expired(now: number, idleMs: number): Session | undefined {
    const head = this.head;
    return head !== undefined && head.lastActive + idleMs <= now ? head : undefined;
  }

  /** When the oldest session will have been idle for `idleMs`, or undefined when empty. */
  nextExpiry(idleMs: number): number | undefined {
    return this.head === undefined ? undefined : this.head.lastActive + idleMs;
  }

  /** Every session, least recent first (a copy: callers may remove while iterating). */
  sessions(): Session[] {
    const out: Session[] = [];
    for (let node = this.head; node !== undefined; node = node.newer as Session | undefined) out.push(node);
    return out;
  }

  private clamp(now: number): number {
    const tail = this.tail;
    return tail !== undefined && now < tail.lastActive ? tail.lastActive : now;
  }

  private append(session: Session): void {
    session.older = this.tail;
    session.newer = undefined;
    if (this.tail === undefined) this.head = session;
    else this.tail.newer = session;
    this.tail = session;
  }

  private unlink(session: Session): void {
    const { older, newer } = session;
    if (older === undefined) this.head = newer as Session | undefined;
    else older.newer = newer;
    if (newer === undefined) this.tail = older as Session | undefined;
    else newer.older = older;
    session.older = undefined;
    session.newer = undefined;
  }
}

function validCapacity(capacity: number): number {
  if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`session table capacity must be an integer >= 1, got ${capacity}`);
  return capacity;
}
