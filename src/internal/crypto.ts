// The one place the core touches cryptography. On Node (and Bun and Deno) it uses node:crypto, found at run
// time through process.getBuiltinModule rather than imported, so that nothing ties the core to Node: where
// there is no node:crypto (Vercel Edge, Cloudflare Workers without nodejs_compat, Node before 20.16), the
// Web Crypto API and the plain-JavaScript SHA-256 in ./sha256.js stand in, with identical output.
import type * as NodeCrypto from 'node:crypto'
import type { webcrypto } from 'node:crypto'
import { HmacSha256, hkdfSha256, hmacSha256Bytes, sha256, wordsToBytes } from './sha256.js'

const node = (
  globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }
).process?.getBuiltinModule?.('node:crypto') as typeof NodeCrypto | undefined

/** True when node:crypto does the work; false on the portable Web Crypto path. */
export const usesNodeCrypto = node !== undefined

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** `byteLength` bytes from the CSPRNG, base64url without padding. */
export function randomToken(byteLength: number): string {
  if (node !== undefined) return node.randomBytes(byteLength).toString('base64url')
  return toBase64url(globalThis.crypto.getRandomValues(new Uint8Array(byteLength)))
}

/** SHA-256 of a UTF-8 string, as 64 lowercase hex characters (the store key of a session ID). */
export function sha256Hex(value: string): string {
  if (node === undefined) return toHex(sha256(encoder.encode(value)))
  // crypto.hash (Node 20.12+) skips the Hash object: about three times faster for one short input.
  return typeof node.hash === 'function'
    ? node.hash('sha256', value, 'hex')
    : node.createHash('sha256').update(value).digest('hex')
}

/** HMAC-SHA256 of `message` under `key`, base64url without padding (43 characters). */
export function hmacSha256(key: Uint8Array, message: string): string {
  if (node !== undefined) return node.createHmac('sha256', key).update(message).digest('base64url')
  return toBase64url(hmacSha256Bytes(key, encoder.encode(message)))
}

const BASE64URL_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
// Six-bit value of each ASCII base64url character, -1 for the others.
const BASE64URL_VALUE = new Int8Array(128).fill(-1)
for (let i = 0; i < BASE64URL_ALPHABET.length; i++) BASE64URL_VALUE[BASE64URL_ALPHABET.charCodeAt(i)] = i

const MAC_LENGTH = 43 // base64url of 32 bytes, unpadded
// Scratch space: every use is synchronous, so one set serves all keys.
const macWords = new Int32Array(8)
const presentedMac = new Uint8Array(32)
const computedMac = new Uint8Array(32)

function bytesEqualInConstantTime(a: Uint8Array, b: Uint8Array): boolean {
  let difference = 0
  for (let i = 0; i < a.length; i++) difference |= a[i]! ^ b[i]!
  return difference === 0
}

/**
 * One HMAC-SHA256 key for many messages: the key's blocks are hashed once, so a cookie-sized MAC costs two
 * SHA-256 compressions in plain JavaScript (about half of a node:crypto `createHmac` round trip), and
 * verification compares bytes without encoding the computed MAC or allocating.
 */
export class MacKey {
  readonly #key: Uint8Array
  readonly #hmac: HmacSha256

  constructor(key: Uint8Array) {
    this.#key = key
    this.#hmac = new HmacSha256(key)
  }

  /** The MAC of `message` (UTF-8), base64url without padding: the same as {@link hmacSha256}. */
  sign(message: string): string {
    if (!this.#hmac.asciiMac(message, macWords)) return hmacSha256(this.#key, message)
    wordsToBytes(macWords, computedMac)
    return node !== undefined ? Buffer.from(computedMac).toString('base64url') : toBase64url(computedMac)
  }

  /**
   * True when `mac` is exactly the base64url MAC of `message`, compared in constant time (node:crypto's
   * `timingSafeEqual` where it exists). Only a `mac` that is not 43 base64url characters returns early: its
   * shape is no secret.
   */
  verify(message: string, mac: string): boolean {
    if (mac.length !== MAC_LENGTH) return false
    if (!this.#hmac.asciiMac(message, macWords)) return safeEqual(hmacSha256(this.#key, message), mac)
    let buffered = 0
    let bits = 0
    let byte = 0
    for (let i = 0; i < MAC_LENGTH; i++) {
      const code = mac.charCodeAt(i)
      const value = code < 128 ? BASE64URL_VALUE[code]! : -1
      if (value < 0) return false
      buffered = (buffered << 6) | value
      bits += 6
      if (bits >= 8) {
        bits -= 8
        presentedMac[byte++] = buffered >>> bits
        buffered &= (1 << bits) - 1
      }
    }
    wordsToBytes(macWords, computedMac)
    const equal =
      node !== undefined
        ? node.timingSafeEqual(presentedMac, computedMac)
        : bytesEqualInConstantTime(presentedMac, computedMac)
    // 43 characters carry 258 bits: the last two must be zero, so that one MAC has exactly one spelling.
    return equal && buffered === 0
  }
}

/** A 32-byte subkey for one purpose, derived from a secret with HKDF-SHA256 (RFC 5869). */
export function deriveKey(secret: Uint8Array, purpose: string): Uint8Array {
  if (node !== undefined) return new Uint8Array(node.hkdfSync('sha256', secret, 'tessera', purpose, 32))
  return hkdfSha256(secret, encoder.encode('tessera'), encoder.encode(purpose), 32)
}

/** Constant-time equality of two ASCII strings; unequal lengths return false without throwing. */
export function safeEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false
  if (node !== undefined) return node.timingSafeEqual(Buffer.from(a, 'latin1'), Buffer.from(b, 'latin1'))
  let difference = 0
  for (let i = 0; i < a.length; i++) difference |= a.charCodeAt(i) ^ b.charCodeAt(i)
  return difference === 0
}

const NONCE_BYTES = 12 // 96-bit random nonces: the GCM standard size (NIST SP 800-38D §8.2.2)
const TAG_BYTES = 16

/** AES-256-GCM: nonce ‖ ciphertext ‖ tag, base64url. `aad` is authenticated but not encrypted. */
export async function aesGcmSeal(key: Uint8Array, plaintext: string, aad: string): Promise<string> {
  if (node !== undefined) {
    const nonce = node.randomBytes(NONCE_BYTES)
    const cipher = node.createCipheriv('aes-256-gcm', key, nonce)
    cipher.setAAD(Buffer.from(aad, 'utf8'))
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()])
    return Buffer.concat([nonce, body, cipher.getAuthTag()]).toString('base64url')
  }
  const nonce = globalThis.crypto.getRandomValues(new Uint8Array(NONCE_BYTES))
  const sealed = await globalThis.crypto.subtle.encrypt(
    { name: 'AES-GCM', iv: nonce, additionalData: encoder.encode(aad), tagLength: TAG_BYTES * 8 },
    await webKey(key),
    encoder.encode(plaintext),
  )
  const out = new Uint8Array(NONCE_BYTES + sealed.byteLength) // Web Crypto already appends the tag
  out.set(nonce)
  out.set(new Uint8Array(sealed), NONCE_BYTES)
  return toBase64url(out)
}

/** The plaintext of {@link aesGcmSeal}'s output, or undefined when anything was altered or the key differs. */
export async function aesGcmOpen(key: Uint8Array, sealed: string, aad: string): Promise<string | undefined> {
  const bytes = fromBase64url(sealed)
  if (bytes === undefined || bytes.length < NONCE_BYTES + TAG_BYTES) return undefined
  try {
    if (node !== undefined) {
      const decipher = node.createDecipheriv('aes-256-gcm', key, bytes.subarray(0, NONCE_BYTES), {
        authTagLength: TAG_BYTES,
      })
      decipher.setAAD(Buffer.from(aad, 'utf8'))
      decipher.setAuthTag(bytes.subarray(bytes.length - TAG_BYTES))
      const plaintext = decipher.update(bytes.subarray(NONCE_BYTES, bytes.length - TAG_BYTES))
      decipher.final() // GCM: checks the tag and adds no bytes; it throws for anything altered
      return plaintext.toString('utf8')
    }
    const plaintext = await globalThis.crypto.subtle.decrypt(
      {
        name: 'AES-GCM',
        iv: bytes.subarray(0, NONCE_BYTES),
        additionalData: encoder.encode(aad),
        tagLength: TAG_BYTES * 8,
      },
      await webKey(key),
      bytes.subarray(NONCE_BYTES),
    )
    return decoder.decode(plaintext)
  } catch {
    return undefined
  }
}

// Importing a raw key costs a promise each time: keep one CryptoKey per derived key.
const webKeys = new WeakMap<Uint8Array, Promise<webcrypto.CryptoKey>>()
function webKey(key: Uint8Array): Promise<webcrypto.CryptoKey> {
  let imported = webKeys.get(key)
  if (imported === undefined) {
    imported = globalThis.crypto.subtle.importKey('raw', key, 'AES-GCM', false, ['encrypt', 'decrypt'])
    webKeys.set(key, imported)
  }
  return imported
}

/** UTF-8 text as base64url without padding. */
export function utf8ToBase64url(text: string): string {
  return node !== undefined
    ? Buffer.from(text, 'utf8').toString('base64url')
    : toBase64url(encoder.encode(text))
}

/** The UTF-8 text of a base64url string (undefined when it is not base64url). */
export function base64urlToUtf8(value: string): string | undefined {
  const bytes = fromBase64url(value)
  return bytes === undefined ? undefined : decoder.decode(bytes)
}

const BASE64URL = /^[A-Za-z0-9_-]*$/

function fromBase64url(value: string): Uint8Array | undefined {
  if (value.length % 4 === 1) return undefined
  if (node !== undefined) {
    // Cheaper than the pattern on a 4 KB cookie: Buffer's decoder skips any character it does not know, which
    // shows as a shorter result, and reads '+' and '/' too, which are refused outright.
    if (value.includes('+') || value.includes('/')) return undefined
    const bytes = Buffer.from(value, 'base64url')
    return bytes.length === Math.floor((value.length * 3) / 4) ? bytes : undefined
  }
  if (!BASE64URL.test(value)) return undefined
  const binary = atob(value.replace(/-/g, '+').replace(/_/g, '/'))
  const bytes = new Uint8Array(binary.length)
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i)
  return bytes
}

function toBase64url(bytes: Uint8Array): string {
  let binary = ''
  for (let i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]!)
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
}

function toHex(bytes: Uint8Array): string {
  let hex = ''
  for (let i = 0; i < bytes.length; i++) hex += bytes[i]!.toString(16).padStart(2, '0')
  return hex
}
