/**
 * Fuzzing the two parsers that read untrusted first bytes: 100,000 inputs each from a fixed
 * seed (deterministic; a failure names the input's index), half random bytes behind a valid
 * start, half mutations of valid samples. For every input:
 * - nothing escapes: the parser returns, and its answer is complete, need-more or invalid;
 * - complete means 0 < consumed <= input length, and a value that makes sense;
 * - need-more asks for more than the input has, and never more than the parser's bound;
 * - answers agree with prefixes: a prefix shorter than what a complete input consumed (or
 *   of a need-more input) is need-more, and its hint never points past the end of the
 *   complete item (a caller that waits for it cannot wait for bytes that never come).
 * Hangs would show as the test's timeout: every loop in the parsers is bounded by the input.
 */
import { isIP } from 'node:net';
import { describe, expect, it } from 'vitest';
import { encodeProxyHeader, MAX_V1_BYTES, MAX_V2_BYTES, parseProxyHeader } from '../../../src/dataplane/proxy-protocol.ts';
import type { ParseResult } from '../../../src/dataplane/parse-result.ts';
import { MAX_CLIENT_HELLO_STREAM_BYTES, parseClientHello } from '../../../src/dataplane/tls-client-hello.ts';
import { below, mutate, prng, randomBytes, type Random } from '../../helpers/fuzz.ts';
import { captureClientHello, clientHello, clientHelloBody, handshakeMessage, records } from '../../helpers/tls-hello.ts';

const INPUTS = 100_000;

interface FuzzTarget<T> {
  readonly parse: (bytes: Uint8Array) => ParseResult<T>;
  readonly maxNeeded: number;
  /** A problem with a complete value, or undefined. */
  readonly checkValue: (value: T) => string | undefined;
}

interface Tally {
  complete: number;
  'need-more': number;
  invalid: number;
}

function fuzz<T>(target: FuzzTarget<T>, inputs: (random: Random, i: number) => Buffer, seed: number): { tally: Tally; problems: string[] } {
  const random = prng(seed);
  const tally: Tally = { complete: 0, 'need-more': 0, invalid: 0 };
  const problems: string[] = [];
  const problem = (i: number, input: Buffer, message: string): void => {
    if (problems.length < 10) problems.push(`input ${i} (${input.toString('hex').slice(0, 120)}): ${message}`);
  };
  for (let i = 0; i < INPUTS; i++) {
    const input = inputs(random, i);
    let result: ParseResult<T>;
    try {
      result = target.parse(input);
    } catch (error) {
      problem(i, input, `threw ${String(error)}`);
      continue;
    }
    switch (result.kind) {
      case 'complete': {
        tally.complete++;
        if (!(result.consumed > 0 && result.consumed <= input.length)) problem(i, input, `consumed ${result.consumed}`);
        const bad = target.checkValue(result.value);
        if (bad !== undefined) problem(i, input, bad);
        // A prefix of a complete item must ask for more, and never past the item's end.
        const cut = below(random, result.consumed);
        const prefix = target.parse(input.subarray(0, cut));
        if (prefix.kind !== 'need-more') problem(i, input, `prefix of ${cut} bytes is ${prefix.kind}`);
        else if (prefix.needed > result.consumed) problem(i, input, `prefix of ${cut} bytes asks for ${prefix.needed} > ${result.consumed}`);
        break;
      }
      case 'need-more': {
        tally['need-more']++;
        if (!(result.needed > input.length && result.needed <= target.maxNeeded)) problem(i, input, `needs ${result.needed}`);
        const cut = below(random, input.length + 1);
        if (target.parse(input.subarray(0, cut)).kind !== 'need-more') problem(i, input, `prefix of ${cut} bytes is not need-more`);
        break;
      }
      case 'invalid':
        tally.invalid++;
        if (typeof result.reason !== 'string' || result.reason === '') problem(i, input, 'invalid without a reason');
        break;
      default:
        problem(i, input, `unknown kind ${JSON.stringify(result)}`);
    }
  }
  return { tally, problems };
}

const PORT_OK = (port: number): boolean => Number.isInteger(port) && port >= 0 && port <= 65535;

describe('fuzzing the PROXY protocol parser', () => {
  const samples = [
    encodeProxyHeader('v1', { address: '203.0.113.7', port: 5555 }, { address: '10.0.0.1', port: 80 }),
    encodeProxyHeader('v1', { address: '2001:db8::1', port: 1 }, { address: '::1', port: 65535 }),
    Buffer.from('PROXY UNKNOWN\r\n'),
    encodeProxyHeader('v2', { address: '203.0.113.7', port: 5555 }, { address: '10.0.0.1', port: 80 }),
    encodeProxyHeader('v2', { address: '2001:db8::1', port: 1 }, { address: '::1', port: 2 }),
    Buffer.concat([encodeProxyHeader('v2', { address: '1.2.3.4', port: 1 }, { address: '5.6.7.8', port: 2 }), Buffer.from('tail')]),
  ];
  // A v2 header with TLVs (length patched to cover them).
  const withTlvs = Buffer.concat([samples[3]!, Buffer.from([0x01, 0x00, 0x02, 0x68, 0x32, 0x04, 0x00, 0x00])]);
  withTlvs.writeUInt16BE(withTlvs.length - 16, 14);
  samples.push(withTlvs);
  const starts = [Buffer.from('PROXY '), Buffer.from('PROXY TCP4 '), samples[3]!.subarray(0, 16), samples[3]!.subarray(0, 12)];

  it('classifies 100,000 random and mutated inputs without throwing or overreaching', () => {
    const { tally, problems } = fuzz(
      {
        parse: parseProxyHeader,
        maxNeeded: Math.max(MAX_V1_BYTES, MAX_V2_BYTES),
        checkValue: (header) => {
          for (const end of [header.source, header.destination]) {
            if (end === undefined) continue;
            if (isIP(end.address) !== end.family || !PORT_OK(end.port)) return `bad endpoint ${JSON.stringify(end)}`;
          }
          return undefined;
        },
      },
      (random, i) => {
        if (i % 2 === 0) return Buffer.concat([starts[below(random, starts.length)]!, randomBytes(random, 120)]);
        return mutate(samples[below(random, samples.length)]!, random);
      },
      0x5eed01,
    );
    expect(problems).toEqual([]);
    // The inputs reach every outcome, so the properties above were exercised.
    expect(tally.complete).toBeGreaterThan(1000);
    expect(tally['need-more']).toBeGreaterThan(1000);
    expect(tally.invalid).toBeGreaterThan(1000);
  });
});

describe('fuzzing the TLS ClientHello parser', () => {
  it('classifies 100,000 random and mutated inputs without throwing or overreaching', async () => {
    const real = await captureClientHello('api.example.com', (bytes) => parseClientHello(bytes).kind !== 'need-more');
    const split = records(handshakeMessage(clientHelloBody({ serverName: 'split.example.com' })), [3, 50]);
    const samples = [real, split, clientHello({ serverName: 'x.example.com' }), clientHello({}), clientHello({ noExtensions: true })];
    const starts = [Buffer.from([22, 3, 1]), Buffer.from([22, 3, 3, 0, 200, 1, 0, 0, 196, 3, 3])];
    const { tally, problems } = fuzz(
      {
        parse: parseClientHello,
        maxNeeded: MAX_CLIENT_HELLO_STREAM_BYTES,
        checkValue: (hello) =>
          hello.serverName === undefined || /^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/.test(hello.serverName) ? undefined : `bad name ${hello.serverName}`,
      },
      (random, i) => {
        if (i % 4 === 0) return Buffer.concat([starts[below(random, starts.length)]!, randomBytes(random, 300)]);
        return mutate(samples[below(random, samples.length)]!, random);
      },
      0x5eed02,
    );
    expect(problems).toEqual([]);
    expect(tally.complete).toBeGreaterThan(1000);
    expect(tally['need-more']).toBeGreaterThan(1000);
    expect(tally.invalid).toBeGreaterThan(1000);
  });
});
