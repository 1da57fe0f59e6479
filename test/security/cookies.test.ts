// Checklist C and D (docs/security.md): Set-Cookie, size limits, clearing, and reading the Cookie header.
import assert from 'node:assert/strict'
import { performance } from 'node:perf_hooks'
import { describe, it, mock } from 'node:test'
import express from 'express'
import { CookieJar } from 'tough-cookie'
import { session as expressSession } from '../../src/adapters/express.js'
import { withSession } from '../../src/adapters/node.js'
import { SessionTooLargeError } from '../../src/errors.js'
import { MacKey, sha256Hex } from '../../src/internal/crypto.js'
import { createSessionManager } from '../../src/manager.js'
import { CookieSigner } from '../../src/signer.js'
import { CookieStore } from '../../src/stores/cookie.js'
import { MemoryStore } from '../../src/stores/memory.js'
import { attribute, request, SECRET_A } from '../support.js'
import { type Data, idOf, serve, setup, tokenOf } from './support.js'

/** The Cookie header a browser would send back for these Set-Cookie headers (live cookies only). */
const cookieHeader = (setCookie: readonly string[]) =>
  setCookie
    .filter((header) => !/;\s*Max-Age=0/i.test(header))
    .map((header) => header.split(';')[0])
    .join('; ')

describe('C. cookie attributes and Set-Cookie', () => {
  it('#11: caps serialized session data at 65,536 bytes by default, and keeps the old session on overflow', async () => {
    const { manager, spy, memory, clock } = setup()
    const stored = async () => {
      const key = spy.calls.findLast((call) => call.method === 'create' || call.method === 'update')?.key
      return Buffer.byteLength((await memory.get(String(key), clock.now()))?.data ?? '')
    }
    // The bytes around the data (metadata, JSON punctuation) are measured, so the test pins only the cap.
    await request(manager, undefined, (s) => s.set('blob', ''))
    const room = 65_536 - (await stored())
    const fits = await request(manager, undefined, (s) => s.set('blob', 'x'.repeat(room)))
    assert.equal(await stored(), 65_536)

    spy.reset()
    const over = await manager.load({ cookie: undefined })
    over.set('blob', 'x'.repeat(room + 1))
    await assert.rejects(manager.commit(over), SessionTooLargeError)
    assert.equal(spy.count('create'), 0, 'nothing written')

    // The checklist's case: a 1 MB write to a live session fails, and the old data stays.
    const loaded = await manager.load({ cookie: fits.cookie })
    loaded.set('blob', 'é'.repeat(500_000))
    spy.reset()
    await assert.rejects(manager.commit(loaded), SessionTooLargeError)
    assert.equal(spy.count('update'), 0)
    assert.equal((await request(manager, fits.cookie)).session.get('blob')?.length, room)
  })

  it('#11: serves a read-only request for a stored session over a lowered maxDataBytes, and refuses only a write', async () => {
    const { manager: generous, clock, memory, spy } = setup({ maxDataBytes: 128 * 1024 })
    const { cookie } = await request(generous, undefined, (s) => s.set('blob', 'x'.repeat(70_000)))
    // The same store after a deploy that lowered the limit to its default (stored text up to 4x loads).
    const manager = createSessionManager<Data>({
      store: spy.store,
      secrets: [SECRET_A],
      clock: clock.now,
      onWarning: () => {},
    })
    assert.equal((await request(manager, cookie)).session.get('blob')?.length, 70_000)
    clock.advance(2 * 60_000)
    spy.reset()
    const touched = await request(manager, cookie, (s) => s.get('blob'))
    assert.equal(spy.count('touch'), 1, 'a due refresh still happens')
    assert.equal(touched.result.setCookie.length, 1)
    spy.reset()
    await assert.rejects(
      request(manager, cookie, (s) => s.set('visits', 1)),
      SessionTooLargeError,
    )
    assert.equal(spy.count('update'), 0)
    assert.equal((await memory.get(sha256Hex(idOf(cookie!)), clock.now()))?.data.includes('visits'), false)
  })

  it('#12: keeps the Set-Cookie headers of setHeader() and of writeHead() pairs beside the session cookie', async () => {
    const sessions = createSessionManager<Data>({
      store: new MemoryStore(),
      secrets: [SECRET_A],
      onWarning: () => {},
    })
    const url = await serve(
      withSession(sessions, (_req, res, session) => {
        session.set('visits', 1)
        res.setHeader('Set-Cookie', 'a=1')
        res.writeHead(200, [
          ['X-A', '1'],
          ['Set-Cookie', 'b=2'],
        ])
        res.end('ok')
      }),
    )
    const response = await fetch(url)
    assert.equal(response.status, 200)
    assert.equal(response.headers.get('x-a'), '1')
    const cookies = response.headers.getSetCookie().map((header) => header.split(';')[0]!.split('=')[0])
    assert.deepEqual(cookies.sort(), ['__Host-sid', 'a', 'b'])
    assert.equal(await response.text(), 'ok')
  })

  it("#12: keeps Express's res.cookie() beside the session cookie", async () => {
    const sessions = createSessionManager<Data>({
      store: new MemoryStore(),
      secrets: [SECRET_A],
      onWarning: () => {},
    })
    const app = express()
    app.use(expressSession(sessions))
    app.get('/', (req, res) => {
      req.session.set('visits', 1)
      res.cookie('theme', 'dark', { httpOnly: true })
      res.send('ok')
    })
    const url = await serve(app)
    const response = await fetch(url)
    const cookies = response.headers.getSetCookie()
    assert.equal(cookies.length, 2, cookies.join('\n'))
    assert.ok(cookies.some((header) => header.startsWith('theme=dark;')))
    assert.ok(cookies.some((header) => header.startsWith('__Host-sid=')))
  })

  it('#13: clears the cookie on logout with its own attributes, Max-Age=0 and a past Expires, so a browser drops it', async () => {
    const { manager } = setup()
    const jar = new CookieJar()
    const origin = 'https://localhost/'
    const login = await request(manager, undefined, (s) => s.login('alice'))
    for (const header of login.result.setCookie) await jar.setCookie(header, origin)
    assert.equal((await jar.getCookies(origin)).length, 1)

    const logout = await request(manager, await jar.getCookieString(origin), (s) => s.destroy())
    assert.equal(logout.result.setCookie.length, 1)
    const clearing = logout.result.setCookie[0]!
    assert.ok(clearing.startsWith('__Host-sid=;'), clearing)
    assert.equal(attribute(clearing, 'Max-Age'), '0')
    assert.ok(Date.parse(String(attribute(clearing, 'Expires'))) <= 0, 'Expires at the epoch')
    for (const [name, value] of [
      ['Path', '/'],
      ['Secure', true],
      ['HttpOnly', true],
      ['SameSite', 'Lax'],
      ['Domain', undefined],
    ] as const) {
      assert.equal(attribute(clearing, name), value, name)
      assert.equal(attribute(login.result.setCookie[0]!, name), value, name)
    }
    await jar.setCookie(clearing, origin)
    assert.deepEqual(await jar.getCookies(origin), [])
  })

  it('#13: lets a persistent cookie expire in the browser with the session: Max-Age follows every idle refresh', async () => {
    const { manager, clock } = setup({ touchInterval: 60_000 })
    const first = await request(manager, undefined, (s) => s.set('visits', 1))
    assert.equal(attribute(first.result.setCookie[0]!, 'Max-Age'), String(manager.idleTimeout / 1000))
    clock.advance(5 * 60_000)
    const touched = await request(manager, first.cookie, (s) => s.get('visits'))
    assert.equal(attribute(touched.result.setCookie[0]!, 'Max-Age'), String(manager.idleTimeout / 1000))
  })

  it('#13: sends no clearing cookie for an ID that ended elsewhere, so a request racing a login cannot log it out', async () => {
    const { manager } = setup()
    const before = await request(manager, undefined, (s) => s.set('visits', 1))
    const inFlight = manager.load({ cookie: before.cookie }) // a parallel fetch sent with the pre-login cookie
    const loggedIn = await request(manager, before.cookie, (s) => s.login('alice'))
    const racing = await request(manager, before.cookie, (s) => s.get('visits')) // arrives after the login
    assert.equal(racing.session.isNew, true)
    assert.deepEqual(racing.result.setCookie, [], 'a clearing cookie here would delete the new login cookie')
    await manager.commit(await inFlight)
    assert.equal((await request(manager, loggedIn.cookie)).session.userId, 'alice')
  })
})

describe('D. cookie parsing', () => {
  it('#15: ignores a validly signed value under every look-alike name, without a store read', async () => {
    const { manager, spy } = setup()
    const { cookie } = await request(manager, undefined, (s) => s.set('userId', 'alice'))
    const value = tokenOf(cookie!)
    assert.equal((await request(manager, `__Host-sid=${value}`)).session.get('userId'), 'alice')
    spy.reset()
    for (const header of [
      `=__Host-sid=${value}`,
      `=${value}`,
      `__host-sid=${value}`,
      `__HOST-SID=${value}`,
      `__Host-SID=${value}`,
      `..Host-sid=${value}`,
      `_[Host-sid=${value}`,
      `%5F%5FHost-sid=${value}`,
      `__Host%2Dsid=${value}`,
      `__Host-sid\u00a0=${value}`,
      `__Host-sid.0=${value}`,
      `__Host-sid-cache=${value}`,
      `sid=${value}`,
      `__Secure-sid=${value}`,
      `x__Host-sid=${value}`,
    ]) {
      const { session } = await request(manager, header)
      assert.equal(session.isNew, true, header)
    }
    assert.equal(spy.count('get'), 0)
  })

  it('#16: fails closed on a repeated stateless chunk name, even with identical copies', async () => {
    const manager = createSessionManager<Data>({
      store: new CookieStore(),
      secrets: [SECRET_A],
      onWarning: () => {},
    })
    const created = await manager.load({ cookie: undefined })
    created.set('blob', 'x'.repeat(4000))
    const { setCookie } = await manager.commit(created)
    assert.ok(setCookie.length >= 2, 'the session spans several chunks')
    const header = cookieHeader(setCookie)
    assert.equal((await manager.load({ cookie: header })).get('blob')?.length, 4000, 'control')
    const [first, second] = header.split('; ') as [string, string]
    for (const tossed of [
      `${first}; ${first}; ${second}`,
      `${first}; ${second}; ${second}`,
      `${first}; __Host-sid.0=t1.AAAA; ${second}`,
      [header, first],
    ]) {
      const session = await manager.load({ cookie: tossed })
      assert.equal(session.isNew, true, String(tossed))
    }
    // One whole cookie, repeated, fails closed too.
    const small = await manager.load({ cookie: undefined })
    small.set('visits', 1)
    const whole = cookieHeader((await manager.commit(small)).setCookie)
    assert.equal((await manager.load({ cookie: whole })).get('visits'), 1)
    assert.equal((await manager.load({ cookie: `${whole}; ${whole}` })).isNew, true)
  })

  it('#16: goes to the store, not to the copy, when two hybrid copies arrive', async () => {
    const { manager, spy, clock } = setup({ hybrid: { revalidateAfter: 60_000 } })
    const first = await manager.load({ cookie: undefined })
    first.set('visits', 1)
    const header = cookieHeader((await manager.commit(first)).setCookie)
    const [sid, copy] = header.split('; ') as [string, string]
    assert.ok(copy.startsWith('__Host-sid-cache='))
    clock.advance(1000)
    const second = await manager.load({ cookie: header })
    second.set('visits', 2)
    // The session cookie is not re-sent (its deadline moved by less than touchInterval); the copy is.
    const newer = cookieHeader((await manager.commit(second)).setCookie)
      .split('; ')
      .find((cookie) => cookie.startsWith('__Host-sid-cache='))!
    assert.notEqual(newer, copy)

    spy.reset()
    assert.equal((await manager.load({ cookie: `${sid}; ${newer}` })).get('visits'), 2)
    assert.equal(spy.count('get'), 0, 'control: one copy answers without the store')
    for (const cookie of [
      `${sid}; ${copy}; ${copy}`,
      `${sid}; ${copy}; ${newer}`,
      [`${sid}; ${newer}`, newer],
    ]) {
      spy.reset()
      const session = await manager.load({ cookie })
      assert.equal(spy.count('get'), 1, String(cookie))
      assert.equal(session.get('visits'), 2, 'the store has the truth')
    }
  })

  it('#17: loads each of 1,000 adversarial requests in under 5 ms at the 99th percentile', async () => {
    const { manager, spy } = setup()
    const { cookie } = await request(manager, undefined, (s) => s.set('visits', 1))
    const value = tokenOf(cookie!)
    const headers: (string | string[])[] = [
      ';'.repeat(1_000_000),
      'a=1; '.repeat(100_000),
      `__Host-sid=${'A'.repeat(64 * 1024)}`,
      `__Host-sid=${'A'.repeat(15_000)}.${'B'.repeat(43)}`,
      Array.from({ length: 4 }, (_, i) => `__Host-sid=${String(i).repeat(3900)}.${'C'.repeat(43)}`).join(
        '; ',
      ),
      Array.from({ length: 100 }, (_, i) => `__Host-sid=${value.slice(0, -2)}${i}`).join('; '),
      Array.from({ length: 1000 }, () => `x=${'y'.repeat(10)}`),
      `${'__Host-sid='.repeat(1000)}${value}`,
    ]
    for (const header of headers) await manager.load({ cookie: header }) // warm up
    spy.reset()
    // This machine is shared: a round disturbed by another process's burst is measured again, up to 5 times.
    const p99s: number[] = []
    for (let round = 0; round < 5 && !(p99s.at(-1)! < 5); round++) {
      const times: number[] = []
      for (let i = 0; i < 1000; i++) {
        const started = performance.now()
        const session = await manager.load({ cookie: headers[i % headers.length] })
        times.push(performance.now() - started)
        assert.equal(session.isNew, true)
      }
      times.sort((a, b) => a - b)
      p99s.push(times[Math.floor(times.length * 0.99)]!)
    }
    assert.ok(p99s.at(-1)! < 5, `p99 of each round, ms: ${p99s.map((t) => t.toFixed(3)).join(', ')}`)
    assert.equal(spy.count('get'), 0)
  })

  it('#17: checks the length of a cookie value before computing any HMAC', async () => {
    const { manager, spy } = setup()
    const hmac = mock.method(MacKey.prototype, 'verify')
    try {
      for (const length of [513, 1_000, 10_000]) {
        const value = `${'A'.repeat(length - 44)}.${'B'.repeat(43)}`
        assert.equal(value.length, length)
        const session = await manager.load({ cookie: `__Host-sid=${value}` })
        assert.equal(session.isNew, true)
      }
      assert.equal(hmac.mock.callCount(), 0)
      await manager.load({ cookie: `__Host-sid=${'A'.repeat(468)}.${'B'.repeat(43)}` }) // 512: HMAC'd, refused
      assert.ok(hmac.mock.callCount() >= 1, 'control: a value of token length is verified')
    } finally {
      hmac.mock.restore()
    }
    assert.equal(spy.count('get'), 0)
  })

  it('#36: gives a fresh session, without a store read, for non-ASCII, NUL, CR, LF or TAB inside the cookie value', async () => {
    const { manager, spy } = setup()
    const { cookie } = await request(manager, undefined, (s) => s.set('userId', 'alice'))
    const value = tokenOf(cookie!)
    const [id, signature] = value.split('.') as [string, string]
    const signer = new CookieSigner([SECRET_A], manager.cookieName)
    spy.reset()
    for (const inner of [
      'é',
      '😀',
      '\ud800',
      '\udfff',
      '\u0000',
      '\r',
      '\n',
      '\t',
      '\r\n',
      '\u00a0',
      '\u2028',
    ]) {
      for (const mangled of [
        `${id}${inner}.${signature}`,
        `${id}.${signature}${inner}x`,
        ...(inner === '\t' ? [] : [`${inner}${value}`]), // a tab before the value is optional whitespace
        signer.sign(`${id.slice(0, 20)}${inner}${id.slice(21)}`), // validly signed, but not an ID
        inner,
      ]) {
        const header = `__Host-sid=${mangled}`
        const session = await manager.load({ cookie: header })
        assert.equal(session.isNew, true, JSON.stringify(header))
        const fresh = await manager.load({ cookie: [header, `__Host-sid=${mangled}; other=1`] })
        assert.equal(fresh.isNew, true, JSON.stringify(header))
      }
    }
    assert.equal(spy.count('get'), 0)
  })
})
