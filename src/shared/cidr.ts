/**
 * CIDR blocks and the allow/deny matcher built from them.
 *
 * The matcher is a binary prefix trie with one root per family: looking an address up walks
 * at most 32 (IPv4) or 128 (IPv6) nodes, whatever the number of blocks, and stops early
 * where the trie ends. Nodes live in three typed arrays (two child indexes and a mark byte),
 * so a lookup allocates nothing and the structure is as compact as a trie gets without path
 * compression: one node per distinct prefix bit (at most 32 or 128 per block, far fewer
 * when blocks share prefixes).
 *
 * Semantics (the contract in DESIGN.md): deny wins; an empty allow list allows everything;
 * a non-empty allow list allows only what it matches. An IPv4 client is matched against
 * IPv4 blocks (a dual-stack socket's `::ffff:a.b.c.d` is IPv4), an IPv6 client against IPv6
 * blocks; `::ffff:10.0.0.0/104` is read as `10.0.0.0/8`.
 */
import { formatIp, parseIpInto, type IpFamily } from './ip-address.ts';

export interface Cidr {
  readonly family: 4 | 6;
  /** The network address, host bits zero (four words, IPv4 mapped). */
  readonly words: Int32Array;
  /** Prefix length within the family: 0..32 or 0..128. */
  readonly prefix: number;
}

export type CidrParse = { readonly ok: true; readonly cidr: Cidr } | { readonly ok: false; readonly message: string };

const PREFIX_DIGITS = /^(?:0|[1-9]\d{0,2})$/;
/** IPv4-mapped blocks are IPv4 blocks 96 bits further down. */
const MAPPED_PREFIX_BITS = 96;

/** `10.0.0.0/8`, `10.1.2.3` (= /32), `2001:db8::/32`, `::1` (= /128). */
export function parseCidr(text: string): CidrParse {
  const slash = text.indexOf('/');
  const addressText = slash === -1 ? text : text.slice(0, slash);
  const words = new Int32Array(4);
  const family: IpFamily = parseIpInto(addressText, words);
  if (family === 0) return { ok: false, message: `"${text}" is not a CIDR block like 10.0.0.0/8 or 2001:db8::/32` };
  const written6 = addressText.includes(':');
  const maxPrefix = written6 ? 128 : 32;
  let prefix = maxPrefix;
  if (slash !== -1) {
    const prefixText = text.slice(slash + 1);
    if (!PREFIX_DIGITS.test(prefixText) || Number(prefixText) > maxPrefix) {
      return { ok: false, message: `"${text}": the prefix length must be 0-${maxPrefix}` };
    }
    prefix = Number(prefixText);
  }
  // `::ffff:a.b.c.d/n` with n >= 96 is an IPv4 block; a shorter one is an IPv6 block.
  let cidrFamily: 4 | 6 = family;
  if (written6) {
    if (family === 4 && prefix >= MAPPED_PREFIX_BITS) prefix -= MAPPED_PREFIX_BITS;
    else cidrFamily = 6;
  }
  const network = maskedCopy(words, cidrFamily, prefix);
  if (!sameWords(network, words)) {
    const suggestion = formatCidr({ family: cidrFamily, words: network, prefix });
    return { ok: false, message: `"${text}" has host bits set; did you mean ${suggestion}?` };
  }
  return { ok: true, cidr: { family: cidrFamily, words: network, prefix } };
}

/** The canonical text: `10.0.0.0/8`, `2001:db8::/32`. */
export function formatCidr(cidr: Cidr): string {
  return `${formatIp(cidr.words, cidr.family)}/${cidr.prefix}`;
}

/** Parse and re-format; undefined when the text is not a CIDR block. */
export function canonicalCidr(text: string): string | undefined {
  const parsed = parseCidr(text);
  return parsed.ok ? formatCidr(parsed.cidr) : undefined;
}

function maskedCopy(words: Int32Array, family: 4 | 6, prefix: number): Int32Array {
  const out = new Int32Array(words);
  // Bits are counted from the top of word 3 for IPv4 and of word 0 for IPv6.
  const first = family === 4 ? 3 : 0;
  let left = prefix;
  for (let w = first; w < 4; w++) {
    if (left >= 32) {
      left -= 32;
      continue;
    }
    out[w] = left === 0 ? 0 : (out[w] ?? 0) & ~(0xffffffff >>> left);
    left = 0;
  }
  return out;
}

function sameWords(a: Int32Array, b: Int32Array): boolean {
  return a[0] === b[0] && a[1] === b[1] && a[2] === b[2] && a[3] === b[3];
}

/** Bit `i` (0 = most significant) of an address in its family's bit order. */
function bitAt(words: Int32Array, family: 4 | 6, i: number): number {
  const word = family === 4 ? (words[3] ?? 0) : (words[i >>> 5] ?? 0);
  return (word >>> (31 - (i & 31))) & 1;
}

const MARK_ALLOW = 1;
const MARK_DENY = 2;
/** Node 0 is the IPv4 root and node 1 the IPv6 root; neither is anyone's child, so 0 means "no child". */
const ROOT_V4 = 0;
const ROOT_V6 = 1;

/** An allow/deny matcher; immutable once compiled. */
export class Acl {
  private readonly zero: Int32Array;
  private readonly one: Int32Array;
  private readonly marks: Uint8Array;
  private readonly allowAll: boolean;

  private constructor(zero: Int32Array, one: Int32Array, marks: Uint8Array, allowAll: boolean) {
    this.zero = zero;
    this.one = one;
    this.marks = marks;
    this.allowAll = allowAll;
  }

  static compile(allow: readonly Cidr[], deny: readonly Cidr[]): Acl {
    const zero = [0, 0];
    const one = [0, 0];
    const marks = [0, 0];
    const insert = (cidr: Cidr, mark: number): void => {
      let node = cidr.family === 4 ? ROOT_V4 : ROOT_V6;
      for (let i = 0; i < cidr.prefix; i++) {
        const children = bitAt(cidr.words, cidr.family, i) === 1 ? one : zero;
        let child = children[node] ?? 0;
        if (child === 0) {
          child = marks.length;
          zero.push(0);
          one.push(0);
          marks.push(0);
          children[node] = child;
        }
        node = child;
      }
      marks[node] = (marks[node] ?? 0) | mark;
    };
    for (const cidr of allow) insert(cidr, MARK_ALLOW);
    for (const cidr of deny) insert(cidr, MARK_DENY);
    return new Acl(Int32Array.from(zero), Int32Array.from(one), Uint8Array.from(marks), allow.length === 0);
  }

  /** Parse and compile config text; throws a RangeError naming the first bad block. */
  static fromText(allow: readonly string[], deny: readonly string[]): Acl {
    return Acl.compile(allow.map(parseOrThrow), deny.map(parseOrThrow));
  }

  get nodes(): number {
    return this.marks.length;
  }

  /** Nodes a lookup of this address walks (for tests of the cost bound; the same walk as `allows`). */
  depth(family: 4 | 6, words: Int32Array): number {
    const bits = family === 4 ? 32 : 128;
    let node = family === 4 ? ROOT_V4 : ROOT_V6;
    let walked = 1;
    for (let i = 0; i < bits; i++) {
      if (((this.marks[node] ?? 0) & MARK_DENY) !== 0) return walked;
      const next = bitAt(words, family, i) === 1 ? this.one[node] : this.zero[node];
      if (next === undefined || next === 0) return walked;
      node = next;
      walked++;
    }
    return walked;
  }

  /**
   * Whether an address may connect. `words` as written by `parseIpInto`. Walks at most 32
   * or 128 nodes and allocates nothing.
   */
  allows(family: 4 | 6, words: Int32Array): boolean {
    const bits = family === 4 ? 32 : 128;
    let node = family === 4 ? ROOT_V4 : ROOT_V6;
    let allowed = this.allowAll;
    for (let i = 0; ; i++) {
      const mark = this.marks[node] ?? 0;
      if ((mark & MARK_DENY) !== 0) return false;
      if ((mark & MARK_ALLOW) !== 0) allowed = true;
      if (i === bits) return allowed;
      const next = bitAt(words, family, i) === 1 ? this.one[node] : this.zero[node];
      if (next === undefined || next === 0) return allowed;
      node = next;
    }
  }
}

function parseOrThrow(text: string): Cidr {
  const parsed = parseCidr(text);
  if (!parsed.ok) throw new RangeError(parsed.message);
  return parsed.cidr;
}

/** Convenience for tests and the admin API: is `address` (text) allowed? Undefined when it is not an address. */
export function aclAllowsText(acl: Acl, address: string): boolean | undefined {
  const words = new Int32Array(4);
  const family = parseIpInto(address, words, { allowZone: true });
  if (family === 0) return undefined;
  return acl.allows(family, words);
}
