// The one place the core touches node:crypto, so a Web Crypto seam can replace it for edge runtimes.
import { createHash, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto'

/** `byteLength` bytes from the CSPRNG, base64url without padding. */
export function randomToken(byteLength: number): string {
  return randomBytes(byteLength).toString('base64url')
}

/** SHA-256 of a UTF-8 string, as 64 lowercase hex characters (the store key of a session ID). */
export function sha256Hex(value: string): string {
  return createHash('sha256').update(value).digest('hex')
}

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
