/**
 * The state file's copy of discovered answers: kept beside operators' changes, read back as
 * written, optional (older files have none), and bounded.
 */
import { describe, expect, it } from 'vitest';
import { EMPTY_RUNTIME_STATE } from '../../../src/controlplane/runtime-state.ts';
import { MAX_STORED_ADDRESSES, parseStateText, serializeState, type StateFileContent } from '../../../src/controlplane/state-file.ts';

const address = (i: number) => ({ address: `10.0.${Math.floor(i / 250)}.${(i % 250) + 1}:80`, weight: 1, tier: 0, condition: 'ready' as const });
const WITH_ANSWER: StateFileContent = {
  ...EMPTY_RUNTIME_STATE,
  discovered: { api: { query: '["dns","srv","_api._tcp.example",null,null]', answered_at: '2026-12-06T10:00:00.000Z', answer: [address(0), { ...address(1), tier: 1, weight: 300 }] } },
};

describe('state file: discovered answers', () => {
  it('are read back as written', () => {
    expect(parseStateText(serializeState(WITH_ANSWER))).toEqual(WITH_ANSWER);
  });

  it('are written as they are now when one is replaced between writes, the others unchanged', () => {
    const api = WITH_ANSWER.discovered!['api']!;
    const web = { query: 'q', answered_at: '2026-12-06T10:00:00.000Z', answer: [address(5)] };
    serializeState({ ...WITH_ANSWER, discovered: { api, web } });
    const replaced = { ...web, answered_at: '2026-12-06T11:00:00.000Z', answer: [address(6), address(7)] };
    const state: StateFileContent = { ...WITH_ANSWER, discovered: { api, web: replaced } };
    expect(parseStateText(serializeState(state))).toEqual(state);
  });

  it('are optional: a file without them reads as before', () => {
    expect(parseStateText(serializeState(EMPTY_RUNTIME_STATE))).toEqual(EMPTY_RUNTIME_STATE);
  });

  const cases: { name: string; answer: unknown[]; problem: RegExp }[] = [
    { name: 'more addresses than the bound', answer: Array.from({ length: MAX_STORED_ADDRESSES + 1 }, (_, i) => address(i)), problem: /^unexpected content at discovered\.api\.answer: Too big/ },
    { name: 'an address without a port', answer: [{ ...address(0), address: '10.0.0.1' }], problem: /discovered\.api\.answer\.0\.address: expected host:port/ },
    { name: 'an unknown condition', answer: [{ ...address(0), condition: 'gone' }], problem: /discovered\.api\.answer\.0\.condition/ },
  ];
  for (const c of cases) {
    it(`refuse the file with ${c.name}`, () => {
      const text = serializeState({ ...EMPTY_RUNTIME_STATE, discovered: { api: { query: 'q', answered_at: 'now', answer: c.answer as never } } });
      expect(parseStateText(text)).toMatch(c.problem);
    });
  }
});
