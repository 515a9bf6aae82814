import { describe, expect, it } from 'vitest';
import { EMPTY_STATE, expire, reconcile } from '../../../src/controlplane/discovery/reconciler.ts';
import type { DiscoveryState, HoldPolicy } from '../../../src/controlplane/discovery/reconciler.ts';
import type { DiscoveredEndpoint, DiscoveryResult } from '../../../src/controlplane/discovery/types.ts';

const X = '10.0.0.1:80';
const Y = '10.0.0.2:80';

function ep(address: string, weight = 1, tier = 0): DiscoveredEndpoint {
  return { address, weight, tier, condition: 'ready' };
}
function answer(...endpoints: DiscoveredEndpoint[]): DiscoveryResult {
  return { kind: 'answer', endpoints };
}
const ERROR: DiscoveryResult = { kind: 'error', message: 'timeout' };
const TICK = 'tick' as const;

/** One step: at `at` ms, a report (or a tick), then what the cluster should hold (`X serve`, `Y drain`, ...) and `changed`. */
type Step = [at: number, input: DiscoveryResult | typeof TICK, expected: string[], changed: boolean];

function run(steps: readonly Step[], policy: HoldPolicy): void {
  let state: DiscoveryState = EMPTY_STATE;
  for (const [index, [at, input, expected, changed]] of steps.entries()) {
    const out = input === TICK ? expire(state, at, policy) : reconcile(state, input, at, policy);
    const seen = out.desired.map((d) => (d.action === 'serve' ? `${d.address} serve w${d.weight} t${d.tier}` : `${d.address} ${d.action}`));
    expect({ step: index, at, seen, changed: out.changed }).toEqual({ step: index, at, seen: expected, changed });
    state = out.state;
  }
}

const HOLD = { holdObsolete: 30_000, holdFailure: 0 };

describe('reconcile', () => {
  const sequences: [string, HoldPolicy, Step[]][] = [
    [
      'a repeated answer changes nothing; a new weight or tier does',
      HOLD,
      [
        [0, answer(ep(X), ep(Y)), [`${X} serve w1 t0`, `${Y} serve w1 t0`], true],
        [5_000, answer(ep(Y), ep(X)), [`${X} serve w1 t0`, `${Y} serve w1 t0`], false],
        [10_000, answer(ep(X, 5), ep(Y)), [`${X} serve w5 t0`, `${Y} serve w1 t0`], true],
        [15_000, answer(ep(X, 5), ep(Y, 1, 1)), [`${X} serve w5 t0`, `${Y} serve w1 t1`], true],
      ],
    ],
    [
      'an address gone from an answer drains at once and is removed after hold_obsolete',
      HOLD,
      [
        [0, answer(ep(X), ep(Y)), [`${X} serve w1 t0`, `${Y} serve w1 t0`], true],
        [1_000, answer(ep(Y)), [`${X} drain`, `${Y} serve w1 t0`], true],
        [20_000, answer(ep(Y)), [`${X} drain`, `${Y} serve w1 t0`], false],
        [31_000, answer(ep(Y)), [`${X} remove`, `${Y} serve w1 t0`], true],
        [36_000, answer(ep(Y)), [`${Y} serve w1 t0`], false],
      ],
    ],
    [
      'an address back within hold_obsolete is served again as it was',
      HOLD,
      [
        [0, answer(ep(X, 3), ep(Y)), [`${X} serve w3 t0`, `${Y} serve w1 t0`], true],
        [1_000, answer(ep(Y)), [`${X} drain`, `${Y} serve w1 t0`], true],
        [29_000, answer(ep(X, 3), ep(Y)), [`${X} serve w3 t0`, `${Y} serve w1 t0`], true],
        // Its hold starts over when it leaves again.
        [40_000, answer(ep(Y)), [`${X} drain`, `${Y} serve w1 t0`], true],
        [69_000, TICK, [`${X} drain`, `${Y} serve w1 t0`], false],
        [70_000, TICK, [`${X} remove`, `${Y} serve w1 t0`], true],
      ],
    ],
    [
      'errors keep the last set for ever with hold_failure 0, and the next answer counts',
      HOLD,
      [
        [0, answer(ep(X), ep(Y)), [`${X} serve w1 t0`, `${Y} serve w1 t0`], true],
        [5_000, ERROR, [`${X} serve w1 t0`, `${Y} serve w1 t0`], false],
        [86_400_000, ERROR, [`${X} serve w1 t0`, `${Y} serve w1 t0`], false],
        [86_401_000, answer(ep(X)), [`${X} serve w1 t0`, `${Y} drain`], true],
      ],
    ],
    [
      'an address already draining is still removed on time while lookups fail',
      HOLD,
      [
        [0, answer(ep(X), ep(Y)), [`${X} serve w1 t0`, `${Y} serve w1 t0`], true],
        [1_000, answer(ep(X)), [`${X} serve w1 t0`, `${Y} drain`], true],
        [10_000, ERROR, [`${X} serve w1 t0`, `${Y} drain`], false],
        [31_000, ERROR, [`${X} serve w1 t0`, `${Y} remove`], true],
      ],
    ],
    [
      'with hold_failure, errors that last that long drain the set, removed after hold_obsolete',
      { holdObsolete: 30_000, holdFailure: 60_000 },
      [
        [0, answer(ep(X)), [`${X} serve w1 t0`], true],
        [10_000, ERROR, [`${X} serve w1 t0`], false],
        [69_000, ERROR, [`${X} serve w1 t0`], false],
        [70_000, TICK, [`${X} drain`], true],
        [99_000, ERROR, [`${X} drain`], false],
        [100_000, ERROR, [`${X} remove`], true],
        [105_000, ERROR, [], false],
        [110_000, answer(ep(X)), [`${X} serve w1 t0`], true],
      ],
    ],
    [
      'an empty answer (NXDOMAIN) empties the cluster only after hold_obsolete',
      HOLD,
      [
        [0, answer(ep(X), ep(Y)), [`${X} serve w1 t0`, `${Y} serve w1 t0`], true],
        [1_000, answer(), [`${X} serve w1 t0`, `${Y} serve w1 t0`], false],
        [30_000, answer(), [`${X} serve w1 t0`, `${Y} serve w1 t0`], false],
        [31_000, answer(), [`${X} drain`, `${Y} drain`], true],
        [60_000, TICK, [`${X} drain`, `${Y} drain`], false],
        [61_000, TICK, [`${X} remove`, `${Y} remove`], true],
        [70_000, answer(), [], false],
      ],
    ],
    [
      'a spurious empty answer between good ones does not flap',
      HOLD,
      [
        [0, answer(ep(X)), [`${X} serve w1 t0`], true],
        [5_000, answer(), [`${X} serve w1 t0`], false],
        [10_000, ERROR, [`${X} serve w1 t0`], false],
        [15_000, answer(ep(X)), [`${X} serve w1 t0`], false],
        // The empty run starts over: it is the consecutive run that must last hold_obsolete.
        [20_000, answer(), [`${X} serve w1 t0`], false],
        [49_000, answer(), [`${X} serve w1 t0`], false],
      ],
    ],
    [
      'errors in an empty run do not reset its clock',
      HOLD,
      [
        [0, answer(ep(X)), [`${X} serve w1 t0`], true],
        [1_000, answer(), [`${X} serve w1 t0`], false],
        [20_000, ERROR, [`${X} serve w1 t0`], false],
        [31_000, answer(), [`${X} drain`], true],
      ],
    ],
    [
      'a first report that is an error or empty leaves the cluster empty',
      HOLD,
      [
        [0, ERROR, [], false],
        [1_000, answer(), [], false],
        [40_000, answer(), [], false],
        [41_000, answer(ep(X)), [`${X} serve w1 t0`], true],
      ],
    ],
  ];

  it.each(sequences)('%s', (_name, policy, steps) => {
    run(steps, policy);
  });

  it('says when the next hold expires', () => {
    const first = reconcile(EMPTY_STATE, answer(ep(X), ep(Y)), 0, HOLD);
    expect(first.wakeAt).toBeUndefined();
    const second = reconcile(first.state, answer(ep(Y)), 1_000, HOLD);
    expect(second.wakeAt).toBe(31_000);
    const empty = reconcile(second.state, answer(), 2_000, HOLD);
    expect(empty.wakeAt).toBe(31_000);
    const failing = reconcile(first.state, ERROR, 5_000, { holdObsolete: 30_000, holdFailure: 60_000 });
    expect(failing.wakeAt).toBe(65_000);
  });
});
