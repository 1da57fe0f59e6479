/**
 * HMAC-SHA256 signing of cookie values with rotatable secrets: the first secret signs, every secret verifies,
 * and a value verified by an older secret is flagged for re-issue.
 *
 * @module
 */
import { SessionConfigError } from './errors.js'
import { deriveKey, MacKey } from './internal/crypto.js'

/** A secret as given by the user: text (UTF-8) or raw bytes. */
export type Secret = string | Uint8Array

/** Fewest bytes a secret may have (ASVS 5.0 V11.2.3; iron-session and @fastify/session use the same bar). */
export const MIN_SECRET_BYTES = 32

const SIGNATURE_LENGTH = 43 // base64url of 32 bytes, no padding

/** Result of {@link CookieSigner.unsign}: the value, and whether it should be re-signed with the current secret. */
export interface Unsigned {
  readonly value: string
  /** True when an older secret matched: re-issue the cookie so rotation completes. */
  readonly renew: boolean
}

/**
 * Signs and verifies `value.signature` strings. The signature covers the purpose (the cookie name) and the
 * whole value, so a value signed for one cookie never verifies as another.
 */
export class CookieSigner {
  readonly #keys: readonly MacKey[]
  readonly #purpose: string

  /**
   * @param secrets newest first; each at least 32 bytes.
   * @param purpose bound into every signature, e.g. the cookie name.
   * @throws {SessionConfigError} when the list is empty or a secret is too short or visibly not random.
   */
  constructor(secrets: readonly Secret[], purpose: string) {
    if (!Array.isArray(secrets) || secrets.length === 0) {
      throw new SessionConfigError(
        "secrets must be a non-empty array, newest first (generate one with: node -e \"console.log(require('crypto').randomBytes(32).toString('base64url'))\")",
      )
    }
    this.#keys = secrets.map(
      (secret, index) => new MacKey(deriveKey(checkSecret(secret, index), 'tessera/v1/cookie-signature')),
    )
    this.#purpose = purpose
  }

  /** `value.signature`, signed with the newest secret. */
  sign(value: string): string {
    return `${value}.${this.#keys[0]!.sign(this.#message(value))}`
  }

  /**
   * Verifies `signed` against every secret in constant time per secret. Anything but exactly
   * `value.<43 base64url characters>` with a matching signature is undefined: no trailing bytes, no padding,
   * no unsigned fallback.
   */
  unsign(signed: string): Unsigned | undefined {
    const dot = signed.lastIndexOf('.')
    if (dot <= 0 || signed.length - dot - 1 !== SIGNATURE_LENGTH) return undefined
    const signature = signed.slice(dot + 1)
    const value = signed.slice(0, dot)
    const message = this.#message(value)
    for (let index = 0; index < this.#keys.length; index++) {
      // verify() refuses anything but 43 base64url characters: no padding, no second spelling of one MAC.
      if (this.#keys[index]!.verify(message, signature)) return { value, renew: index > 0 }
    }
    return undefined
  }

  #message(value: string): string {
    return `${this.#purpose}=${value}`
  }
}

/** The bytes of `secret`, refused when too short or visibly typed by hand. */
export function checkSecret(secret: Secret, index: number): Uint8Array {
  const bytes = typeof secret === 'string' ? new TextEncoder().encode(secret) : secret
  // Not instanceof: a Uint8Array from another realm (a vm context, a test environment) is bytes all the same.
  if (Object.prototype.toString.call(bytes) !== '[object Uint8Array]') {
    throw new SessionConfigError(`secrets[${index}] must be a string or a Uint8Array`)
  }
  if (bytes.length < MIN_SECRET_BYTES) {
    throw new SessionConfigError(
      `secrets[${index}] is ${bytes.length} bytes; at least ${MIN_SECRET_BYTES} random bytes are required (generate one with crypto.randomBytes(32).toString('base64url'))`,
    )
  }
  // A 32-character secret typed by hand ("aaaa…", "password1234…") is not a key; random text uses many symbols.
  if (new Set(bytes).size < 8) {
    throw new SessionConfigError(
      `secrets[${index}] uses fewer than 8 distinct bytes: use random bytes, not a phrase`,
    )
  }
  return bytes
}
