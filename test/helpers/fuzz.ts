/**
 * Deterministic fuzzing inputs: a seeded PRNG (mulberry32) and byte-level mutations of
 * valid samples, so a failing input can be reproduced from the seed and its index.
 */

export type Random = () => number;

export function prng(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function below(random: Random, n: number): number {
  return Math.floor(random() * n);
}

export function randomBytes(random: Random, maxLength: number): Buffer {
  const bytes = Buffer.alloc(below(random, maxLength + 1));
  for (let i = 0; i < bytes.length; i++) bytes[i] = below(random, 256);
  return bytes;
}

/** One to four random edits of `sample`: bit flips, byte sets, inserts, deletes, truncation, duplication. */
export function mutate(sample: Buffer, random: Random): Buffer {
  let bytes = Buffer.from(sample);
  const edits = 1 + below(random, 4);
  for (let e = 0; e < edits; e++) {
    const at = below(random, Math.max(1, bytes.length));
    switch (below(random, 7)) {
      case 0:
        if (bytes.length > 0) bytes[at] = (bytes[at] ?? 0) ^ (1 << below(random, 8));
        break;
      case 1:
        if (bytes.length > 0) bytes[at] = below(random, 256);
        break;
      case 2:
        // Interesting values for length fields.
        if (bytes.length > 0) bytes[at] = [0, 1, 0x7f, 0x80, 0xff][below(random, 5)] ?? 0;
        break;
      case 3:
        bytes = Buffer.concat([bytes.subarray(0, at), Buffer.from([below(random, 256)]), bytes.subarray(at)]);
        break;
      case 4:
        bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + 1 + below(random, 8))]);
        break;
      case 5:
        bytes = bytes.subarray(0, at);
        break;
      default: {
        const length = below(random, 16);
        bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at, at + length), bytes.subarray(at)]);
      }
    }
  }
  return bytes;
}
