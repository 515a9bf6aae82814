import { describe, expect, it } from 'vitest';
import { sumSamples } from '../../../bench/lib/prom-text.ts';

const TEXT = `# HELP sluice_snapshot_publishes_total Routing snapshots the control plane published.
# TYPE sluice_snapshot_publishes_total counter
sluice_snapshot_publishes_total 42
sluice_snapshot_publishes_total_created 1700000000
sluice_discovery_refreshes_total{cluster="a",result="answer"} 10
sluice_discovery_refreshes_total{cluster="a",result="error"} 2
sluice_discovery_refreshes_total{cluster="b",result="answer"} 5
sluice_discovery_refreshes_total{cluster="b",result="error"} 1
`;

describe('sumSamples', () => {
  it.each([
    ['an unlabelled counter, not its _created sibling', 'sluice_snapshot_publishes_total', [], 42],
    ['every labelled sample of a family', 'sluice_discovery_refreshes_total', [], 18],
    ['only the samples carrying a label', 'sluice_discovery_refreshes_total', ['result="error"'], 3],
    ['samples carrying every label given', 'sluice_discovery_refreshes_total', ['cluster="b"', 'result="answer"'], 5],
    ['0 for a family the text lacks', 'sluice_missing_total', [], 0],
    ['0 for a name that is only a prefix of a family', 'sluice_snapshot_publishes', [], 0],
  ] as const)('sums %s', (_label, family, labels, expected) => {
    expect(sumSamples(TEXT, family, labels)).toBe(expected);
  });
});
