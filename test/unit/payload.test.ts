import { describe, expect, it } from 'vitest';
import { decodePayload, payloadProblem } from '../../src/shared/payload.ts';

describe('health-check payloads', () => {
  it.each<[string, number[]]>([
    ['ping', [0x70, 0x69, 0x6e, 0x67]],
    ['é', [0xc3, 0xa9]],
    ['PING\r\n', [0x50, 0x49, 0x4e, 0x47, 0x0d, 0x0a]],
    ['hex:00ff', [0x00, 0xff]],
    ['hex:AB cd 01', [0xab, 0xcd, 0x01]],
    ['HEX:00', [0x48, 0x45, 0x58, 0x3a, 0x30, 0x30]],
  ])('sends %j as its bytes', (text, bytes) => {
    expect(payloadProblem(text)).toBeUndefined();
    expect([...decodePayload(text)]).toEqual(bytes);
  });

  it.each<[string, string]>([
    ['', 'must not be empty'],
    ['hex:', 'expected hex: and pairs of hex digits, like hex:0a1b'],
    ['hex:abc', 'expected hex: and pairs of hex digits, like hex:0a1b'],
    ['hex:zz', 'expected hex: and pairs of hex digits, like hex:0a1b'],
    ['hex:0x0a', 'expected hex: and pairs of hex digits, like hex:0a1b'],
  ])('refuses %j: %s', (text, problem) => {
    expect(payloadProblem(text)).toBe(problem);
  });
});
