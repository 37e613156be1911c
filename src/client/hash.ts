import { hash } from 'node:crypto';

/** Maps a string to a uniformly spread unsigned 32-bit integer. */
export type Hash32 = (key: string) => number;

/**
 * The first 32 bits of SHA-256. Well spread for any input (vnode labels such as "a#1", "a#2"
 * differ in one byte), allowed in FIPS mode unlike MD5, and with SHA extensions about as fast as
 * MD5 through node:crypto's one-shot hash(): under a microsecond per key.
 */
export const sha256Hash32: Hash32 = (key) => hash('sha256', key, 'buffer').readUInt32BE(0);
