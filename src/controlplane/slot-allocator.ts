/**
 * Hands out counter-table rows to backends. A freed row waits in quarantine until a later
 * snapshot has been published without it, so a data-plane worker still holding the old
 * snapshot can never count into a row that already belongs to another backend.
 */
export class SlotAllocator {
  readonly #capacity: number;
  private nextFresh = 0;
  private readonly free: number[] = [];
  private quarantined: number[] = [];

  constructor(capacity: number) {
    this.#capacity = capacity;
  }

  /** A free row, or -1 when all `capacity` rows are taken. */
  allocate(): number {
    const reused = this.free.pop();
    if (reused !== undefined) return reused;
    if (this.nextFresh >= this.#capacity) return -1;
    return this.nextFresh++;
  }

  /** Whether `allocate` would succeed now. */
  hasFree(): boolean {
    return this.free.length > 0 || this.nextFresh < this.#capacity;
  }

  /** Mark rows as taken when state is recovered from an existing snapshot. */
  claim(slot: number): void {
    if (slot >= this.nextFresh) {
      for (let s = this.nextFresh; s < slot; s++) this.free.push(s);
      this.nextFresh = slot + 1;
      return;
    }
    const i = this.free.indexOf(slot);
    if (i >= 0) this.free.splice(i, 1);
  }

  release(slot: number): void {
    this.quarantined.push(slot);
  }

  /** Called after each publish: rows released before it are now safe to reuse. */
  published(): void {
    this.free.push(...this.quarantined);
    this.quarantined = [];
  }

  /** Rows this allocator hands out at most. */
  get capacity(): number {
    return this.#capacity;
  }

  get used(): number {
    return this.nextFresh - this.free.length;
  }
}
