/**
 * Sealing for stateless sessions: the whole session encrypted and authenticated (AES-256-GCM) into a cookie
 * value the client can neither read nor change, or, in signed-only mode, readable but tamper-proof
 * (HMAC-SHA256), as Flask's default session is.
 *
 * The format starts with a version (`t2`) so it can change without logging everyone out. Keys are derived
 * with HKDF once per secret and hour, never per seal: with random 96-bit nonces, NIST SP 800-38D bounds one
 * key to 2^32 seals, and an hourly key keeps any real site far below that (2^32 an hour is 1.2 million seals
 * a second). The cookie name and the hour are authenticated with every value, so a value sealed for one
 * cookie never opens as another.
 *
 * @module
 */
import { setBounded } from './internal/bounded.js'
import {
  aesGcmOpen,
  aesGcmSeal,
  base64urlToUtf8,
  deriveKey,
  MacKey,
  utf8ToBase64url,
} from './internal/crypto.js'
import { checkSecret, type Secret } from './signer.js'

const SEALED = 't2' // AES-256-GCM under an hourly key, random 96-bit nonce, AAD = version, purpose and hour
const LEGACY = 't1' // one key per secret: still opened, so that no session sealed before t2 is lost
const KEY_PERIOD_MS = 3_600_000
const EPOCH = /^[0-9a-z]{1,9}$/
// Hours a sealed value may come from: sessions live at most 400 days; a little ahead for clock skew.
const MAX_PAST_PERIODS = 400 * 24 + 1
const MAX_FUTURE_PERIODS = 1
const CACHED_KEYS = 64
// Values opened lately, with their plaintext: a client sending back the same cookie costs no decryption. The
// same bytes under the same secrets always open to the same plaintext, and the hour check runs before the
// lookup on every request, so this answers exactly as decrypting would. Short values only (a small session):
// at most about 1 MB. Oldest out first.
const OPENED_VALUES = 1_024
const OPENED_VALUE_LIMIT = 1_024
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
  readonly #macKeys: readonly MacKey[]
  readonly #secrets: readonly Uint8Array[]
  readonly #periodKeys = new Map<string, Uint8Array>()
  readonly #opened = new Map<string, Opened>()
  readonly #purpose: string
  readonly #signedOnly: boolean
  readonly #clock: () => number

  /**
   * @param secrets newest first; each at least 32 bytes.
   * @param purpose bound into every value, e.g. the cookie name.
   * @param signedOnly sign instead of encrypting: the client can read the data (never put secrets in it).
   */
  constructor(
    secrets: readonly Secret[],
    purpose: string,
    signedOnly = false,
    clock: () => number = Date.now,
  ) {
    this.#signedOnly = signedOnly
    const info = signedOnly ? 'tessera/v1/session-signature' : 'tessera/v1/session-seal'
    this.#secrets = secrets.map((secret, index) => checkSecret(secret, index))
    this.#keys = this.#secrets.map((secret) => deriveKey(secret, info))
    this.#macKeys = signedOnly ? this.#keys.map((key) => new MacKey(key)) : []
    this.#purpose = purpose
    this.#clock = clock
  }

  /**
   * `t2.<hour>.<sealed>` (or `s1.<json>.<mac>` in signed-only mode). Asynchronous because Web Crypto is,
   * where node:crypto is missing (edge runtimes).
   */
  async seal(plaintext: string): Promise<string> {
    if (this.#signedOnly) {
      const body = utf8ToBase64url(plaintext)
      return `${SIGNED}.${body}.${this.#macKeys[0]!.sign(`${SIGNED}.${this.#purpose}.${body}`)}`
    }
    const period = Math.floor(this.#clock() / KEY_PERIOD_MS).toString(36)
    const sealed = await aesGcmSeal(this.#periodKey(0, period), plaintext, this.#aad(period))
    return `${SEALED}.${period}.${sealed}`
  }

  /** The plaintext, or undefined for anything altered, truncated, foreign, or of another version. */
  async open(value: string): Promise<Opened | undefined> {
    if (this.#signedOnly) return this.#verify(value)
    if (value.startsWith(`${LEGACY}.`)) return this.#openLegacy(value.slice(LEGACY.length + 1))
    if (!value.startsWith(`${SEALED}.`)) return undefined
    const dot = value.indexOf('.', SEALED.length + 1)
    const period = value.slice(SEALED.length + 1, dot)
    if (dot === -1 || !EPOCH.test(period)) return undefined
    // Only hours a live session can come from: an attacker must not make us derive keys at will.
    const age = Math.floor(this.#clock() / KEY_PERIOD_MS) - Number.parseInt(period, 36)
    if (age > MAX_PAST_PERIODS || age < -MAX_FUTURE_PERIODS) return undefined
    const known = this.#opened.get(value)
    if (known !== undefined) return known
    const sealed = value.slice(dot + 1)
    for (let index = 0; index < this.#secrets.length; index++) {
      const plaintext = await aesGcmOpen(this.#periodKey(index, period), sealed, this.#aad(period))
      if (plaintext !== undefined) return this.#remember(period, sealed, { plaintext, renew: index > 0 })
    }
    return undefined
  }

  #remember(period: string, sealed: string, opened: Opened): Opened {
    if (sealed.length > OPENED_VALUE_LIMIT) return opened
    // Joined anew rather than kept as presented: a slice of the Cookie header would keep the whole header alive.
    setBounded(this.#opened, `${SEALED}.${period}.${sealed}`, opened, OPENED_VALUES)
    return opened
  }

  async #openLegacy(sealed: string): Promise<Opened | undefined> {
    for (let index = 0; index < this.#keys.length; index++) {
      const plaintext = await aesGcmOpen(this.#keys[index]!, sealed, `${LEGACY}.${this.#purpose}`)
      // Re-sealed at once in the current format, as a rotated secret is.
      if (plaintext !== undefined) return { plaintext, renew: true }
    }
    return undefined
  }

  #aad(period: string): string {
    return `${SEALED}.${this.#purpose}.${period}`
  }

  // The key of secret `index` for one hour, derived once and kept for the few hours in use.
  #periodKey(index: number, period: string): Uint8Array {
    const id = `${index}:${period}`
    let key = this.#periodKeys.get(id)
    if (key === undefined) {
      key = deriveKey(this.#secrets[index]!, `tessera/v2/session-seal/${period}`)
      setBounded(this.#periodKeys, id, key, CACHED_KEYS)
    }
    return key
  }

  #verify(value: string): Opened | undefined {
    const parts = value.split('.')
    if (parts.length !== 3 || parts[0] !== SIGNED) return undefined
    const body = parts[1]!
    for (let index = 0; index < this.#macKeys.length; index++) {
      if (this.#macKeys[index]!.verify(`${SIGNED}.${this.#purpose}.${body}`, parts[2]!)) {
        const plaintext = base64urlToUtf8(body)
        return plaintext === undefined ? undefined : { plaintext, renew: index > 0 }
      }
    }
    return undefined
  }
}
