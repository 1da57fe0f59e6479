// Checklist #45 and the Operations issue: nothing logs a raw session ID, a cookie value or a secret, ever.
// The demo runs with its logger at debug level through every lifecycle step and every kind of bad cookie;
// then its whole output is searched for every token the browsers held.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { Browser } from './browser.js'
import { DEMO_SECRET, type DemoProcess, formToken, logIn, logOut, startDemo } from './demo-process.js'

const dir = mkdtempSync(join(tmpdir(), 'tessera-logs-'))
const running: DemoProcess[] = []
after(async () => {
  await Promise.all(running.map((demo) => demo.stop()))
  rmSync(dir, { recursive: true, force: true })
})

const COOKIE = '__Host-sid'

for (const store of ['sqlite', 'memory:', 'cookie:']) {
  describe(`the demo's logs on ${store === 'sqlite' ? 'SQLite' : store}`, () => {
    it('#45: hold the lifecycle at debug level but never a session ID, a cookie value or the secret', async () => {
      const url = store === 'sqlite' ? `sqlite:${join(dir, 'sessions.db')}` : store
      const demo = await startDemo(url, { LOG_LEVEL: 'debug' })
      running.push(demo)
      const tokens = new Set<string>()
      const remember = async (browser: Browser) => {
        const value = await browser.cookie(COOKIE)
        if (value !== undefined) tokens.add(decodeURIComponent(value))
      }

      const laptop = new Browser(demo.origin)
      await formToken(laptop) // an anonymous session with a CSRF secret
      await remember(laptop)
      await logIn(laptop) // regenerate + login
      await remember(laptop)
      await laptop.post('/counter', { _csrf: await formToken(laptop, '/profile') })
      await remember(laptop)
      const phone = new Browser(demo.origin)
      await logIn(phone)
      await remember(phone)
      if (store !== 'cookie:') {
        await laptop.post('/sessions/revoke-others', { _csrf: await formToken(laptop, '/sessions') })
      }
      // Bad cookies of every kind: tampered signature, unknown ID, malformed, duplicated.
      const [first] = tokens
      const attacker = new Browser(demo.origin)
      await attacker.setCookie(COOKIE, encodeURIComponent(`${first!.slice(0, -1)}A`))
      await attacker.fetch('/profile')
      await attacker.setCookie(COOKIE, 'not-a-session')
      await attacker.fetch('/profile')
      await attacker.fetch('/profile', { headers: { cookie: `${COOKIE}=${first}; ${COOKIE}=${first}x` } })
      await laptop.post('/counter', { _csrf: 'forged' }) // a CSRF failure (403)
      await logOut(laptop)
      await remember(laptop)
      await demo.stop()

      const output = demo.output()
      const lines = output.split('\n').filter((line) => line.startsWith('{'))
      const events = lines.map((line) => JSON.parse(line).event as string | undefined)
      assert.ok(
        events.includes('loggedIn') || events.includes('created'),
        `the lifecycle was logged:\n${output}`,
      )
      if (store !== 'cookie:') {
        for (const event of ['created', 'loggedIn', 'destroyed', 'rejected']) {
          assert.ok(events.includes(event), `a ${event} event was logged`)
        }
      }
      assert.ok(tokens.size >= 3, 'the browsers held several session tokens')
      const secrets = [DEMO_SECRET]
      for (const token of tokens) {
        // The whole cookie value, each dot-separated part (ID, signature, sealed chunks) and its URL encoding.
        for (const part of [
          token,
          encodeURIComponent(token),
          ...token.split('.').filter((p) => p.length >= 16),
        ]) {
          secrets.push(part)
        }
      }
      for (const secret of secrets) {
        assert.ok(!output.includes(secret), `the logs hold a token or secret (${secret.slice(0, 6)}…)`)
      }
    })
  })
}
