// SHA-256 (FIPS 180-4), HMAC (RFC 2104) and HKDF (RFC 5869) in plain JavaScript, for runtimes without
// node:crypto (Vercel Edge, Cloudflare Workers without nodejs_compat). Web Crypto has them, but only behind
// promises, and signing a cookie or a CSRF token is synchronous in tessera's API. Only additions, rotations
// and XORs on 32-bit words: no table lookup depends on the key or the message, so timing reveals neither.
// Checked against node:crypto on the NIST vectors and on random inputs (src/internal/crypto.test.ts).

const K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
  0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
  0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
  0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
  0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
  0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
  0xc67178f2,
])

const BLOCK = 64
const IV = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]

// The message schedule, shared by every call: JavaScript runs one call at a time, and no hash awaits midway.
const w = new Int32Array(64)

/** SHA-256 of `message`: 32 bytes. */
export function sha256(message: Uint8Array): Uint8Array {
  const h = Int32Array.from(IV)
  absorbBytes(h, message, 0)
  return toBytes(h)
}

/** HMAC-SHA256 of `message` under `key`: 32 bytes. */
export function hmacSha256Bytes(key: Uint8Array, message: Uint8Array): Uint8Array {
  const mac = new HmacSha256(key)
  const h = Int32Array.from(mac.inner)
  absorbBytes(h, message, BLOCK)
  mac.finish(h)
  return toBytes(h)
}

/**
 * HMAC-SHA256 under one key, the key's inner and outer blocks compressed once (RFC 2104 §4): a MAC of a
 * cookie-sized message then costs two compressions, about half of what node:crypto's createHmac takes here.
 */
export class HmacSha256 {
  /** The state after the key XOR ipad block. */
  readonly inner: Int32Array
  /** The state after the key XOR opad block. */
  readonly outer: Int32Array

  constructor(key: Uint8Array) {
    const block = new Uint8Array(BLOCK)
    block.set(key.length > BLOCK ? sha256(key) : key)
    this.inner = Int32Array.from(IV)
    this.outer = Int32Array.from(IV)
    for (const [state, pad] of [
      [this.inner, 0x36],
      [this.outer, 0x5c],
    ] as const) {
      for (let i = 0; i < 16; i++) {
        w[i] =
          ((block[i * 4]! ^ pad) << 24) |
          ((block[i * 4 + 1]! ^ pad) << 16) |
          ((block[i * 4 + 2]! ^ pad) << 8) |
          (block[i * 4 + 3]! ^ pad)
      }
      compress(state)
    }
  }

  /**
   * The MAC of an ASCII string, as eight big-endian words written to `out`; false (and `out` unspecified)
   * when the string holds a character above U+007F, whose UTF-8 bytes this fast path does not produce.
   */
  asciiMac(message: string, out: Int32Array): boolean {
    out.set(this.inner)
    if (!absorbAscii(out, message, BLOCK)) return false
    this.finish(out)
    return true
  }

  /** Turns the inner hash in `h` into the MAC: H(key XOR opad ‖ inner). */
  finish(h: Int32Array): void {
    for (let i = 0; i < 8; i++) w[i] = h[i]!
    w[8] = 0x80000000 // the padding of a 96-byte message: 0x80, zeros, the length in bits
    w.fill(0, 9, 15)
    w[15] = (BLOCK + 32) * 8
    h.set(this.outer)
    compress(h)
  }
}

function absorbBytes(h: Int32Array, bytes: Uint8Array, prefixBytes: number): void {
  let word = 0
  let position = 0
  for (let i = 0; i < bytes.length; i++) {
    word = (word << 8) | bytes[i]!
    if ((i & 3) === 3) {
      position = pushWord(h, word, position)
      word = 0
    }
  }
  pad(h, word, position, bytes.length, prefixBytes)
}

function absorbAscii(h: Int32Array, text: string, prefixBytes: number): boolean {
  let word = 0
  let position = 0
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    if (code > 0x7f) return false
    word = (word << 8) | code
    if ((i & 3) === 3) {
      position = pushWord(h, word, position)
      word = 0
    }
  }
  pad(h, word, position, text.length, prefixBytes)
  return true
}

// Puts a whole big-endian word at `position` of the block and compresses a full block; the next position.
// absorbBytes and absorbAscii differ only in where a byte comes from, kept apart so each loop stays monomorphic.
function pushWord(h: Int32Array, word: number, position: number): number {
  w[position] = word
  if (position < 15) return position + 1
  compress(h)
  return 0
}

// The last block(s): 0x80, zeros, then the bit length of everything hashed as a 64-bit big-endian integer.
// `word` holds the message's trailing `length % 4` bytes; `position` words of w are filled.
function pad(h: Int32Array, word: number, position: number, length: number, prefixBytes: number): void {
  let last = (word << 8) | 0x80
  for (let filled = (length & 3) + 1; filled < 4; filled++) last <<= 8
  w[position++] = last
  if (position > 14) {
    w.fill(0, position, 16)
    compress(h)
    position = 0
  }
  w.fill(0, position, 14)
  const bits = (prefixBytes + length) * 8
  w[14] = Math.floor(bits / 0x100000000)
  w[15] = bits | 0
  compress(h)
}

// One SHA-256 compression of the block in w[0..15] into the state `h`.
function compress(h: Int32Array): void {
  for (let i = 16; i < 64; i++) {
    const a = w[i - 15]!
    const b = w[i - 2]!
    const s0 = rotr(a, 7) ^ rotr(a, 18) ^ (a >>> 3)
    const s1 = rotr(b, 17) ^ rotr(b, 19) ^ (b >>> 10)
    w[i] = (w[i - 16]! + s0 + w[i - 7]! + s1) | 0
  }
  let a = h[0]!
  let b = h[1]!
  let c = h[2]!
  let d = h[3]!
  let e = h[4]!
  let f = h[5]!
  let g = h[6]!
  let hh = h[7]!
  for (let i = 0; i < 64; i++) {
    const t1 = (hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i]! + w[i]!) | 0
    const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) | 0
    hh = g
    g = f
    f = e
    e = (d + t1) | 0
    d = c
    c = b
    b = a
    a = (t1 + t2) | 0
  }
  h[0] = (h[0]! + a) | 0
  h[1] = (h[1]! + b) | 0
  h[2] = (h[2]! + c) | 0
  h[3] = (h[3]! + d) | 0
  h[4] = (h[4]! + e) | 0
  h[5] = (h[5]! + f) | 0
  h[6] = (h[6]! + g) | 0
  h[7] = (h[7]! + hh) | 0
}

function rotr(x: number, n: number): number {
  return (x >>> n) | (x << (32 - n))
}

function toBytes(h: Int32Array): Uint8Array {
  return wordsToBytes(h, new Uint8Array(32))
}

/** The eight words of a digest as 32 big-endian bytes, written to `out`. */
export function wordsToBytes(h: Int32Array, out: Uint8Array): Uint8Array {
  for (let i = 0; i < 8; i++) {
    const word = h[i]!
    out[i * 4] = word >>> 24
    out[i * 4 + 1] = word >>> 16
    out[i * 4 + 2] = word >>> 8
    out[i * 4 + 3] = word
  }
  return out
}

/** HKDF-SHA256 (RFC 5869) of `length` bytes, at most 32 (one block is all tessera needs). */
export function hkdfSha256(
  secret: Uint8Array,
  salt: Uint8Array,
  info: Uint8Array,
  length: number,
): Uint8Array {
  if (length > 32) throw new RangeError('hkdfSha256 derives at most 32 bytes')
  const pseudoRandomKey = hmacSha256Bytes(salt, secret)
  const input = new Uint8Array(info.length + 1)
  input.set(info)
  input[info.length] = 1
  return hmacSha256Bytes(pseudoRandomKey, input).slice(0, length)
}
