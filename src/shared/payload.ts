/**
 * Payloads written in config.yaml (the `send` and `expect` of a UDP health check): plain
 * text is sent as its UTF-8 bytes; `hex:` followed by an even number of hex digits (spaces
 * allowed between byte pairs) is sent as those bytes, for binary protocols such as DNS.
 * Text that itself starts with `hex:` must be written in hex.
 */

const HEX_PREFIX = 'hex:';
const HEX_BODY = /^(?:[0-9a-fA-F]{2})+$/;

/** Why `text` is not a valid payload, or undefined when it is. */
export function payloadProblem(text: string): string | undefined {
  if (!text.startsWith(HEX_PREFIX)) return text === '' ? 'must not be empty' : undefined;
  const body = text.slice(HEX_PREFIX.length).replaceAll(' ', '');
  return HEX_BODY.test(body) ? undefined : 'expected hex: and pairs of hex digits, like hex:0a1b';
}

/** The bytes of a payload that passed `payloadProblem`. */
export function decodePayload(text: string): Buffer {
  if (!text.startsWith(HEX_PREFIX)) return Buffer.from(text, 'utf8');
  return Buffer.from(text.slice(HEX_PREFIX.length).replaceAll(' ', ''), 'hex');
}
