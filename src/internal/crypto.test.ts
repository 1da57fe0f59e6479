// The portable path (Web Crypto and plain-JavaScript SHA-256, for runtimes without node:crypto) must give
// byte-for-byte what node:crypto gives: a cookie signed on an edge runtime verifies on Node and back.
import assert from 'node:assert/strict'
import { createHash, createHmac, hkdfSync } from 'node:crypto'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import * as onNode from './crypto.js'
import { hkdfSha256, hmacSha256Bytes, sha256 } from './sha256.js'

// A second instance of the module, loaded while process.getBuiltinModule is hidden: the edge-runtime path.
const hidden = process.getBuiltinModule
Object.assign(process, { getBuiltinModule: undefined })
const portableUrl: string = './crypto.js?portable' // a query string makes the loader import a second instance
const portable = (await import(portableUrl)) as typeof onNode
Object.assign(process, { getBuiltinModule: hidden })

const RUNS = Number(process.env.FUZZ_RUNS ?? 2_000)
const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex')
const bytesOf = (text: string) => new TextEncoder().encode(text)

describe('portable crypto (no node:crypto)', () => {
  it('is really the portable path in the second instance, and node:crypto in the first', () => {
    assert.equal(onNode.usesNodeCrypto, true)
    assert.equal(portable.usesNodeCrypto, false)
  })

  it('computes SHA-256 as FIPS 180-4 says: the NIST vectors, across block boundaries, and a million a', () => {
    const vectors: [string, string][] = [
      ['', 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'],
      ['abc', 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'],
      [
        'abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq',
        '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1',
      ],
      [
        'abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu',
        'cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1',
      ],
      ['a'.repeat(1_000_000), 'cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0'],
    ]
    for (const [message, digest] of vectors) assert.equal(hex(sha256(bytesOf(message))), digest)
    for (let length = 50; length < 140; length++) {
      const message = 'x'.repeat(length)
      assert.equal(hex(sha256(bytesOf(message))), createHash('sha256').update(message).digest('hex'))
    }
  })

  it('agrees with node:crypto on SHA-256, HMAC-SHA256 (keys shorter and longer than a block) and HKDF', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.uint8Array({ maxLength: 150 }), (key, message) => {
        assert.equal(hex(sha256(message)), createHash('sha256').update(message).digest('hex'))
        assert.equal(
          hex(hmacSha256Bytes(key, message)),
          createHmac('sha256', key).update(message).digest('hex'),
        )
        const secret = key.length === 0 ? new Uint8Array([1]) : key
        assert.equal(
          hex(hkdfSha256(secret, bytesOf('tessera'), message, 32)),
          Buffer.from(hkdfSync('sha256', secret, 'tessera', message, 32)).toString('hex'),
        )
      }),
      { numRuns: RUNS },
    )
  })

  it('signs, hashes, derives and compares exactly as the node:crypto path does', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 64 }),
        fc.string({ maxLength: 200 }),
        (key, text) => {
          assert.equal(portable.hmacSha256(key, text), onNode.hmacSha256(key, text))
          assert.equal(portable.sha256Hex(text), onNode.sha256Hex(text))
          assert.deepEqual(portable.deriveKey(key, text), onNode.deriveKey(key, text))
          const signature = onNode.hmacSha256(key, text)
          assert.equal(portable.safeEqual(signature, signature), true)
          assert.equal(portable.safeEqual(signature, `${signature.slice(0, -1)}A`), signature.endsWith('A'))
          assert.equal(portable.safeEqual(signature, signature.slice(1)), false)
          assert.equal(
            portable.base64urlToUtf8(portable.utf8ToBase64url(text)),
            onNode.base64urlToUtf8(onNode.utf8ToBase64url(text)),
          )
        },
      ),
      { numRuns: RUNS },
    )
  })

  it('decodes only strict base64url, on both paths alike: no other alphabet, padding, whitespace or stray character', () => {
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
    const strays = ['+', '/', '=', ' ', '\t', '\n', '.', '%', 'é', '\u0000']
    const character = fc.oneof(
      { weight: 9, arbitrary: fc.constantFrom(...alphabet) },
      { weight: 1, arbitrary: fc.constantFrom(...strays) },
    )
    fc.assert(
      fc.property(fc.array(character, { maxLength: 40 }), (characters) => {
        const value = characters.join('')
        const strict = /^[A-Za-z0-9_-]*$/.test(value) && value.length % 4 !== 1
        const expected = strict ? Buffer.from(value, 'base64url').toString('utf8') : undefined
        assert.equal(onNode.base64urlToUtf8(value), expected, JSON.stringify(value))
        assert.equal(portable.base64urlToUtf8(value), expected, JSON.stringify(value))
      }),
      { numRuns: RUNS * 5 },
    )
  })

  it('seals with AES-256-GCM through Web Crypto in the format node:crypto opens, and the other way round', async () => {
    const key = onNode.deriveKey(bytesOf('key material of at least 32 bytes!'), 'seal')
    await fc.assert(
      fc.asyncProperty(
        fc.string({ maxLength: 500 }),
        fc.string({ maxLength: 40 }),
        async (plaintext, aad) => {
          assert.equal(
            await onNode.aesGcmOpen(key, await portable.aesGcmSeal(key, plaintext, aad), aad),
            plaintext,
          )
          assert.equal(
            await portable.aesGcmOpen(key, await onNode.aesGcmSeal(key, plaintext, aad), aad),
            plaintext,
          )
          const sealed = await portable.aesGcmSeal(key, plaintext, aad)
          assert.equal(
            await portable.aesGcmOpen(key, sealed, `${aad}x`),
            undefined,
            'the AAD is authenticated',
          )
          const flipped = `${sealed.slice(0, 20)}${sealed[20] === 'A' ? 'B' : 'A'}${sealed.slice(21)}`
          assert.equal(await portable.aesGcmOpen(key, flipped, aad), undefined, 'a flipped byte fails')
        },
      ),
      { numRuns: Math.min(RUNS, 500) },
    )
  })

  it('draws random tokens of the asked length from the CSPRNG, all distinct', () => {
    const tokens = new Set(Array.from({ length: 1_000 }, () => portable.randomToken(32)))
    assert.equal(tokens.size, 1_000)
    for (const token of tokens) assert.match(token, /^[A-Za-z0-9_-]{43}$/)
  })
})

describe('MacKey (HMAC-SHA256 with the key blocks hashed once)', () => {
  const keyOf = (seed: Uint8Array) => onNode.deriveKey(seed.length === 0 ? new Uint8Array([7]) : seed, 'mac')

  it('signs exactly as createHmac does, ASCII and non-ASCII messages of every length across block edges', () => {
    const key = keyOf(bytesOf('key material of at least 32 bytes!'))
    const mac = new onNode.MacKey(key)
    for (let length = 0; length < 200; length++) {
      for (const message of ['s'.repeat(length), `${'é'.repeat(length % 7)}${'x'.repeat(length)}`]) {
        assert.equal(mac.sign(message), createHmac('sha256', key).update(message).digest('base64url'))
      }
    }
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), fc.string({ maxLength: 300 }), (seed, message) => {
        const key = keyOf(seed)
        const expected = createHmac('sha256', key).update(message).digest('base64url')
        for (const instance of [onNode, portable]) {
          const mac = new instance.MacKey(key)
          assert.equal(mac.sign(message), expected)
          assert.equal(mac.verify(message, expected), true)
        }
      }),
      { numRuns: RUNS },
    )
  })

  it('verifies only the one spelling of the right MAC: every character changed, every trailing bit set, other lengths', () => {
    const key = keyOf(bytesOf('another key material, 32 bytes or more'))
    const mac = new onNode.MacKey(key)
    const message = 'sid=AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abc'
    const good = mac.sign(message)
    assert.equal(mac.verify(message, good), true)
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
    for (let position = 0; position < good.length; position++) {
      for (const replacement of [...alphabet, '=', '+', '/', '.', 'é', '\u0000']) {
        if (replacement === good[position]) continue
        const forged = `${good.slice(0, position)}${replacement}${good.slice(position + 1)}`
        // Buffer's base64url decoder ignores the last character's two low bits; the MAC check must not.
        assert.equal(mac.verify(message, forged), false, `position ${position} as ${replacement}`)
      }
    }
    for (const wrongLength of ['', good.slice(1), `${good}A`, `${good}=`]) {
      assert.equal(mac.verify(message, wrongLength), false)
    }
    assert.equal(mac.verify(`${message}x`, good), false)
    assert.equal(
      new onNode.MacKey(keyOf(bytesOf('a different key, also 32 bytes long'))).verify(message, good),
      false,
    )
  })
})
