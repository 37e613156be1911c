import { type CipherGCMTypes, createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/**
 * Gossip encryption (Consul's -encrypt): AES-GCM with a shared key of 16, 24 or 32 bytes,
 * given base64. The first key encrypts; every key decrypts, so a new key can be installed
 * everywhere before it is put to use and the old one removed (Consul's keyring rotation).
 * A packet: version byte, 12-byte nonce, ciphertext, 16-byte tag.
 *
 * With a file, every change is written there before it takes effect (Consul's
 * serf/local.keyring: a JSON array of base64 keys, the primary first), so a restarted agent
 * uses the keys it had.
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

/** Bound on installed keys: rotation needs two or three; every packet may try them all. */
export const MAX_KEYS = 16;

export interface KeyringOptions {
  /** Where to persist the keys (see keyringFile); null keeps them in memory only. */
  file?: string | null;
}

export class Keyring {
  private keys: Buffer[];
  readonly file: string | null;

  constructor(keys: string[], options: KeyringOptions = {}) {
    if (keys.length === 0) throw new KeyringError('a keyring needs at least one key');
    if (keys.length > MAX_KEYS)
      throw new KeyringError(`a keyring holds at most ${MAX_KEYS} keys: it was given ${keys.length}`);
    this.keys = keys.map(decodeKey);
    this.file = options.file ?? null;
  }

  /** The keys, primary first, base64. */
  list(): string[] {
    return this.keys.map((k) => k.toString('base64'));
  }

  /** The primary key, base64: the one that encrypts. */
  primary(): string {
    return this.keys[0]!.toString('base64');
  }

  install(key: string): void {
    const k = decodeKey(key);
    if (this.keys.some((x) => x.equals(k))) return;
    if (this.keys.length >= MAX_KEYS)
      throw new KeyringError(`the keyring is full (${MAX_KEYS} keys): remove one first`);
    this.replace([...this.keys, k]);
  }

  use(key: string): void {
    const k = decodeKey(key);
    const i = this.keys.findIndex((x) => x.equals(k));
    if (i < 0) throw new KeyringError(`the key ${key} is not installed`);
    if (i === 0) return;
    this.replace([k, ...this.keys.filter((_, j) => j !== i)]);
  }

  remove(key: string): void {
    const k = decodeKey(key);
    const i = this.keys.findIndex((x) => x.equals(k));
    if (i < 0) throw new KeyringError(`the key ${key} is not installed`);
    if (i === 0) throw new KeyringError('Removing the primary key is not allowed');
    this.replace(this.keys.filter((_, j) => j !== i));
  }

  /** Persist first, then switch: a keyring that could not be saved is left as it was. */
  private replace(keys: Buffer[]): void {
    if (this.file !== null)
      saveKeyringFile(
        this.file,
        keys.map((k) => k.toString('base64')),
      );
    this.keys = keys;
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

/** Consul's location of the LAN keyring in the data directory. */
export function keyringFile(dataDir: string): string {
  return join(dataDir, 'serf', 'local.keyring');
}

/** Write the keys atomically (a temporary file renamed over the old one), readable by the owner only. */
export function saveKeyringFile(file: string, keys: string[]): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const temporary = `${file}.tmp`;
  writeFileSync(temporary, `${JSON.stringify(keys)}\n`, { mode: 0o600 });
  renameSync(temporary, file);
}

/** The keys in a keyring file, validated; throws KeyringError naming the file when it is bad. */
export function readKeyringFile(file: string): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new KeyringError(`cannot read the keyring ${file}: ${(err as Error).message}`);
  }
  if (!Array.isArray(parsed) || parsed.length === 0 || !parsed.every((k) => typeof k === 'string'))
    throw new KeyringError(`the keyring ${file} must be a JSON array of base64 keys`);
  for (const key of parsed) decodeKey(key);
  return parsed;
}

export interface OpenKeyringOptions {
  /** The agent's -encrypt key, or null. */
  encrypt: string | null;
  /** Where the keyring lives (keyringFile(dataDir)), or null to keep nothing (-dev). */
  file: string | null;
}

/**
 * The agent's keyring at start, as Consul loads it: an existing keyring file wins (the keys an
 * operator rotated to), -encrypt only seeds the file on the first start; without either, gossip
 * goes unencrypted (null). `ignoredEncrypt` tells the caller to warn that -encrypt was not used.
 */
export function openKeyring(options: OpenKeyringOptions): {
  keyring: Keyring | null;
  ignoredEncrypt: boolean;
} {
  const { encrypt, file } = options;
  if (file !== null && existsSync(file)) {
    const keys = readKeyringFile(file);
    const keyring = new Keyring(keys, { file });
    return { keyring, ignoredEncrypt: encrypt !== null && !keys.includes(encrypt) };
  }
  if (encrypt === null) return { keyring: null, ignoredEncrypt: false };
  const keyring = new Keyring([encrypt], { file });
  if (file !== null) saveKeyringFile(file, keyring.list());
  return { keyring, ignoredEncrypt: false };
}
