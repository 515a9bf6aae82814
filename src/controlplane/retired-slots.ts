/**
 * Counter slots of backends that left routing but may still have open connections: a
 * slot goes back to the allocator only once no worker counts a connection in it, so a new
 * backend never inherits an old one's connections.
 */
import type { CounterTables } from '../shared/counters.ts';
import type { RetiredBackend } from './backend-registry.ts';
import type { SlotAllocator } from './slot-allocator.ts';

export class RetiredSlots {
  private readonly waiting = new Map<number, RetiredBackend>();
  private readonly counters: CounterTables;
  private readonly slots: SlotAllocator;

  constructor(counters: CounterTables, slots: SlotAllocator) {
    this.counters = counters;
    this.slots = slots;
  }

  add(retired: readonly RetiredBackend[]): void {
    for (const backend of retired) this.waiting.set(backend.slot, backend);
  }

  get size(): number {
    return this.waiting.size;
  }

  /** Release every waiting slot whose connections have all closed. */
  sweep(): void {
    for (const [slot] of this.waiting) {
      if (this.counters.activeConnections(slot) > 0) continue;
      this.waiting.delete(slot);
      this.counters.resetBackendSlot(slot);
      this.slots.release(slot);
    }
  }
}
