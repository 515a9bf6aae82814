import { describe, expect, it } from 'vitest';
import { Readiness } from '../../../src/shared/readiness.ts';

describe('Readiness', () => {
  const cases: { name: string; steps: (r: Readiness) => void; expected: ReturnType<Readiness['view']> }[] = [
    { name: 'starting while a condition is unmet', steps: () => undefined, expected: { status: 'starting', waiting_for: ['listeners'] } },
    { name: 'ready once every condition is met', steps: (r) => r.met('listeners'), expected: { status: 'ready', waiting_for: [] } },
    {
      name: 'a condition added before start waits too',
      steps: (r) => {
        r.require('discovery:api');
        r.met('listeners');
      },
      expected: { status: 'starting', waiting_for: ['discovery:api'] },
    },
    { name: 'draining wins over starting', steps: (r) => r.drain(), expected: { status: 'draining', waiting_for: [] } },
    {
      name: 'draining is final',
      steps: (r) => {
        r.met('listeners');
        r.drain();
        r.met('listeners');
      },
      expected: { status: 'draining', waiting_for: [] },
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const readiness = new Readiness(['listeners']);
      c.steps(readiness);
      expect(readiness.view()).toEqual(c.expected);
    });
  }
});
