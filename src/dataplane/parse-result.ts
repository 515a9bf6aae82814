/**
 * What an incremental parser of a connection's first bytes says about the bytes it has so
 * far. Parsers are pure functions of the whole buffer received until now: the caller calls
 * again with more bytes, and `needed` tells it how many there must be before that is worth it.
 */
export type ParseResult<T> =
  /** `consumed` bytes from the start make up the parsed item. */
  | { readonly kind: 'complete'; readonly consumed: number; readonly value: T }
  /** A valid prefix; call again once the buffer holds at least `needed` bytes. */
  | { readonly kind: 'need-more'; readonly needed: number }
  /** Can never become valid, whatever follows. `reason` is a fixed phrase for logs and tests. */
  | { readonly kind: 'invalid'; readonly reason: string };

export function needMore(needed: number): { readonly kind: 'need-more'; readonly needed: number } {
  return { kind: 'need-more', needed };
}

export function invalid(reason: string): { readonly kind: 'invalid'; readonly reason: string } {
  return { kind: 'invalid', reason };
}
