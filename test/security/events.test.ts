// Checklist L (docs/security.md): what the manager reports, and that it never names a session by its token.
import assert from 'node:assert/strict'
import { hkdfSync } from 'node:crypto'
import { describe, it, mock } from 'node:test'
import { inspect } from 'node:util'
import { withSession } from '../../src/adapters/node.js'
import { checkCsrf } from '../../src/csrf.js'
import { generateSessionId } from '../../src/id.js'
import { sha256Hex } from '../../src/internal/crypto.js'
import { createSessionManager, type SessionManager, type SessionManagerOptions } from '../../src/manager.js'
import type { Session } from '../../src/session.js'
import { CookieSigner } from '../../src/signer.js'
import type { Store, StoreRecord } from '../../src/store.js'
import { CookieStore } from '../../src/stores/cookie.js'
import { MemoryStore } from '../../src/stores/memory.js'
import { fakeClock, request, SECRET_A, SECRET_B, T0 } from '../support.js'
import { bound, type Data, idOf, serve, setup, tokenOf } from './support.js'

// Every event a manager may emit, including names that only some versions have: listening costs nothing.
const EVENTS = [
  'created',
  'saved',
  'touched',
  'regenerated',
  'loggedIn',
  'renewed',
  'destroyed',
  'revoked',
  'expired',
  'rejected',
  'conflict',
  'hijackSuspected',
  'storeError',
  'storeCall',
] as const

type AnyEvent = { name: string; payload: Record<string, unknown> }

describe('L. logging, events and configuration', () => {
  it('#45: names sessions only by handle in every event, log line, warning and error over a full lifecycle', async () => {
    const clock = fakeClock()
    const haystack: string[] = [] // everything the library said, as an operator's tools would print it
    const needles = new Set<string>() // what must never be in it
    const events: AnyEvent[] = []
    const say = (label: string, value: unknown) =>
      haystack.push(`${label}: ${inspect(value, { depth: null, showHidden: true, breakLength: Infinity })}`)
    const ids: string[] = []
    const generateId = () => {
      const id = generateSessionId()
      ids.push(id)
      return id
    }
    const logger = Object.fromEntries(
      ['debug', 'info', 'warn', 'error'].map((level) => [
        level,
        (object: unknown, message: unknown) => say(`log.${level}`, [object, message]),
      ]),
    )
    const consoleSpies = (['log', 'info', 'warn', 'error', 'debug'] as const).map((level) =>
      mock.method(console, level, (...args: unknown[]) => say(`console.${level}`, args)),
    )
    const emitWarning = mock.method(process, 'emitWarning', (...args: unknown[]) => say('process', args))
    const failing = new Set<string>()
    const hanging = new Set<string>()
    const memory = new MemoryStore({ cleanupIntervalMs: 0 })
    const store: Store = new Proxy(memory, {
      get(target, property) {
        if (property === 'ephemeral') return false
        if (typeof property === 'string' && failing.has(property))
          return async () => Promise.reject(new Error(`ECONNRESET while calling ${property}`))
        if (typeof property === 'string' && hanging.has(property)) return () => new Promise(() => {})
        return bound(target, property)
      },
    })
    const observe = <D extends object>(manager: SessionManager<D>) => {
      for (const name of EVENTS) {
        manager.on(name as 'created', (payload) => {
          events.push({ name, payload: payload as unknown as Record<string, unknown> })
          say(`event.${name}`, payload)
        })
      }
      return manager
    }
    // `logger` is passed untyped so the test runs against managers with and without the logger hook.
    const common = {
      secrets: [SECRET_B, SECRET_A],
      clock: clock.now,
      generateId,
      storeTimeout: 100,
      onWarning: (warning: unknown) => say('warning', warning),
      ...({ logger } as object),
    } satisfies Partial<SessionManagerOptions>
    const attempt = async (label: string, run: () => unknown) => {
      try {
        await run()
      } catch (error) {
        say(`thrown by ${label}`, error)
        return error
      }
      return undefined
    }
    const issued = (result: { setCookie: readonly string[]; token?: string | undefined }) => {
      for (const header of result.setCookie) {
        const value = tokenOf(header)
        if (value === '') continue
        needles.add(value)
        for (const part of value.split('.')) if (part.length >= 16) needles.add(part)
      }
      if (result.token) needles.add(result.token)
    }
    const visit = async <D extends object>(
      manager: SessionManager<D>,
      cookie: string | string[] | undefined,
      handle: (session: Session<D>) => unknown = () => undefined,
      extra: Record<string, unknown> = {},
    ) => {
      const session = await manager.load({ cookie, host: 'localhost:3000', ...extra })
      await handle(session)
      say('session object', session)
      const result = await manager.commit(session)
      issued(result)
      say('commit result headers', { ...result, setCookie: result.setCookie.length, token: undefined })
      const mine = result.setCookie.find((header) => header.startsWith('__Host-sid='))
      return mine === undefined || /Max-Age=0/.test(mine) ? cookie : mine.split(';')[0]!
    }

    try {
      // 1. Cookie transport with hybrid copies, binding signals and a per-user limit.
      const web = observe(
        createSessionManager<Data>({
          store,
          hybrid: { revalidateAfter: 30_000 },
          binding: { onMismatch: () => 'allow' },
          maxSessionsPerUser: { limit: 2 },
          ...common,
        }),
      )
      const older = observe(createSessionManager<Data>({ ...common, store, secrets: [SECRET_A] }))
      web.on('created', () => {
        throw new Error('a listener bug')
      })
      await visit(web, undefined, (s) => s.get('visits'))
      const first = (await visit(web, undefined, (s) => s.set('visits', 1)))!
      let csrf = ''
      await visit(web, first as string, (s) => {
        csrf = s.csrfToken()
        needles.add(csrf)
        for (const probe of [
          { method: 'POST', token: 'forged' },
          { method: 'POST', token: undefined },
          { method: 'POST', token: csrf, origin: 'https://evil.example' },
          { method: 'POST', token: csrf, secFetchSite: 'cross-site' },
        ]) {
          const failure = checkCsrf(s, { host: 'localhost:3000', ...probe })
          assert.ok(failure)
          say('csrf failure', failure)
        }
      })
      clock.advance(2 * 60_000)
      const second = (await visit(web, first, (s) => s.get('visits'))) as string // touched
      const regenerated = (await visit(web, second, (s) => s.regenerate())) as string
      const ua = { userAgent: 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0' }
      const alice = (await visit(web, regenerated, (s) => s.login('alice'), ua)) as string
      const phone = (await visit(web, undefined, (s) => s.login('alice'), ua)) as string
      clock.advance(1000)
      await visit(web, undefined, (s) => s.login('alice'), ua) // evicts the oldest beyond the limit
      const chrome = {
        userAgent: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36',
      }
      await visit(web, alice, (s) => s.get('userId'), chrome) // hijackSuspected, allowed
      const viaOldSecret = (await visit(older, undefined, (s) => s.set('visits', 7))) as string
      await visit(web, viaOldSecret, (s) => s.get('visits')) // verified by the older secret, re-issued
      const devices = await web.listSessions('alice')
      say('listSessions (handles only)', devices.length)
      await web.revokeSession('alice', devices.at(-1)!.handle)
      const aliceSession = await web.load({ cookie: alice, host: 'localhost:3000' })
      await web.revokeSessions('alice', { except: aliceSession })
      await web.commit(aliceSession)
      // Rejected cookies of every kind.
      const signature = tokenOf(alice).split('.')[1]!
      const other = (await visit(web, undefined, (s) => s.set('visits', 2))) as string
      const forged = `__Host-sid=${new CookieSigner([SECRET_B], '__Host-sid').sign(generateSessionId())}`
      for (const cookie of [
        first, // regenerated away: unknown
        phone, // revoked
        `${alice.slice(0, -1)}${signature.endsWith('A') ? 'B' : 'A'}`, // bad signature
        '__Host-sid=garbage',
        forged,
        `${alice}; ${other}`, // duplicate
        Array.from({ length: 5 }, (_, i) => `__Host-sid=${i}`).join('; '),
      ]) {
        await visit(web, cookie, (s) => s.get('visits'))
      }
      // Conflicts, and errors of the app's own making.
      const a = await web.load({ cookie: other })
      const b = await web.load({ cookie: other })
      a.set('visits', 3)
      b.set('visits', 4)
      await web.commit(a)
      await attempt('conflicting commit', () => web.commit(b))
      await attempt('oversized commit', () => visit(web, other, (s) => s.set('blob', 'x'.repeat(70_000))))
      await attempt('cyclic commit', () =>
        visit(web, other, (s) => {
          const cyclic: Record<string, unknown> = {}
          cyclic.self = cyclic
          s.set('deep', cyclic)
        }),
      )
      await attempt('reserved key', () =>
        visit(web, other, (s) => (s as unknown as Session).set('__proto__', 1)),
      )
      await attempt('write after commit', async () => {
        const late = await web.load({ cookie: other })
        await web.commit(late)
        late.set('visits', 5)
      })
      // Store failures, and a store that hangs.
      for (const [method, run] of [
        ['get', () => visit(web, alice, (s) => s.get('visits'))],
        ['create', () => visit(web, undefined, (s) => s.set('visits', 1))],
        ['update', () => visit(web, other, (s) => s.set('visits', 9))],
        [
          'touch',
          () => {
            clock.advance(2 * 60_000)
            return visit(web, other, (s) => s.touch())
          },
        ],
        ['destroy', () => visit(web, other, (s) => s.destroy())],
        ['listByUser', () => web.listSessions('alice')],
        ['destroyByUser', () => web.revokeSessions('alice')],
      ] as const) {
        failing.add(method)
        assert.ok(await attempt(`failing ${method}`, run), method)
        failing.delete(method)
      }
      hanging.add('get')
      assert.ok(await attempt('hanging get', () => visit(web, alice, (s) => s.get('visits'))))
      hanging.clear()
      // Warnings: plain HTTP for a Secure cookie, an ignored X-Forwarded-Proto.
      await visit(web, undefined, (s) => s.set('visits', 1), {
        host: 'shop.example',
        forwardedProto: 'https',
      })
      await visit(web, alice, (s) => s.destroy())
      clock.advance(web.idleTimeout + 1)
      await visit(web, other, (s) => s.get('visits')) // expired

      // 2. The header transport, with a limit that refuses new logins.
      const api = observe(
        createSessionManager<Data>({
          store,
          transport: { type: 'header' },
          maxSessionsPerUser: { limit: 1, onLimit: 'reject-new' },
          ...common,
        }),
      )
      const header = (token: string) => ({
        header: (name: string) => (name === 'authorization' ? token : undefined),
      })
      const s1 = await api.load({ cookie: undefined })
      await s1.login('carol')
      const token = s1.token()
      needles.add(token)
      issued(await api.commit(s1))
      const bearer = `Bearer ${token}`
      await visit(api, undefined, (s) => s.set('visits', 1), header(bearer))
      await visit(api, undefined, (s) => s.get('visits'), header(`${bearer.slice(0, -1)}x`))
      await attempt('login past the limit', () => visit(api, undefined, (s) => s.login('carol')))

      // 3. Stateless sessions, with per-user revocation.
      let validAfter = 0
      const sealed = observe(
        createSessionManager<Data>({
          ...common,
          store: new CookieStore({ validAfter: () => validAfter }),
        }),
      )
      const c1 = (await visit(sealed, undefined, (s) => s.login('dave'))) as string
      await visit(sealed, c1, (s) => s.set('visits', 2))
      await visit(sealed, `${c1.slice(0, -2)}AA`, (s) => s.get('visits'))
      validAfter = clock.now() + 1
      await visit(sealed, c1, (s) => s.get('visits'))
      await attempt('listSessions on a stateless store', () => sealed.listSessions('dave'))

      // 4. The URL transport, and a node:http server answering a store outage.
      observe(createSessionManager<Data>({ ...common, store, transport: { type: 'query' } }))
      const url = await serve(
        withSession(web, (req, res, session) => {
          if (req.url === '/boom') throw new Error('the app failed')
          session.set('visits', 1)
          res.end('ok')
        }),
      )
      const live = (await fetch(url)).headers.getSetCookie()
      issued({ setCookie: live })
      failing.add('get')
      for (const path of ['/', '/boom']) {
        const response = await fetch(`${url}${path}`, { headers: { cookie: live[0]!.split(';')[0]! } })
        say(`HTTP ${path}`, [response.status, [...response.headers], await response.text()])
      }
      failing.clear()
      const boom = await fetch(`${url}/boom`)
      say('HTTP /boom', [boom.status, await boom.text()])
    } finally {
      for (const spy of consoleSpies) spy.mock.restore()
      emitWarning.mock.restore()
    }

    // The lifecycle really happened.
    const seen = new Set(events.map(({ name }) => name))
    for (const name of [
      'created',
      'saved',
      'touched',
      'regenerated',
      'loggedIn',
      'destroyed',
      'rejected',
      'conflict',
      'hijackSuspected',
      'revoked',
      'storeError',
      'storeCall',
    ]) {
      assert.ok(seen.has(name), `no ${name} event`)
    }
    const reasons = new Set(
      events.filter(({ name }) => name === 'rejected').map(({ payload }) => payload.reason),
    )
    for (const reason of ['malformed', 'bad-signature', 'unknown', 'duplicate'])
      assert.ok(reasons.has(reason), `no ${reason}`)
    for (const code of [
      'TESSERA_SECURE_COOKIE_OVER_HTTP',
      'TESSERA_FORWARDED_PROTO_IGNORED',
      'TESSERA_URL_TRANSPORT',
    ])
      assert.ok(
        haystack.some((line) => line.startsWith('warning') && line.includes(code)),
        code,
      )
    assert.ok(haystack.filter((line) => line.startsWith('thrown by')).length >= 12)

    // Sessions are named by a 16-hex-character handle (or 'stateless'), never more.
    for (const { name, payload } of events) {
      for (const field of ['session', 'successor']) {
        const handle = payload[field]
        if (handle === undefined || handle === 'stateless') continue
        assert.match(String(handle), /^[0-9a-f]{16}$/, `${name}.${field}`)
      }
    }
    // No raw ID, token, signature, seal, CSRF token, full store key, secret or derived key anywhere.
    for (const id of ids) {
      needles.add(id)
      needles.add(sha256Hex(id))
    }
    for (const secret of [SECRET_A, SECRET_B]) {
      needles.add(secret)
      for (const purpose of ['cookie-signature', 'session-seal', 'session-signature']) {
        const key = Buffer.from(
          hkdfSync('sha256', Buffer.from(secret), 'tessera', `tessera/v1/${purpose}`, 32),
        )
        for (const encoding of ['base64url', 'base64', 'hex'] as const) needles.add(key.toString(encoding))
      }
    }
    assert.ok(needles.size > 200, `${needles.size} needles`)
    assert.ok(haystack.length > 200, `${haystack.length} lines`)
    const text = haystack.join('\n')
    for (const needle of needles) {
      if (text.includes(needle)) {
        const line = haystack.find((entry) => entry.includes(needle))!
        assert.fail(`${needle.slice(0, 12)}… leaked in: ${line.slice(0, 300)}`)
      }
    }
  })

  it('#46: reports the expired reason when a store returns a record past its deadline', async () => {
    const { manager, memory, clock } = setup()
    const { cookie } = await request(manager, undefined, (s) => s.set('visits', 1))
    const key = sha256Hex(idOf(cookie!))
    const record = (await memory.get(key, clock.now()))!
    const lagging = createSessionManager<Data>({
      store: new Proxy(memory, {
        get: (target, property) =>
          property === 'get' ? async () => record as StoreRecord : bound(target, property),
      }),
      secrets: [SECRET_A],
      clock: () => T0 + manager.idleTimeout + 1,
      onWarning: () => {},
    })
    const events: unknown[] = []
    lagging.on('rejected', (event) => events.push(event))
    assert.equal((await request(lagging, cookie)).session.isNew, true)
    assert.deepEqual(events, [{ reason: 'expired', session: key.slice(0, 16) }])
  })

  it('#46: emits one rejected event, and makes no store read, for each of 100 well-shaped forged cookies', async () => {
    const { manager, spy } = setup()
    const reasons: string[] = []
    manager.on('rejected', ({ reason, session }) => {
      reasons.push(reason)
      assert.equal(session, undefined, 'nothing to name: no store key was looked at')
    })
    const forger = new CookieSigner([SECRET_B], manager.cookieName)
    for (let i = 0; i < 100; i++) {
      const { session } = await request(manager, `__Host-sid=${forger.sign(generateSessionId())}`)
      assert.equal(session.isNew, true)
    }
    assert.equal(reasons.length, 100)
    assert.ok(reasons.every((reason) => reason === 'bad-signature'))
    assert.equal(spy.count('get'), 0)
  })

  it('#46: reports every session that revokeSessions() and revokeSession() end, by handle', async () => {
    const { manager } = setup()
    const revoked: unknown[] = []
    manager.on('revoked', (event) => revoked.push(event))
    const cookies: string[] = []
    for (let i = 0; i < 4; i++)
      cookies.push((await request(manager, undefined, (s) => s.login('alice'))).cookie!)
    await request(manager, undefined, (s) => s.login('bob'))
    const handle = (cookie: string) => sha256Hex(idOf(cookie)).slice(0, 16)
    const current = await manager.load({ cookie: cookies[0] })
    assert.equal(await manager.revokeSession('bob', sha256Hex(idOf(cookies[3]!))), false, 'not his')
    assert.equal(await manager.revokeSession('alice', sha256Hex(idOf(cookies[3]!))), true)
    assert.deepEqual(revoked, [{ session: handle(cookies[3]!), userId: 'alice' }])
    revoked.length = 0
    assert.equal(await manager.revokeSessions('alice', { except: current }), 2)
    assert.deepEqual(
      new Set(revoked.map((event) => JSON.stringify(event))),
      new Set(
        cookies.slice(1, 3).map((cookie) => JSON.stringify({ session: handle(cookie), userId: 'alice' })),
      ),
    )
    for (const cookie of cookies.slice(1)) assert.equal((await request(manager, cookie)).session.isNew, true)
    assert.equal((await request(manager, cookies[0])).session.userId, 'alice')
  })
})
