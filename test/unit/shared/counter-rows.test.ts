import { describe, expect, it } from 'vitest';
import { rowWidth } from '../../../src/shared/counters.ts';

describe('rowWidth: a counter row is as wide as its field table', () => {
  it.each([
    { fields: { a: 0 }, width: 1 },
    { fields: { a: 0, b: 1, c: 2 }, width: 3 },
    { fields: { c: 2, a: 0, b: 1 }, width: 3 },
  ])('$fields -> $width', ({ fields, width }) => {
    expect(rowWidth(fields)).toBe(width);
  });

  it.each([
    { fields: { a: 0, b: 2 }, why: 'a gap' },
    { fields: { a: 0, b: 0 }, why: 'a field used twice' },
    { fields: { a: 1 }, why: 'not starting at 0' },
  ])('refuses $why', ({ fields }) => {
    expect(() => rowWidth(fields)).toThrow(/counter fields must be 0\.\./);
  });
});
