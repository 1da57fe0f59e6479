/**
 * Session IDs: 32 bytes (256 bits) from the CSPRNG, base64url.
 *
 * @module
 */
import { SessionConfigError } from './errors.js'
import { randomToken } from './internal/crypto.js'

/** Characters a session ID may use: base64url, so it is cookie-safe and never needs escaping. */
const ID_PATTERN = /^[A-Za-z0-9_-]+$/
const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** Shortest and longest ID the manager accepts from a custom generator. */
export const MIN_ID_LENGTH = 22
export const MAX_ID_LENGTH = 256

/** Bits of entropy the manager requires from an ID generator (ASVS 5.0 V7.2.3). */
export const MIN_ID_BITS = 128

/**
 * Generates a session ID: 32 random bytes from the CSPRNG, base64url (43 characters).
 *
 * @example
 * generateSessionId() // 'kq3Vh2...' (43 characters)
 */
export function generateSessionId(): string {
  return randomToken(32)
}

/** True when `value` has the shape of a session ID: base64url, 22 to 256 characters. */
export function isWellFormedId(value: string): boolean {
  return value.length >= MIN_ID_LENGTH && value.length <= MAX_ID_LENGTH && ID_PATTERN.test(value)
}

/**
 * Checks a custom ID generator at construction. Entropy cannot be proven from outside, so this rejects what
 * can be seen to be weak: the wrong alphabet or length, repeats, UUIDs (122 bits at most), and an observed
 * per-character entropy that, times the length, falls short of 128 bits.
 *
 * @throws {SessionConfigError} when the generator is visibly too weak.
 */
export function assertStrongGenerator(generate: () => string): void {
  const samples: string[] = []
  for (let i = 0; i < 64; i++) {
    const id = generate()
    if (typeof id !== 'string' || UUID_PATTERN.test(id) || !isWellFormedId(id)) {
      throw new SessionConfigError(
        `generateId must return base64url strings of ${MIN_ID_LENGTH}-${MAX_ID_LENGTH} characters from a CSPRNG (UUIDs carry under 128 bits); got ${describe(id)}`,
      )
    }
    samples.push(id)
  }
  if (new Set(samples).size !== samples.length) {
    throw new SessionConfigError('generateId returned the same ID twice in 64 calls: it is not random')
  }
  const bits = observedBitsPerChar(samples) * Math.min(...samples.map((s) => s.length))
  if (bits < MIN_ID_BITS) {
    throw new SessionConfigError(
      `generateId produces about ${Math.floor(bits)} bits per ID; at least ${MIN_ID_BITS} are required (use 16 or more random bytes)`,
    )
  }
}

// Bits per character as observed over all samples: the alphabet actually used (log2 of distinct characters),
// lowered when the characters are far from uniform (Shannon entropy, with slack for sampling noise).
function observedBitsPerChar(samples: readonly string[]): number {
  const counts = new Map<string, number>()
  let total = 0
  for (const sample of samples) {
    for (const char of sample) {
      counts.set(char, (counts.get(char) ?? 0) + 1)
      total++
    }
  }
  let entropy = 0
  for (const count of counts.values()) {
    const p = count / total
    entropy -= p * Math.log2(p)
  }
  return Math.min(Math.log2(counts.size), entropy + 0.05)
}

function describe(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value.slice(0, 40)) : typeof value
}
