/**
 * Sealing for stateless sessions: the whole session encrypted and authenticated (AES-256-GCM) into a cookie
 * value the client can neither read nor change, or, in signed-only mode, readable but tamper-proof
 * (HMAC-SHA256), as Flask's default session is.
 *
 * The format starts with a version (`t1`) so it can change without logging everyone out; keys are derived
 * once per secret with HKDF, never per seal; the cookie name is authenticated with every value, so a value
 * sealed for one cookie never opens as another.
 *
 * @module
 */
import {
  aesGcmOpen,
  aesGcmSeal,
  base64urlToUtf8,
  deriveKey,
  hmacSha256,
  safeEqual,
  utf8ToBase64url,
} from './internal/crypto.js'
import { checkSecret, type Secret } from './signer.js'

const SEALED = 't1' // AES-256-GCM, random 96-bit nonce, AAD = purpose and version
const SIGNED = 's1' // base64url JSON and HMAC-SHA256: readable by the client, tamper-proof

/** Result of {@link Sealer.open}. */
export interface Opened {
  readonly plaintext: string
  /** An older secret opened it: seal again with the current one. */
  readonly renew: boolean
}

/** Seals and opens values for one purpose (a cookie name), with rotatable secrets: the first seals, all open. */
export class Sealer {
  readonly #keys: readonly Uint8Array[]
  readonly #purpose: string
  readonly #signedOnly: boolean

  /**
   * @param secrets newest first; each at least 32 bytes.
   * @param purpose bound into every value, e.g. the cookie name.
   * @param signedOnly sign instead of encrypting: the client can read the data (never put secrets in it).
   */
  constructor(secrets: readonly Secret[], purpose: string, signedOnly = false) {
    this.#signedOnly = signedOnly
    const info = signedOnly ? 'tessera/v1/session-signature' : 'tessera/v1/session-seal'
    this.#keys = secrets.map((secret, index) => deriveKey(checkSecret(secret, index), info))
    this.#purpose = purpose
  }

  /**
   * `t1.<sealed>` (or `s1.<json>.<mac>` in signed-only mode). Asynchronous because Web Crypto is, where
   * node:crypto is missing (edge runtimes).
   */
  async seal(plaintext: string): Promise<string> {
    const key = this.#keys[0]!
    if (this.#signedOnly) {
      const body = utf8ToBase64url(plaintext)
      return `${SIGNED}.${body}.${hmacSha256(key, `${SIGNED}.${this.#purpose}.${body}`)}`
    }
    return `${SEALED}.${await aesGcmSeal(key, plaintext, `${SEALED}.${this.#purpose}`)}`
  }

  /** The plaintext, or undefined for anything altered, truncated, foreign, or of another version. */
  async open(value: string): Promise<Opened | undefined> {
    if (this.#signedOnly) return this.#verify(value)
    if (!value.startsWith(`${SEALED}.`)) return undefined
    const sealed = value.slice(SEALED.length + 1)
    for (let index = 0; index < this.#keys.length; index++) {
      const plaintext = await aesGcmOpen(this.#keys[index]!, sealed, `${SEALED}.${this.#purpose}`)
      if (plaintext !== undefined) return { plaintext, renew: index > 0 }
    }
    return undefined
  }

  #verify(value: string): Opened | undefined {
    const parts = value.split('.')
    if (parts.length !== 3 || parts[0] !== SIGNED) return undefined
    const body = parts[1]!
    for (let index = 0; index < this.#keys.length; index++) {
      if (safeEqual(hmacSha256(this.#keys[index]!, `${SIGNED}.${this.#purpose}.${body}`), parts[2]!)) {
        const plaintext = base64urlToUtf8(body)
        return plaintext === undefined ? undefined : { plaintext, renew: index > 0 }
      }
    }
    return undefined
  }
}
