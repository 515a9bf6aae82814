import { SluiceError } from '../shared/errors.ts';

/**
 * Rows of the listener counter table, by listener name. A name keeps its row for the life
 * of the process (a listener removed by a reload and added back continues its totals), so
 * counters never go backwards.
 */
export class ListenerSlots {
  private readonly byName = new Map<string, number>();
  readonly capacity: number;

  constructor(capacity: number) {
    this.capacity = capacity;
  }

  /** Rows taken once every name in `names` has one (names keep theirs for the process's life). */
  neededFor(names: readonly string[]): number {
    return this.byName.size + new Set(names.filter((n) => !this.byName.has(n))).size;
  }

  slotFor(name: string): number {
    const known = this.byName.get(name);
    if (known !== undefined) return known;
    if (this.byName.size >= this.capacity) {
      throw new SluiceError('SLUICE_CONFIG_INVALID', `too many listener names over this process's life (limit ${this.capacity}); restart to reset`);
    }
    const slot = this.byName.size;
    this.byName.set(name, slot);
    return slot;
  }
}
