/**
 * IP addresses as four 32-bit words (most significant first), the one form that CIDR
 * lookups, the per-IP limit table and the PROXY protocol share. IPv4 is stored in its
 * IPv4-mapped IPv6 form (`::ffff:a.b.c.d`), so `127.0.0.2` and `::ffff:127.0.0.2` (what a
 * dual-stack listener reports) are the same key; `family` still says which one it is.
 *
 * The parsers write into a caller-owned array and allocate nothing, because they run once
 * per accepted connection. They are strict: an IPv4 part has no leading zero, an IPv6
 * address has at most one `::`, and a zone (`%eth0`) is accepted only where the caller says
 * so (a socket's peer address may carry one; a config value may not).
 */

/** 4 = IPv4 (or IPv4-mapped IPv6), 6 = IPv6, 0 = not an address. */
export type IpFamily = 0 | 4 | 6;

/** Word 2 of an IPv4-mapped address: `::ffff:0:0/96`. */
export const IPV4_MAPPED_WORD = 0x0000ffff;

export interface ParseOptions {
  /** Accept and ignore an IPv6 zone suffix (`fe80::1%eth0`). */
  readonly allowZone?: boolean;
}

/**
 * Parse `text[start, end)` into `out` (4 words). Returns the family, or 0 when the text is
 * not an address (then `out` holds garbage).
 */
export function parseIpInto(text: string, out: Int32Array, options: ParseOptions = {}, start = 0, end = text.length): IpFamily {
  if (end - start < 2 || end - start > 64) return 0;
  let colon = false;
  for (let i = start; i < end; i++) {
    if (text.charCodeAt(i) === 0x3a) {
      colon = true;
      break;
    }
  }
  if (!colon) {
    const v4 = parseIpv4(text, start, end);
    if (v4 === -1) return 0;
    out[0] = 0;
    out[1] = 0;
    out[2] = IPV4_MAPPED_WORD;
    out[3] = v4 | 0;
    return 4;
  }
  let stop = end;
  for (let i = start; i < end; i++) {
    if (text.charCodeAt(i) === 0x25 /* % */) {
      if (options.allowZone !== true || i === end - 1) return 0;
      stop = i;
      break;
    }
  }
  if (!parseIpv6(text, start, stop, out)) return 0;
  return isIpv4Mapped(out) ? 4 : 6;
}

export function isIpv4Mapped(words: Int32Array): boolean {
  return words[0] === 0 && words[1] === 0 && words[2] === IPV4_MAPPED_WORD;
}

/**
 * The IPv4 address in `text[start, end)` as an unsigned 32-bit number, or -1 for anything but
 * exactly four octets of 0–255 without leading zeros.
 */
export function parseIpv4(text: string, start = 0, end = text.length): number {
  let value = 0;
  let part = 0;
  let digits = 0;
  let parts = 0;
  for (let i = start; i <= end; i++) {
    const c = i === end ? 0x2e : text.charCodeAt(i);
    if (c === 0x2e /* . */) {
      if (digits === 0 || parts === 4) return -1;
      value = value * 256 + part;
      parts++;
      part = 0;
      digits = 0;
      continue;
    }
    if (c < 0x30 || c > 0x39) return -1;
    if (digits > 0 && part === 0) return -1; // leading zero: `01` is octal to some parsers
    part = part * 10 + (c - 0x30);
    digits++;
    if (part > 255) return -1;
  }
  return parts === 4 ? value : -1;
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const lower = c | 0x20;
  if (lower >= 0x61 && lower <= 0x66) return lower - 0x61 + 10;
  return -1;
}

/**
 * RFC 4291 text form, with an optional trailing dotted IPv4 part. Groups are collected as
 * 16-bit values into the words directly; the `::` gap is filled once the count is known.
 */
function parseIpv6(text: string, start: number, end: number, out: Int32Array): boolean {
  let head: number; // groups before `::` (all 8 without one)
  let tail = 0; // groups after `::`
  let gap = -1; // group index where `::` is, or -1
  out[0] = 0;
  out[1] = 0;
  out[2] = 0;
  out[3] = 0;
  let i = start;
  if (text.charCodeAt(i) === 0x3a) {
    if (text.charCodeAt(i + 1) !== 0x3a) return false;
    gap = 0;
    i += 2;
    if (i === end) return true; // `::`
  }
  const groups = scratchGroups;
  let count = 0;
  while (i < end) {
    // An embedded IPv4 part ends the address: `::ffff:1.2.3.4`.
    let j = i;
    let value = 0;
    let digits = 0;
    let dotted = false;
    while (j < end) {
      const c = text.charCodeAt(j);
      if (c === 0x2e) {
        dotted = true;
        break;
      }
      const h = hexValue(c);
      if (h < 0) break;
      value = value * 16 + h;
      digits++;
      j++;
    }
    if (dotted) {
      const v4 = parseIpv4(text, i, end);
      if (v4 === -1 || count > 6) return false;
      groups[count++] = Math.floor(v4 / 65536);
      groups[count++] = v4 % 65536;
      break; // the IPv4 part runs to the end
    }
    if (digits === 0 || digits > 4 || count === 8) return false;
    groups[count++] = value;
    i = j;
    if (i === end) break;
    if (text.charCodeAt(i) !== 0x3a) return false;
    i++;
    if (text.charCodeAt(i) === 0x3a) {
      if (gap !== -1) return false;
      gap = count;
      i++;
      if (i === end) break;
    } else if (i === end) {
      return false; // a trailing single `:`
    }
  }
  if (gap === -1) {
    if (count !== 8) return false;
    head = 8;
  } else {
    if (count > 7) return false;
    head = gap;
    tail = count - gap;
  }
  for (let g = 0; g < head; g++) setGroup(out, g, groups[g] ?? 0);
  for (let g = 0; g < tail; g++) setGroup(out, 8 - tail + g, groups[head + g] ?? 0);
  return true;
}

const scratchGroups = new Int32Array(8);

function setGroup(out: Int32Array, group: number, value: number): void {
  const word = group >> 1;
  const current = out[word] ?? 0;
  out[word] = group & 1 ? (current & ~0xffff) | value : (current & 0xffff) | (value << 16);
}

/** Canonical text: dotted IPv4 for family 4, RFC 5952 compressed IPv6 otherwise. */
export function formatIp(words: Int32Array, family: 4 | 6): string {
  if (family === 4) {
    const v = words[3] ?? 0;
    return `${(v >>> 24) & 255}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
  }
  const groups: number[] = [];
  for (let g = 0; g < 8; g++) groups.push(((words[g >> 1] ?? 0) >>> (g & 1 ? 0 : 16)) & 0xffff);
  // The longest run of two or more zero groups becomes `::` (the first one on a tie).
  let bestStart = -1;
  let bestLength = 1;
  for (let g = 0; g < 8; ) {
    if (groups[g] !== 0) {
      g++;
      continue;
    }
    let run = g;
    while (run < 8 && groups[run] === 0) run++;
    if (run - g > bestLength) {
      bestStart = g;
      bestLength = run - g;
    }
    g = run;
  }
  const hex = groups.map((value) => value.toString(16));
  if (bestStart === -1) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

/** Copy 4 (IPv4) or 16 (IPv6) network-order bytes into words. */
export function ipFromBytes(bytes: Uint8Array, offset: number, family: 4 | 6, out: Int32Array): void {
  if (family === 4) {
    out[0] = 0;
    out[1] = 0;
    out[2] = IPV4_MAPPED_WORD;
    out[3] = readWord(bytes, offset);
    return;
  }
  for (let w = 0; w < 4; w++) out[w] = readWord(bytes, offset + w * 4);
}

/** Write the 4 (IPv4) or 16 (IPv6) network-order bytes of `words`. */
export function ipToBytes(words: Int32Array, family: 4 | 6, bytes: Uint8Array, offset: number): void {
  if (family === 4) {
    writeWord(bytes, offset, words[3] ?? 0);
    return;
  }
  for (let w = 0; w < 4; w++) writeWord(bytes, offset + w * 4, words[w] ?? 0);
}

function readWord(bytes: Uint8Array, offset: number): number {
  return (((bytes[offset] ?? 0) << 24) | ((bytes[offset + 1] ?? 0) << 16) | ((bytes[offset + 2] ?? 0) << 8) | (bytes[offset + 3] ?? 0)) | 0;
}

function writeWord(bytes: Uint8Array, offset: number, word: number): void {
  bytes[offset] = (word >>> 24) & 255;
  bytes[offset + 1] = (word >>> 16) & 255;
  bytes[offset + 2] = (word >>> 8) & 255;
  bytes[offset + 3] = word & 255;
}
