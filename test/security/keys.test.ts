// Checklist E (docs/security.md): key separation by purpose, and failures that leak nothing.
import assert from 'node:assert/strict'
import { createDecipheriv, createHmac, hkdfSync } from 'node:crypto'
import { describe, it } from 'node:test'
import { inspect } from 'node:util'
import { withSession } from '../../src/adapters/node.js'
import { generateSessionId } from '../../src/id.js'
import { sha256Hex } from '../../src/internal/crypto.js'
import { createSessionManager } from '../../src/manager.js'
import { CookieSigner } from '../../src/signer.js'
import type { Store, StoreRecord } from '../../src/store.js'
import { CookieStore } from '../../src/stores/cookie.js'
import { MemoryStore } from '../../src/stores/memory.js'
import { fakeClock, request, SECRET_A, SECRET_B } from '../support.js'
import { bound, type Data, idOf, serve, setup, tokenOf } from './support.js'

const quiet = { onWarning: () => {} }

/** HKDF-SHA256 of the test secret, as the docs describe the key schedule (salt `tessera`, one info per purpose). */
const derive = (info: string) => Buffer.from(hkdfSync('sha256', Buffer.from(SECRET_A), 'tessera', info, 32))
const hmac = (key: Uint8Array, message: string) =>
  createHmac('sha256', key).update(message).digest('base64url')

/** AES-256-GCM open of `nonce ‖ ciphertext ‖ tag` (base64url), or undefined. */
function aesOpen(key: Uint8Array, sealed: string, aad: string): string | undefined {
  const bytes = Buffer.from(sealed, 'base64url')
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, bytes.subarray(0, 12), { authTagLength: 16 })
    decipher.setAAD(Buffer.from(aad))
    decipher.setAuthTag(bytes.subarray(bytes.length - 16))
    return Buffer.concat([
      decipher.update(bytes.subarray(12, bytes.length - 16)),
      decipher.final(),
    ]).toString()
  } catch {
    return undefined
  }
}

describe('E. signing and key management', () => {
  it('#22: signs, seals and MACs under three HKDF keys, none of them the raw secret or shared', async () => {
    const raw = Buffer.from(SECRET_A)
    const keys = {
      sign: derive('tessera/v1/cookie-signature'),
      seal: derive('tessera/v1/session-seal'),
      mac: derive('tessera/v1/session-signature'),
    }
    const all = [raw.subarray(0, 32), keys.sign, keys.seal, keys.mac]
    assert.equal(new Set(all.map((key) => key.toString('hex'))).size, 4, 'pairwise distinct')

    // The session cookie: HMAC under the signing key, over the cookie name and the ID.
    const server = createSessionManager<Data>({ store: new MemoryStore(), secrets: [SECRET_A], ...quiet })
    const cookie = (await request(server, undefined, (s) => s.set('visits', 1))).cookie!
    const [id, signature] = tokenOf(cookie).split('.') as [string, string]
    const message = `__Host-sid=${id}`
    assert.equal(signature, hmac(keys.sign, message))
    for (const key of [raw, keys.seal, keys.mac]) {
      assert.notEqual(signature, hmac(key, message))
      assert.notEqual(signature, hmac(key, id))
    }

    // The stateless seal: AES-256-GCM under the hour's sealing key, the cookie name and the hour in the AAD.
    const sealed = createSessionManager<Data>({ store: new CookieStore(), secrets: [SECRET_A], ...quiet })
    const sealedValue = tokenOf((await request(sealed, undefined, (s) => s.set('visits', 1))).cookie!)
    const [sealVersion, period, body] = sealedValue.split('.') as [string, string, string]
    assert.equal(sealVersion, 't2')
    assert.equal(Number.parseInt(period, 36), Math.floor(Date.now() / 3_600_000), 'keyed by the current hour')
    const hourKey = derive(`tessera/v2/session-seal/${period}`)
    const aad = `t2.__Host-sid.${period}`
    assert.match(aesOpen(hourKey, body, aad) ?? '', /^\d+\.\{"v":1/)
    for (const key of [raw.subarray(0, 32), keys.sign, keys.seal, keys.mac]) {
      assert.equal(aesOpen(key, body, aad), undefined)
    }
    const nextHourKey = derive(`tessera/v2/session-seal/${(Number.parseInt(period, 36) + 1).toString(36)}`)
    assert.equal(aesOpen(nextHourKey, body, aad), undefined, 'each hour has its own key')

    // Signed-only stateless mode: an HMAC under its own key.
    const signedOnly = createSessionManager<Data>({
      store: new CookieStore({ signedOnly: true }),
      secrets: [SECRET_A],
      ...quiet,
    })
    const signedValue = tokenOf((await request(signedOnly, undefined, (s) => s.set('visits', 1))).cookie!)
    const [version, payload, mac] = signedValue.split('.') as [string, string, string]
    assert.equal(version, 's1')
    assert.equal(mac, hmac(keys.mac, `s1.__Host-sid.${payload}`))
    for (const key of [raw, keys.sign, keys.seal]) assert.notEqual(mac, hmac(key, `s1.__Host-sid.${payload}`))
  })

  it('#22: never accepts a value made for one purpose as another: CSRF token, session cookie, stateless seal, signed-only seal, hybrid copy, another cookie name', async () => {
    const clock = fakeClock()
    const memory = new MemoryStore({ cleanupIntervalMs: 0 })
    let reads = 0
    const counting: Store = new Proxy(memory, {
      get: (target, property) =>
        property === 'get'
          ? (...args: Parameters<Store['get']>) => {
              reads++
              return target.get(...args)
            }
          : bound(target, property),
    })
    const common = { secrets: [SECRET_A], clock: clock.now, ...quiet }
    const server = createSessionManager<Data>({ store: counting, hybrid: {}, ...common })
    const sealed = createSessionManager<Data>({ store: new CookieStore(), ...common })
    const signedOnly = createSessionManager<Data>({ store: new CookieStore({ signedOnly: true }), ...common })
    const flash = createSessionManager<Data>({
      store: new MemoryStore(),
      cookie: { name: 'flash' },
      ...common,
    })

    const first = await server.load({ cookie: undefined })
    first.set('visits', 1)
    const csrf = first.csrfToken()
    const issued = (await server.commit(first)).setCookie.map((header) => header.split(';')[0]!)
    const sid = tokenOf(issued.find((pair) => pair.startsWith('__Host-sid='))!)
    const copy = tokenOf(issued.find((pair) => pair.startsWith('__Host-sid-cache='))!)
    const value = async (manager: typeof sealed) =>
      tokenOf((await request(manager, undefined, (s) => s.set('visits', 1))).cookie!)
    const stateless = await value(sealed)
    const signed = await value(signedOnly)
    const forFlash = await value(flash)
    assert.match(csrf, /^[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}$/, 'a CSRF token has the session cookie shape')

    reads = 0
    for (const foreign of [csrf, stateless, signed, copy, forFlash]) {
      assert.equal((await server.load({ cookie: `__Host-sid=${foreign}` })).isNew, true, foreign)
    }
    assert.equal(reads, 0, 'no foreign value costs a store read')
    for (const foreign of [sid, csrf, signed, copy]) {
      assert.equal((await sealed.load({ cookie: `__Host-sid=${foreign}` })).isNew, true, foreign)
    }
    for (const foreign of [sid, csrf, stateless, copy]) {
      assert.equal((await signedOnly.load({ cookie: `__Host-sid=${foreign}` })).isNew, true, foreign)
    }
    assert.equal((await flash.load({ cookie: `flash=${sid}` })).isNew, true)
    // A stateless seal, made with the same sealing key, never passes for the hybrid copy: the AAD differs.
    reads = 0
    const served = await server.load({ cookie: `__Host-sid=${sid}; __Host-sid-cache=${stateless}` })
    assert.equal(served.get('visits'), 1)
    assert.equal(reads, 1, 'read from the store, not from the foreign copy')
  })

  it('#23: answers a bad signature, an unknown, expired, destroyed, revoked or regenerated-away ID and a malformed cookie exactly as no cookie', async () => {
    const clock = fakeClock()
    const memory = new MemoryStore({ cleanupIntervalMs: 0 })
    const stale = new Map<string, StoreRecord>()
    // A store that lags behind: it still returns one expired record, as a store without native expiry may.
    const lagging: Store = new Proxy(memory, {
      get: (target, property) =>
        property === 'get'
          ? async (key: string, now: number) => stale.get(key) ?? target.get(key, now)
          : bound(target, property),
    })
    const sessions = createSessionManager<Data>({
      store: lagging,
      secrets: [SECRET_A],
      clock: clock.now,
      ...quiet,
    })
    const reasons: string[] = []
    sessions.on('rejected', ({ reason }) => reasons.push(reason))
    const visit = (cookie: string | undefined, handle: Parameters<typeof request<Data>>[2]) =>
      request(sessions, cookie, handle).then((r) => r.cookie!)

    const expired = await visit(undefined, (s) => s.set('userId', 'eve'))
    const lagged = await visit(undefined, (s) => s.set('userId', 'eve'))
    stale.set(sha256Hex(idOf(lagged)), (await memory.get(sha256Hex(idOf(lagged)), clock.now()))!)
    clock.advance(sessions.idleTimeout + 1)
    const live = await visit(undefined, (s) => s.set('userId', 'alice'))
    const destroyed = await visit(undefined, (s) => s.set('userId', 'dan'))
    await request(sessions, destroyed, (s) => s.destroy())
    const revoked = await visit(undefined, (s) => s.login('bob'))
    await sessions.revokeSessions('bob')
    const regenerated = await visit(undefined, (s) => s.set('userId', 'rob'))
    await request(sessions, regenerated, (s) => s.regenerate())
    const signature = tokenOf(live).split('.')[1]!
    const flipped = `${live.slice(0, -1)}${signature.endsWith('A') ? 'B' : 'A'}`
    const unknown = `__Host-sid=${new CookieSigner([SECRET_A], '__Host-sid').sign(generateSessionId())}`
    const oldSecret = `__Host-sid=${new CookieSigner([SECRET_B], '__Host-sid').sign(idOf(live))}`
    const failures = {
      'bad signature': flipped,
      'dropped secret': oldSecret,
      unknown,
      expired,
      'expired, returned by a lagging store': lagged,
      destroyed,
      revoked,
      'regenerated away': regenerated,
      malformed: '__Host-sid=garbage',
      empty: '__Host-sid=',
    }

    const url = await serve(
      withSession(sessions, (req, res, session) => {
        const user = session.get('userId')
        if (req.url === '/write') session.set('visits', 1)
        res.setHeader('content-type', 'text/plain; charset=utf-8')
        res.end(user === undefined ? 'hello, guest' : `hello, ${user}`)
      }),
    )
    const snapshot = async (path: string, cookie: string | undefined) => {
      const response = await fetch(`${url}${path}`, cookie === undefined ? {} : { headers: { cookie } })
      const headers = [...response.headers]
        .filter(([name]) => name !== 'date' && name !== 'set-cookie')
        .map(([name, value]) => `${name}: ${value}`)
      const cookies = response.headers.getSetCookie().map((header) => header.replace(/=[^;]*/, '=<value>'))
      return { status: response.status, headers, cookies, body: await response.text() }
    }
    assert.equal((await snapshot('/read', live)).body, 'hello, alice', 'control: the live cookie works')
    for (const path of ['/read', '/write']) {
      const expected = await snapshot(path, undefined)
      assert.equal(expected.body, 'hello, guest')
      assert.equal(expected.cookies.length, path === '/write' ? 1 : 0)
      for (const [kind, cookie] of Object.entries(failures)) {
        assert.deepEqual(await snapshot(path, cookie), expected, `${kind} on ${path}`)
      }
    }
    for (const reason of ['malformed', 'bad-signature', 'unknown', 'expired'])
      assert.ok(reasons.includes(reason))
  })

  it('#23: reports a tampered cookie without the expected signature, the secret or the token', async () => {
    const { manager, warnings } = setup()
    const events: unknown[] = []
    manager.on('rejected', (event) => events.push(event))
    const { cookie } = await request(manager, undefined, (s) => s.set('userId', 'alice'))
    const [id, signature] = tokenOf(cookie!).split('.') as [string, string]
    const tampered = `__Host-sid=${id}.${signature.slice(0, -1)}${signature.endsWith('A') ? 'B' : 'A'}`
    const session = await manager.load({ cookie: tampered })
    assert.equal(session.isNew, true)
    const text = inspect([events, warnings, session, await manager.commit(session)], { depth: null })
    assert.equal(events.length, 1)
    for (const secret of [
      signature,
      id,
      tokenOf(tampered),
      SECRET_A,
      derive('tessera/v1/cookie-signature'),
    ]) {
      const forms =
        typeof secret === 'string' ? [secret] : [secret.toString('base64url'), secret.toString('hex')]
      for (const form of forms) assert.ok(!text.includes(form), `leaked: ${form.slice(0, 8)}…`)
    }
  })
})
