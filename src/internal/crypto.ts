// The one place the core touches node:crypto, so a Web Crypto seam can replace it for edge runtimes.
import * as nodeCrypto from 'node:crypto'
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  hkdfSync,
  randomBytes,
  timingSafeEqual,
} from 'node:crypto'

/** `byteLength` bytes from the CSPRNG, base64url without padding. */
export function randomToken(byteLength: number): string {
  return randomBytes(byteLength).toString('base64url')
}

/** SHA-256 of a UTF-8 string, as 64 lowercase hex characters (the store key of a session ID). */
export function sha256Hex(value: string): string {
  return oneShotHash === undefined
    ? createHash('sha256').update(value).digest('hex')
    : oneShotHash('sha256', value, 'hex')
}

// crypto.hash (Node 20.12+) skips the Hash object: about three times faster for one short input.
const oneShotHash = (nodeCrypto as { hash?: (algorithm: string, data: string, encoding: 'hex') => string })
  .hash

/** HMAC-SHA256 of `message` under `key`, base64url without padding (43 characters). */
export function hmacSha256(key: Uint8Array, message: string): string {
  return createHmac('sha256', key).update(message).digest('base64url')
}

/** A 32-byte subkey for one purpose, derived from a secret with HKDF-SHA256 (RFC 5869). */
export function deriveKey(secret: Uint8Array, purpose: string): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', secret, 'tessera', purpose, 32))
}

/** Constant-time equality of two ASCII strings; unequal lengths return false without throwing. */
export function safeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a, 'latin1')
  const right = Buffer.from(b, 'latin1')
  if (left.length !== right.length) return false
  return timingSafeEqual(left, right)
}

const NONCE_BYTES = 12 // 96-bit random nonces: the GCM standard size (NIST SP 800-38D §8.2.2)
const TAG_BYTES = 16

/** AES-256-GCM: nonce ‖ ciphertext ‖ tag, base64url. `aad` is authenticated but not encrypted. */
export function aesGcmSeal(key: Uint8Array, plaintext: string, aad: string): string {
  const nonce = randomBytes(NONCE_BYTES)
  const cipher = createCipheriv('aes-256-gcm', key, nonce)
  cipher.setAAD(Buffer.from(aad, 'utf8'))
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()])
  return Buffer.concat([nonce, body, cipher.getAuthTag()]).toString('base64url')
}

/** The plaintext of {@link aesGcmSeal}'s output, or undefined when anything was altered or the key differs. */
export function aesGcmOpen(key: Uint8Array, sealed: string, aad: string): string | undefined {
  const bytes = Buffer.from(sealed, 'base64url')
  if (bytes.length < NONCE_BYTES + TAG_BYTES) return undefined
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, bytes.subarray(0, NONCE_BYTES), {
      authTagLength: TAG_BYTES,
    })
    decipher.setAAD(Buffer.from(aad, 'utf8'))
    decipher.setAuthTag(bytes.subarray(bytes.length - TAG_BYTES))
    const body = bytes.subarray(NONCE_BYTES, bytes.length - TAG_BYTES)
    return Buffer.concat([decipher.update(body), decipher.final()]).toString('utf8')
  } catch {
    return undefined
  }
}
