/**
 * Byte-string helpers. Inside the store a key or value is held as a latin1 ("binary") JS
 * string: one UTF-16 code unit per byte, so `<` on strings is exactly etcd's byte-wise key
 * order, Map lookups are native, and V8 keeps them as compact one-byte strings (a 256-byte
 * value costs ~270 heap bytes instead of ~500 for a Uint8Array with its ArrayBuffer).
 */

/** Internal byte string: each char code is one byte (0..255). */
export type ByteString = string;

const EMPTY = new Uint8Array(0);

export function toByteString(bytes: Uint8Array): ByteString {
  if (bytes.length === 0) return '';
  const buffer = Buffer.isBuffer(bytes)
    ? bytes
    : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return buffer.toString('latin1');
}

export function fromByteString(text: ByteString): Uint8Array {
  if (text.length === 0) return EMPTY;
  return Buffer.from(text, 'latin1');
}

/** UTF-8 text to bytes (tests and adapters that speak in text keys). */
export function utf8(text: string): Uint8Array {
  return Buffer.from(text, 'utf8');
}

/** Bytes to UTF-8 text. */
export function text(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
}

/**
 * The end of the range holding every key with this prefix, etcd's GetPrefixRangeEnd:
 * increment the last byte below 0xff after dropping trailing 0xff bytes. `null` means "no end"
 * (the prefix is empty or all 0xff), which etcd spells as range_end "\0".
 */
export function prefixEnd(prefix: ByteString): ByteString | null {
  let end = prefix.length;
  while (end > 0 && prefix.charCodeAt(end - 1) === 0xff) end--;
  if (end === 0) return null;
  return prefix.slice(0, end - 1) + String.fromCharCode(prefix.charCodeAt(end - 1) + 1);
}

/** The smallest key strictly greater than `key` (continuation point for paginated ranges). */
export function keySuccessor(key: ByteString): ByteString {
  return key + '\u0000';
}

/** Byte length of a byte string (one char per byte, by construction). */
export function byteLength(text: ByteString): number {
  return text.length;
}
