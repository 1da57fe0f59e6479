import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import { syncBuiltinESMExports } from 'node:module'
import { describe, it, mock } from 'node:test'
import { SECRET_A, SECRET_B } from '../test/support.js'
import { SessionConfigError } from './errors.js'
import { CookieSigner } from './signer.js'

const ID = 'kq3Vh2xT8mW9pL4rJ7cH1sF6gB0dY5zE-aU_iOqXtKw'

describe('CookieSigner', () => {
  it('signs value.signature with a 43-character HMAC-SHA256 and verifies it', () => {
    const signer = new CookieSigner([SECRET_A], 'sid')
    const signed = signer.sign(ID)
    assert.match(signed, /^[\w-]{43}\.[\w-]{43}$/)
    assert.deepEqual(signer.unsign(signed), { value: ID, renew: false })
  })

  it('compares signatures with crypto.timingSafeEqual', () => {
    const signer = new CookieSigner([SECRET_A], 'sid')
    const signed = signer.sign(ID)
    const spy = mock.method(crypto, 'timingSafeEqual')
    syncBuiltinESMExports()
    try {
      signer.unsign(`${signed.slice(0, -1)}${signed.endsWith('A') ? 'B' : 'A'}`)
      assert.equal(spy.mock.callCount(), 1)
    } finally {
      spy.mock.restore()
      syncBuiltinESMExports()
    }
  })

  it('rejects wrong first byte, wrong last byte, one short, one long, padding, whitespace, extra segments and no signature', () => {
    const signer = new CookieSigner([SECRET_A], 'sid')
    const signed = signer.sign(ID)
    const signature = signed.slice(ID.length + 1)
    const flip = (c: string) => (c === 'A' ? 'B' : 'A')
    for (const variant of [
      `${ID}.${flip(signature[0]!)}${signature.slice(1)}`,
      `${ID}.${signature.slice(0, -1)}${flip(signature.at(-1)!)}`,
      `${ID}.${signature.slice(0, -1)}`,
      `${signed}A`,
      `${signed}=`,
      ` ${signed}`,
      `${signed} `,
      `${signed}.${signature}`,
      ID,
      `${ID}.`,
      `.${signature}`,
      '',
    ]) {
      assert.equal(signer.unsign(variant), undefined, JSON.stringify(variant))
    }
  })

  it('binds the signature to its purpose: a value signed for another cookie does not verify', () => {
    const flash = new CookieSigner([SECRET_A], 'flash').sign(ID)
    assert.equal(new CookieSigner([SECRET_A], 'sid').unsign(flash), undefined)
  })

  it('signs with the first secret, verifies with any, and flags an older one for renewal', () => {
    const old = new CookieSigner([SECRET_A], 'sid').sign(ID)
    const rotating = new CookieSigner([SECRET_B, SECRET_A], 'sid')
    assert.deepEqual(rotating.unsign(old), { value: ID, renew: true })
    assert.deepEqual(new CookieSigner([SECRET_B], 'sid').unsign(rotating.sign(ID)), {
      value: ID,
      renew: false,
    })
    assert.equal(new CookieSigner([SECRET_B], 'sid').unsign(old), undefined)
  })

  it('never puts the expected signature or the secret in an error or result', () => {
    const signer = new CookieSigner([SECRET_A], 'sid')
    const expected = signer.sign(ID).slice(ID.length + 1)
    const result = JSON.stringify(signer.unsign(`${ID}.${'A'.repeat(43)}`) ?? null)
    assert.ok(!result.includes(expected))
    try {
      new CookieSigner(['short'], 'sid')
    } catch (error) {
      assert.ok(error instanceof SessionConfigError)
      assert.ok(!error.message.includes('short'))
    }
  })

  it('refuses secrets under 32 bytes or typed by hand, and accepts 32 random bytes', () => {
    for (const secret of ['keyboard cat', 'secret', 'changeme', 'x'.repeat(31), 'ab'.repeat(32)]) {
      assert.throws(() => new CookieSigner([secret], 'sid'), SessionConfigError)
    }
    assert.doesNotThrow(() => new CookieSigner([crypto.randomBytes(32)], 'sid'))
  })
})
