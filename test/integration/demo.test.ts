// The login demo over real HTTP: a server on an ephemeral port, a client that keeps cookies like a browser.
import assert from 'node:assert/strict'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { createSessionManager, type SessionManager } from 'tessera'
import { CookieStore } from 'tessera/cookie'
import { MemoryStore } from 'tessera/memory'
import { createDemoApp, type DemoData } from '../../demo/app.js'
import { Browser } from './browser.js'

const SECRET_OLD = 'vN3kQ8xT2mW9pL4rJ7cH1sF6gB0dY5zE-aU_iOqXtK'
const SECRET_NEW = 'Zr8Lw2Qp5Xn9Tc4Jv7Hb1Md6Gk3Fy0Ss-eA_uIoWqE'
const IDLE = 30 * 60_000

let now = 1_700_000_000_000
const store = new MemoryStore({ cleanupIntervalMs: 0 })
const servers: Server[] = []

async function start(secrets: string[]): Promise<{ origin: string; sessions: SessionManager<DemoData> }> {
  const sessions = createSessionManager<DemoData>({ store, secrets, clock: () => now, idleTimeout: IDLE })
  const server = createDemoApp(sessions).listen(0, '127.0.0.1')
  servers.push(server)
  await new Promise((resolve) => server.once('listening', resolve))
  return { origin: `http://localhost:${(server.address() as AddressInfo).port}`, sessions }
}

/** The CSRF token of the first form on `path`, as a browser would submit it. */
async function formToken(browser: Browser, path = '/'): Promise<string> {
  const html = await (await browser.fetch(path)).text()
  const match = /name="_csrf" value="([^"]+)"/.exec(html)
  assert.ok(match, `no CSRF field on ${path}`)
  return match[1]!
}

async function logIn(browser: Browser, password = 'default'): Promise<Response> {
  const _csrf = await formToken(browser)
  return browser.post('/login', { username: 'rasmus', password, _csrf })
}

async function logOut(browser: Browser): Promise<Response> {
  return browser.post('/logout', { _csrf: await formToken(browser, '/profile') })
}

describe('the login demo over HTTP', () => {
  let origin: string
  before(async () => {
    ;({ origin } = await start([SECRET_OLD]))
  })
  after(() => {
    for (const server of servers) server.close()
  })

  it('walks the whole flow: form, login, profile, reload, logout', async () => {
    const browser = new Browser(origin)
    const form = await browser.fetch('/')
    assert.match(await form.text(), /<input name="username"[\s\S]*<input name="password" type="password"/)
    assert.equal((await browser.fetch('/profile')).status, 401)
    const login = await logIn(browser)
    assert.equal(login.status, 303)
    assert.equal(login.headers.get('location'), '/profile')
    const profile = await browser.fetch('/profile')
    assert.equal(profile.status, 200)
    const html = await profile.text()
    assert.match(html, /Welcome, rasmus!/)
    assert.match(html, /Logged in as rasmus\./, 'the flash message after login')
    const reload = await (await browser.fetch('/profile')).text()
    assert.match(reload, /Welcome, rasmus!/, 'still logged in on reload')
    assert.doesNotMatch(reload, /Logged in as/, 'the flash message is shown once')
    const logout = await logOut(browser)
    assert.equal(logout.status, 303)
    assert.equal(await browser.cookie('__Host-sid'), undefined, 'the browser dropped the cookie')
    assert.match(await (await browser.fetch('/profile')).text(), /Please log in first/)
  })

  it('sends the session cookie HttpOnly, Secure, SameSite=Lax, Path=/ under the __Host- prefix', async () => {
    const login = await logIn(new Browser(origin))
    const header = login.headers.getSetCookie()[0]!
    assert.equal(login.headers.get('cache-control'), 'no-store')
    assert.match(
      header,
      /^__Host-sid=[\w-]{43}\.[\w-]{43}; Max-Age=1800; Path=\/; Secure; HttpOnly; SameSite=Lax$/,
    )
  })

  it('serves Prometheus metrics of the session layer at /metrics', async () => {
    await logIn(new Browser(origin))
    const response = await fetch(`${origin}/metrics`)
    assert.match(response.headers.get('content-type') ?? '', /^text\/plain/)
    const text = await response.text()
    assert.match(text, /^tessera_sessions_total\{event="logged_in"\} [1-9]\d*$/m)
    assert.match(text, /^tessera_store_duration_seconds_count\{operation="create",outcome="ok"\} [1-9]\d*$/m)
    assert.deepEqual(response.headers.getSetCookie(), [], 'a scrape creates no session')
  })

  it('refuses a wrong password without creating a session', async () => {
    const browser = new Browser(origin)
    const response = await logIn(browser, 'wrong')
    assert.equal(response.status, 401)
    assert.equal(response.headers.getSetCookie().length, 0)
    assert.match(await (await browser.fetch('/profile')).text(), /Please log in first/)
  })

  it('sends no Set-Cookie to a visitor on pages that do not use the session', async () => {
    const browser = new Browser(origin)
    for (const path of ['/profile', '/profile', '/missing']) {
      assert.deepEqual((await browser.fetch(path)).headers.getSetCookie(), [])
    }
  })

  it('refuses a form post without its CSRF token (403) and keeps the user logged in', async () => {
    const browser = new Browser(origin)
    await logIn(browser)
    const forged = await browser.post('/logout')
    assert.equal(forged.status, 403)
    assert.match(await (await browser.fetch('/profile')).text(), /Welcome, rasmus!/)
    const crossSite = await browser.fetch('/logout', {
      method: 'POST',
      headers: { origin: 'https://evil.example' },
      body: new URLSearchParams({ _csrf: await formToken(browser, '/profile') }),
    })
    assert.equal(crossSite.status, 403)
  })

  it('treats a tampered cookie as logged out and never adopts it', async () => {
    const browser = new Browser(origin)
    await logIn(browser)
    const value = (await browser.cookie('__Host-sid'))!
    const [id, signature] = value.split('.') as [string, string]
    const flipped = `${id.slice(0, -1)}${id.endsWith('A') ? 'B' : 'A'}.${signature}`
    const attacker = new Browser(origin)
    await attacker.setCookie('__Host-sid', flipped)
    assert.match(await (await attacker.fetch('/profile')).text(), /Please log in first/)
    await logIn(attacker)
    assert.notEqual((await attacker.cookie('__Host-sid'))!.split('.')[0], flipped.split('.')[0])
  })

  it('leaves the pre-login ID dead after login regenerates it (session fixation)', async () => {
    const browser = new Browser(origin)
    const attacker = new Browser(origin)
    // The attacker opens the login page, gets an anonymous session, and plants its cookie in the victim's browser.
    await formToken(attacker)
    const fixed = (await attacker.cookie('__Host-sid'))!
    await browser.setCookie('__Host-sid', fixed)
    await logIn(browser)
    assert.notEqual(await browser.cookie('__Host-sid'), fixed)
    assert.match(await (await attacker.fetch('/profile')).text(), /Please log in first/)
  })

  it('ends the session after the idle timeout (injected clock, no sleeping)', async () => {
    const browser = new Browser(origin)
    await logIn(browser)
    now += IDLE - 1_000
    assert.match(await (await browser.fetch('/profile')).text(), /Welcome, rasmus!/)
    now += IDLE + 1_000
    assert.match(await (await browser.fetch('/profile')).text(), /Please log in first/)
  })

  it('honours a cookie signed with a rotated-out secret and re-issues it under the new one', async () => {
    const browser = new Browser(origin)
    await logIn(browser)
    const oldValue = (await browser.cookie('__Host-sid'))!
    const rotated = await start([SECRET_NEW, SECRET_OLD])
    const moved = new Browser(rotated.origin)
    await moved.setCookie('__Host-sid', oldValue)
    const response = await moved.fetch('/profile')
    assert.match(await response.text(), /Welcome, rasmus!/)
    const reissued = (await moved.cookie('__Host-sid'))!
    assert.notEqual(reissued, oldValue)
    assert.equal(reissued.split('.')[0], oldValue.split('.')[0], 'same session, new signature')
    const newOnly = await start([SECRET_NEW])
    const later = new Browser(newOnly.origin)
    await later.setCookie('__Host-sid', reissued)
    assert.match(await (await later.fetch('/profile')).text(), /Welcome, rasmus!/)
    const stale = new Browser(newOnly.origin)
    await stale.setCookie('__Host-sid', oldValue)
    assert.match(
      await (await stale.fetch('/profile')).text(),
      /Please log in first/,
      'a dropped secret verifies nothing',
    )
  })
})

describe("the demo's sessions page, counter and server panel over HTTP", () => {
  let origin: string
  let server: Server
  before(async () => {
    const sessions = createSessionManager<DemoData>({ store: new MemoryStore(), secrets: [SECRET_NEW] })
    server = createDemoApp(sessions, { storeLabel: 'memory:' }).listen(0, '127.0.0.1')
    await new Promise((resolve) => server.once('listening', resolve))
    origin = `http://localhost:${(server.address() as AddressInfo).port}`
  })
  after(() => {
    server.close()
  })

  it('lists every device of the user as HTML and as JSON, revokes one, and logs out everywhere else', async () => {
    const laptop = new Browser(origin)
    const phone = new Browser(origin)
    await logIn(laptop)
    await logIn(phone)
    const html = await (await laptop.fetch('/sessions', { headers: { 'user-agent': 'curl/8' } })).text()
    assert.equal(html.match(/<tr[ >]/g)?.length, 3, 'a header row and two sessions')
    assert.match(html, /this device/)
    const response = await laptop.fetch('/sessions', { headers: { accept: 'application/json' } })
    assert.match(response.headers.get('content-type') ?? '', /^application\/json/)
    const list = (await response.json()) as { handle: string; current: boolean; browser: string }[]
    assert.equal(list.length, 2)
    assert.deepEqual(list.map((info) => info.current).sort(), [false, true])
    const cookie = (await laptop.cookie('__Host-sid'))!
    assert.ok(!JSON.stringify(list).includes(cookie.split('.')[0]!), 'never the session ID')
    const other = list.find((info) => !info.current)!
    const _csrf = await formToken(laptop, '/sessions')
    assert.equal((await laptop.post('/sessions/revoke', { handle: other.handle, _csrf })).status, 303)
    assert.match(await (await laptop.fetch('/sessions')).text(), /That session is logged out\./)
    assert.match(await (await phone.fetch('/profile')).text(), /Please log in first/)
    await logIn(phone)
    const again = await laptop.post('/sessions/revoke-others', {
      _csrf: await formToken(laptop, '/sessions'),
    })
    assert.equal(again.status, 303)
    assert.match(await (await laptop.fetch('/sessions')).text(), /Logged out 1 other session\./)
    assert.match(await (await phone.fetch('/profile')).text(), /Please log in first/)
    assert.match(await (await laptop.fetch('/profile')).text(), /Welcome, rasmus!/)
  })

  it('answers 401 on /sessions to a visitor, as HTML and as JSON', async () => {
    const visitor = new Browser(origin)
    assert.equal((await visitor.fetch('/sessions')).status, 401)
    const json = await visitor.fetch('/sessions', { headers: { accept: 'application/json' } })
    assert.equal(json.status, 401)
    assert.deepEqual(await json.json(), { error: 'Please log in first.' })
  })

  it('keeps a counter in the session', async () => {
    const browser = new Browser(origin)
    await logIn(browser)
    for (let i = 0; i < 3; i++) {
      const _csrf = await formToken(browser, '/profile')
      assert.equal((await browser.post('/counter', { action: 'increment', _csrf })).status, 303)
    }
    assert.match(await (await browser.fetch('/profile')).text(), /<output id="counter"[^>]*>3</)
    await browser.post('/counter', { action: 'reset', _csrf: await formToken(browser, '/profile') })
    assert.match(await (await browser.fetch('/profile')).text(), /<output id="counter"[^>]*>0</)
  })

  it('shows what the server sees, never the session ID or the secret', async () => {
    const browser = new Browser(origin)
    await logIn(browser)
    const html = await (await browser.fetch('/profile')).text()
    assert.match(html, /What the server sees/)
    assert.match(html, /<dt>HttpOnly<\/dt><dd>yes/)
    assert.match(html, /<dt>SameSite<\/dt><dd>Lax/)
    assert.match(html, /<dt>Max-Age<\/dt><dd>1800 s/)
    assert.match(html, /<code>MemoryStore<\/code>/)
    const id = (await browser.cookie('__Host-sid'))!.split('.')[0]!
    assert.ok(!html.includes(id), 'never the session ID')
    assert.ok(!html.includes(SECRET_NEW), 'never the secret')
  })

  it('serves its stylesheet without touching the session', async () => {
    const response = await fetch(`${origin}/style.css`)
    assert.equal(response.status, 200)
    assert.match(response.headers.get('content-type') ?? '', /^text\/css/)
    assert.deepEqual(response.headers.getSetCookie(), [])
  })
})

describe('the login demo with stateless sessions (--store cookie:)', () => {
  it('explains on /sessions why it cannot list devices', async () => {
    const sessions = createSessionManager<DemoData>({ store: new CookieStore(), secrets: [SECRET_NEW] })
    const server = createDemoApp(sessions, { storeLabel: 'cookie:' }).listen(0, '127.0.0.1')
    await new Promise((resolve) => server.once('listening', resolve))
    try {
      const browser = new Browser(`http://localhost:${(server.address() as AddressInfo).port}`)
      await logIn(browser)
      const page = await browser.fetch('/sessions')
      assert.equal(page.status, 200)
      const html = await page.text()
      assert.match(html, /cannot list the browsers you are logged in on/)
      assert.match(html, /<code>CookieStore<\/code>/)
      const json = await browser.fetch('/sessions', { headers: { accept: 'application/json' } })
      assert.equal(json.status, 501)
      assert.match(((await json.json()) as { error: string }).error, /cannot be listed/)
    } finally {
      server.close()
    }
  })

  it('logs in, keeps the session in the cookie alone, and logs out', async () => {
    const sessions = createSessionManager<DemoData>({ store: new CookieStore(), secrets: [SECRET_NEW] })
    const server = createDemoApp(sessions).listen(0, '127.0.0.1')
    await new Promise((resolve) => server.once('listening', resolve))
    try {
      const browser = new Browser(`http://localhost:${(server.address() as AddressInfo).port}`)
      assert.equal((await logIn(browser)).status, 303)
      assert.match(
        (await browser.cookie('__Host-sid')) ?? '',
        /^t2\.[0-9a-z]+\./,
        'the session itself is sealed in the cookie',
      )
      assert.match(await (await browser.fetch('/profile')).text(), /Welcome, rasmus!/)
      assert.equal((await logOut(browser)).status, 303)
      assert.match(await (await browser.fetch('/profile')).text(), /Please log in first/)
    } finally {
      server.close()
    }
  })
})
