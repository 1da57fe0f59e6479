import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { describe, it } from 'node:test'
import { pino } from 'pino'
import { fakeClock, request, SECRET_A, SECRET_B } from '../test/support.js'
import { SessionConfigError, StoreError } from './errors.js'
import type { SessionLogger } from './logger.js'
import { createSessionManager, type SessionManagerOptions } from './manager.js'
import { MemoryStore } from './stores/memory.js'

type Line = { level: string; object: Record<string, unknown>; message: string }

function capture(): { logger: SessionLogger; lines: Line[]; text: () => string } {
  const lines: Line[] = []
  const at = (level: string) => (object: Record<string, unknown>, message: string) =>
    lines.push({ level, object, message })
  return {
    logger: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') },
    lines,
    text: () =>
      lines
        .map(
          (line) => `${line.level} ${line.message} ${JSON.stringify(line.object)} ${String(line.object.err)}`,
        )
        .join('\n'),
  }
}

function setup(logger: SessionLogger, options: Partial<SessionManagerOptions> = {}) {
  const clock = fakeClock()
  const store = new MemoryStore({ cleanupIntervalMs: 0 })
  const manager = createSessionManager<{ n?: number }>({
    store,
    secrets: [SECRET_A, SECRET_B],
    clock: clock.now,
    ...options,
    logger,
  })
  return { manager, store, clock }
}

const cookieValue = (cookie: string) => decodeURIComponent(cookie.slice(cookie.indexOf('=') + 1))

describe('the logger hook', () => {
  it('logs routine events at debug, the security lifecycle at info, tampering at warn, store failures at error', async () => {
    const { logger, lines } = capture()
    const { manager, store } = setup(logger)
    const first = await request(manager, undefined, (s) => s.set('n', 1))
    const loggedIn = await request(manager, first.cookie, (s) => s.login('alice'))
    const value = cookieValue(loggedIn.cookie!)
    await request(manager, `${manager.cookieName}=${value.slice(0, -2)}xx`)
    await request(manager, loggedIn.cookie, (s) => s.destroy())
    store.get = () => Promise.reject(new Error('connection refused'))
    await assert.rejects(request(manager, loggedIn.cookie), StoreError)
    const byEvent = new Map(lines.map((line) => [line.object.event, line]))
    assert.equal(byEvent.get('created')?.level, 'debug')
    assert.equal(byEvent.get('loggedIn')?.level, 'info')
    assert.equal(byEvent.get('loggedIn')?.object.userId, 'alice')
    assert.equal(byEvent.get('destroyed')?.level, 'info')
    const tampered = lines.find((line) => line.object.reason === 'bad-signature')
    assert.equal(tampered?.level, 'warn')
    const failure = byEvent.get('storeError')
    assert.equal(failure?.level, 'error')
    assert.ok(failure?.object.err instanceof StoreError, 'the error travels as err, the key pino serializes')
    assert.match(String((failure!.object.err as Error).cause), /connection refused/)
  })

  it('#45: never logs the session ID, the cookie value, a CSRF token or a secret over a whole lifecycle', async () => {
    const { logger, lines, text } = capture()
    const { manager, clock } = setup(logger, { renewal: { after: 60_000, grace: 5_000 } })
    const seen: string[] = []
    let csrf = ''
    let cookie = (
      await request(manager, undefined, (s) => {
        csrf = s.csrfToken()
      })
    ).cookie
    seen.push(cookieValue(cookie!), csrf)
    cookie = (await request(manager, cookie, (s) => s.login('alice'))).cookie
    seen.push(cookieValue(cookie!))
    clock.advance(60_000)
    cookie = (await request(manager, cookie, (s) => s.set('n', 2))).cookie // renewed
    seen.push(cookieValue(cookie!))
    cookie = (await request(manager, cookie, (s) => s.regenerate())).cookie
    seen.push(cookieValue(cookie!))
    await request(manager, `${manager.cookieName}=${cookieValue(cookie!).slice(0, -1)}A`)
    await request(manager, `${manager.cookieName}=${cookieValue(cookie!)}; ${manager.cookieName}=${seen[0]}`)
    await manager.revokeSessions('alice')
    await request(manager, cookie)
    assert.ok(lines.length >= 8, `the lifecycle was logged (${lines.length} lines)`)
    const all = text()
    for (const token of seen) {
      for (const part of [token, ...token.split('.')]) {
        assert.ok(!all.includes(part), `a log line holds ${part.slice(0, 6)}…`)
      }
    }
    for (const secret of [SECRET_A, SECRET_B]) assert.ok(!all.includes(secret))
  })

  it('works with a real pino logger: JSON lines with the session handle and the event', async () => {
    const chunks: string[] = []
    const stream = new Writable({
      write(chunk, _encoding, done) {
        chunks.push(String(chunk))
        done()
      },
    })
    const { manager } = setup(pino({ level: 'debug' }, stream))
    const { cookie } = await request(manager, undefined, (s) => s.login('alice'))
    const records = chunks
      .join('')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line))
    const created = records.find((record) => record.event === 'created')
    assert.equal(created?.msg, 'session created')
    assert.match(created?.session, /^[0-9a-f]{16}$/)
    assert.equal(created?.level, 20) // pino's debug
    assert.ok(!chunks.join('').includes(cookieValue(cookie!).split('.')[0]!))
  })

  it('routes configuration warnings to logger.warn when no onWarning is given', async () => {
    const { logger, lines } = capture()
    const { manager } = setup(logger)
    await request(manager, undefined, (s) => s.set('n', 1), { host: 'example.com' })
    const warning = lines.find((line) => line.object.code === 'TESSERA_SECURE_COOKIE_OVER_HTTP')
    assert.equal(warning?.level, 'warn')
  })

  it('keeps serving when the logger throws', async () => {
    const broken: SessionLogger = {
      debug: () => {
        throw new Error('disk full')
      },
      info: () => {
        throw new Error('disk full')
      },
      warn: () => {
        throw new Error('disk full')
      },
      error: () => {
        throw new Error('disk full')
      },
    }
    const { manager } = setup(broken)
    const { cookie } = await request(manager, undefined, (s) => s.login('alice'))
    const again = await request(manager, cookie)
    assert.equal(again.session.userId, 'alice')
  })

  it('logs routine events not at all when the logger has no debug method', async () => {
    const { logger, lines } = capture()
    const { debug: _debug, ...withoutDebug } = logger
    const { manager } = setup(withoutDebug)
    await request(manager, undefined, (s) => s.set('n', 1))
    assert.deepEqual(lines, [])
  })

  it('refuses a logger without info, warn and error', () => {
    assert.throws(() => setup({ info: () => undefined } as unknown as SessionLogger), SessionConfigError)
  })
})
