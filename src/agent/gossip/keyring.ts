import { type CipherGCMTypes, createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

/**
 * Gossip encryption (Consul's -encrypt): AES-GCM with a shared key of 16, 24 or 32 bytes,
 * given base64. The first key encrypts; every key decrypts, so a new key can be installed
 * everywhere before it is put to use and the old one removed (Consul's keyring rotation).
 * A packet: version byte, 12-byte nonce, ciphertext, 16-byte tag.
 */

const VERSION = 1;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

export class KeyringError extends Error {}

const gcm = (key: Buffer) => `aes-${key.byteLength * 8}-gcm` as CipherGCMTypes;

export function decodeKey(base64: string): Buffer {
  const key = Buffer.from(base64, 'base64');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(base64) || ![16, 24, 32].includes(key.byteLength))
    throw new KeyringError('an encryption key must be 16, 24 or 32 bytes, base64-encoded');
  return key;
}

export class Keyring {
  private keys: Buffer[];

  constructor(keys: string[]) {
    if (keys.length === 0) throw new KeyringError('a keyring needs at least one key');
    this.keys = keys.map(decodeKey);
  }

  /** The keys, primary first, base64. */
  list(): string[] {
    return this.keys.map((k) => k.toString('base64'));
  }

  install(key: string): void {
    const k = decodeKey(key);
    if (!this.keys.some((x) => x.equals(k))) this.keys.push(k);
  }

  use(key: string): void {
    const k = decodeKey(key);
    const i = this.keys.findIndex((x) => x.equals(k));
    if (i < 0) throw new KeyringError('the key is not installed');
    this.keys.splice(i, 1);
    this.keys.unshift(k);
  }

  remove(key: string): void {
    const k = decodeKey(key);
    const i = this.keys.findIndex((x) => x.equals(k));
    if (i < 0) throw new KeyringError('the key is not installed');
    if (i === 0) throw new KeyringError('the primary key cannot be removed: use another key first');
    this.keys.splice(i, 1);
  }

  encrypt(plain: Buffer): Buffer {
    const key = this.keys[0]!;
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv(gcm(key), key, nonce);
    const body = Buffer.concat([cipher.update(plain), cipher.final()]);
    return Buffer.concat([Buffer.from([VERSION]), nonce, body, cipher.getAuthTag()]);
  }

  /** The plaintext, or null when no key opens the packet (it is dropped and counted). */
  decrypt(packet: Buffer): Buffer | null {
    if (packet.byteLength < 1 + NONCE_BYTES + TAG_BYTES || packet[0] !== VERSION) return null;
    const nonce = packet.subarray(1, 1 + NONCE_BYTES);
    const body = packet.subarray(1 + NONCE_BYTES, packet.byteLength - TAG_BYTES);
    const tag = packet.subarray(packet.byteLength - TAG_BYTES);
    for (const key of this.keys) {
      try {
        const decipher = createDecipheriv(gcm(key), key, nonce);
        decipher.setAuthTag(tag);
        return Buffer.concat([decipher.update(body), decipher.final()]);
      } catch {
        // not this key
      }
    }
    return null;
  }
}
