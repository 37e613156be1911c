/**
 * CRC-32 (IEEE 802.3, as zlib and etcd's snapshot hash use), incremental. Uses zlib's native
 * crc32 where Node has it (20.15+: ~4 GB/s), a table-driven fallback otherwise (~400 MB/s).
 * Pure computation: no I/O.
 */
import * as zlib from 'node:zlib';

const TABLE = (() => {
  const table = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c;
  }
  return table;
})();

/** Table-driven CRC-32; exported so tests can check it against the native one. */
export function crc32Portable(bytes: Uint8Array, crc = 0): number {
  let c = ~crc;
  for (let i = 0; i < bytes.length; i++) c = TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

const native = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;

/** Continue a CRC over `bytes`; start with crc 0. Returns an unsigned 32-bit value. */
export function crc32(bytes: Uint8Array, crc = 0): number {
  return native !== undefined ? native(bytes, crc) >>> 0 : crc32Portable(bytes, crc);
}
