import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it, mock } from 'node:test'
import { attribute, fakeClock, request, SECRET_A, SECRET_B, setupManager, T0 } from '../test/support.js'
import {
  SessionCommittedError,
  SessionConfigError,
  SessionConflictError,
  SessionDataError,
  SessionDestroyedError,
  SessionTooLargeError,
  StoreError,
} from './errors.js'
import { MacKey, sha256Hex } from './internal/crypto.js'
import { commitNow, createSessionManager, loadNow, type SessionManagerOptions } from './manager.js'
import { getNow, type Store, type StoreRecord, updateNow } from './store.js'
import { MemoryStore } from './stores/memory.js'

type Data = { userId?: string; cart?: string[]; visits?: number; a?: number; b?: number; blob?: string }

const setup = (options: Partial<SessionManagerOptions> = {}) => setupManager<Data>(options)

const idOf = (cookie: string) => decodeURIComponent(cookie.slice(cookie.indexOf('=') + 1)).split('.')[0]!

describe('session IDs', () => {
  it('issues 43-character base64url IDs from 32 random bytes, all distinct over 10,000', async () => {
    const { manager } = setup()
    const ids = new Set<string>()
    for (let i = 0; i < 10_000; i++) {
      const { cookie } = await request(manager, undefined, (s) => s.set('visits', 1))
      const id = idOf(cookie!)
      assert.match(id, /^[A-Za-z0-9_-]{43}$/)
      ids.add(id)
    }
    assert.equal(ids.size, 10_000)
  })

  it('keys the store by the SHA-256 of the ID and never stores the ID itself', async () => {
    const { manager, spy } = setup()
    const { cookie } = await request(manager, undefined, (s) => s.set('userId', 'alice'))
    const id = idOf(cookie!)
    const created = spy.calls.find((call) => call.method === 'create')
    assert.equal(created?.key, sha256Hex(id))
    for (const call of spy.calls) assert.ok(!String(call.key).includes(id))
  })

  it('treats the stored key presented as a cookie as unknown: a leaked store yields no usable cookie', async () => {
    const { manager } = setup()
    const { cookie } = await request(manager, undefined, (s) => s.set('userId', 'alice'))
    const forged = `${manager.cookieName}=${sha256Hex(idOf(cookie!))}`
    const { session } = await request(manager, forged)
    assert.equal(session.isNew, true)
    assert.equal(session.get('userId'), undefined)
  })

  it('accepts a custom generator of at least 128 bits and uses it', async () => {
    const { manager } = setup({ generateId: () => randomBytes(16).toString('hex') })
    const { cookie } = await request(manager, undefined, (s) => s.set('visits', 1))
    assert.match(idOf(cookie!), /^[0-9a-f]{32}$/)
  })

  for (const [label, generate] of [
    ['8 random bytes', () => randomBytes(8).toString('hex')],
    ['a UUID', () => crypto.randomUUID()],
    ['a constant', () => 'x'.repeat(43)],
    [
      'a counter',
      (() => {
        let n = 0
        return () => String(n++).padStart(30, '0')
      })(),
    ],
    ['characters outside base64url', () => randomBytes(32).toString('base64')],
  ] as const) {
    it(`rejects a generator producing ${label} at construction`, () => {
      assert.throws(() => setup({ generateId: generate }), SessionConfigError)
    })
  }
})

// Alice's cookie signed with SECRET_A, and a manager over the same store that now signs with SECRET_B first.
async function aliceBeforeRotation() {
  const first = setup({ secrets: [SECRET_A] })
  const { cookie } = await request(first.manager, undefined, (s) => s.set('userId', 'alice'))
  const rotated = createSessionManager<Data>({
    store: first.spy.store,
    secrets: [SECRET_B, SECRET_A],
    clock: first.clock.now,
  })
  return { first, cookie, rotated }
}

describe('signed cookies', () => {
  it('rejects a secret under 32 bytes, a typed phrase, and an empty list at construction', () => {
    assert.throws(() => setup({ secrets: ['keyboard cat'] }), SessionConfigError)
    assert.throws(() => setup({ secrets: ['a'.repeat(64)] }), SessionConfigError)
    assert.throws(() => setup({ secrets: [] }), SessionConfigError)
    assert.doesNotThrow(() => setup({ secrets: [randomBytes(32)] }))
  })

  it('accepts a cookie signed with a rotated-out secret still listed, and re-issues it under the newest secret', async () => {
    const { first, cookie, rotated } = await aliceBeforeRotation()
    const { session, result } = await request(rotated, cookie)
    assert.equal(session.get('userId'), 'alice')
    assert.equal(result.setCookie.length, 1)
    assert.equal(idOf(result.setCookie[0]!.split(';')[0]!), idOf(cookie!))
    const newestOnly = createSessionManager<Data>({
      store: first.spy.store,
      secrets: [SECRET_B],
      clock: first.clock.now,
    })
    const reissued = result.setCookie[0]!.split(';')[0]!
    assert.equal((await request(newestOnly, reissued)).session.get('userId'), 'alice')
    assert.equal(
      (await request(newestOnly, cookie)).session.isNew,
      true,
      'a secret dropped from the list no longer verifies',
    )
  })

  it('does not re-issue a cookie signed with the newest secret on a read', async () => {
    const { manager } = setup()
    const { cookie } = await request(manager, undefined, (s) => s.set('userId', 'alice'))
    const { result } = await request(manager, cookie, (s) => s.get('userId'))
    assert.deepEqual(result.setCookie, [])
  })

  it('rejects every altered form of a valid cookie without a store lookup', async () => {
    const { manager, spy } = setup()
    const { cookie } = await request(manager, undefined, (s) => s.set('userId', 'alice'))
    const value = cookie!.slice(cookie!.indexOf('=') + 1)
    const [id, signature] = value.split('.') as [string, string]
    const other = createSessionManager({ store: spy.store, secrets: [SECRET_A], cookie: { name: 'flash' } })
    const signedForFlash = (await request(other, undefined, (s) => s.set('x', 1))).cookie!.split('=')[1]!
    const variants = [
      `${value}!`,
      `${value}=`,
      `${value}.${signature}`,
      id,
      `${id}.`,
      `${id}.${signature.slice(1)}`,
      `${id}.${signature[0] === 'A' ? 'B' : 'A'}${signature.slice(1)}`,
      `${id}x.${signature}`,
      `"${value}"`,
      signedForFlash,
      '',
    ]
    spy.reset()
    for (const variant of variants) {
      const { session } = await request(manager, `${manager.cookieName}=${variant}`)
      assert.equal(session.isNew, true, `variant ${JSON.stringify(variant)} must not load the session`)
    }
    assert.equal(spy.count('get'), 0, 'a cookie that fails its signature costs no store call')
  })

  it('remembers a verified token: a returning cookie costs no MAC, yet the store still decides whether it lives', async () => {
    const { manager, spy } = setup()
    const { cookie } = await request(manager, undefined, (s) => s.set('userId', 'alice'))
    const verify = mock.method(MacKey.prototype, 'verify')
    try {
      for (let i = 0; i < 3; i++)
        assert.equal((await request(manager, cookie)).session.get('userId'), 'alice')
      assert.equal(verify.mock.callCount(), 1, 'verified on its first return only')
      const forged = `${cookie!.slice(0, -1)}${cookie!.endsWith('A') ? 'B' : 'A'}`
      for (let i = 0; i < 3; i++) assert.equal((await request(manager, forged)).session.isNew, true)
      assert.equal(verify.mock.callCount(), 4, 'a forged token is checked, and refused, every time')
    } finally {
      verify.mock.restore()
    }
    await request(manager, cookie, (s) => s.destroy())
    spy.reset()
    assert.equal((await request(manager, cookie)).session.isNew, true, 'destroyed: fresh despite the memory')
    assert.equal(spy.count('get'), 1)
  })

  it('re-issues a token signed with a rotated-out secret every time it returns, remembered or not', async () => {
    const { cookie, rotated } = await aliceBeforeRotation()
    for (let i = 0; i < 3; i++) {
      const { session, result } = await request(rotated, cookie)
      assert.equal(session.get('userId'), 'alice')
      assert.equal(result.setCookie.length, 1, `request ${i + 1} re-issues under the newest secret`)
    }
  })

  it('remembers at most 4,096 verified tokens: the oldest is verified again after 4,096 newer ones', async () => {
    const { manager } = setup()
    const cookies: string[] = []
    for (let i = 0; i < 4_097; i++) {
      const { cookie } = await request(manager, undefined, (s) => s.set('visits', i))
      await request(manager, cookie) // its first return: verified, then remembered
      cookies.push(cookie!)
    }
    const verify = mock.method(MacKey.prototype, 'verify')
    try {
      assert.equal((await request(manager, cookies[4_096])).session.get('visits'), 4_096)
      assert.equal(verify.mock.callCount(), 0, 'the newest is remembered')
      assert.equal((await request(manager, cookies[0])).session.get('visits'), 0)
      assert.equal(verify.mock.callCount(), 1, 'the oldest was let go, and is verified again')
    } finally {
      verify.mock.restore()
    }
  })

  it('uses the valid one of several same-named cookies, and fails closed when two distinct live sessions are presented', async () => {
    const { manager } = setup()
    const a = (await request(manager, undefined, (s) => s.set('userId', 'alice'))).cookie!
    const b = (await request(manager, undefined, (s) => s.set('userId', 'mallory'))).cookie!
    const name = manager.cookieName
    assert.equal((await request(manager, `${name}=garbage; ${a}`)).session.get('userId'), 'alice')
    assert.equal(
      (await request(manager, [`${name}=garbage`, a] as unknown as string)).session.get('userId'),
      'alice',
    )
    assert.equal((await request(manager, `${a}; ${b}`)).session.isNew, true)
  })
})

describe('strict loading', () => {
  it('gives a fresh session for a missing or malformed cookie without a store call', async () => {
    const { manager, spy } = setup()
    for (const header of [
      undefined,
      '',
      ';;;;',
      'sid=1',
      `${manager.cookieName}=`,
      `${manager.cookieName}=../../etc/passwd`,
      `${manager.cookieName}=${'x'.repeat(10_000)}`,
    ]) {
      const { session, result } = await request(manager, header)
      assert.equal(session.isNew, true)
      assert.deepEqual(result.setCookie, [])
    }
    assert.equal(spy.count(), 0)
  })

  it('never adopts a validly signed ID it did not issue: the new session gets its own ID', async () => {
    const issuer = setup()
    // Sign an ID with the right secret but never store it: what an attacker with a leaked secret could forge.
    const foreign = createSessionManager<Data>({
      store: new MemoryStore({ cleanupIntervalMs: 0 }),
      secrets: [SECRET_A],
    })
    const forged = (await request(foreign, undefined, (s) => s.set('visits', 1))).cookie!
    const { session, cookie } = await request(issuer.manager, forged, (s) => s.set('visits', 2))
    assert.equal(session.isNew, true)
    assert.notEqual(idOf(cookie!), idOf(forged))
    assert.equal(await issuer.memory.get(sha256Hex(idOf(forged)), T0), undefined)
  })

  it('gives a fresh session after expiry, even when the store still returns the expired record', async () => {
    const clock = fakeClock()
    const records = new Map<string, StoreRecord>()
    const lenient: Store = {
      get: async (key) => records.get(key), // ignores expiry on purpose
      create: async (key, record) => {
        records.set(key, record)
        return true
      },
      update: async () => false,
      touch: async () => false,
      destroy: async (key) => void records.delete(key),
      listByUser: async () => [],
      destroyByUser: async () => 0,
      cleanup: async () => 0,
      close: async () => undefined,
    }
    const manager = createSessionManager<Data>({ store: lenient, secrets: [SECRET_A], clock: clock.now })
    const { cookie } = await request(manager, undefined, (s) => s.set('userId', 'alice'))
    clock.advance(manager.idleTimeout)
    const { session } = await request(manager, cookie)
    assert.equal(session.isNew, true)
    assert.equal(records.size, 0, 'the expired record is deleted when seen')
  })
})

describe('lazy writes', () => {
  it('costs an untouched anonymous visitor no store write and no Set-Cookie', async () => {
    const { manager, spy } = setup()
    for (let i = 0; i < 100; i++) {
      const { result } = await request(
        manager,
        i % 2 ? undefined : `${manager.cookieName}=${randomBytes(40).toString('base64url')}`,
        (s) => s.get('userId'),
      )
      assert.deepEqual(result.setCookie, [])
    }
    assert.equal(spy.count(), 0)
  })

  it('writes a loaded session back only when its data changed', async () => {
    const { manager, spy } = setup()
    const { cookie } = await request(manager, undefined, (s) => s.set('cart', ['apple']))
    spy.reset()
    await request(manager, cookie, (s) => s.get('cart'))
    await request(manager, cookie, (s) => s.set('cart', ['apple']))
    assert.equal(spy.count('update'), 0)
    await request(manager, cookie, (s) => s.set('cart', ['apple', 'pear']))
    assert.equal(spy.count('update'), 1)
  })

  it('saves an in-place change to an object read with get(), and never shares it with the stored copy', async () => {
    const { manager } = setup()
    const { cookie } = await request(manager, undefined, (s) => s.set('cart', ['apple']))
    await request(manager, cookie, (s) => s.get('cart')!.push('pear'))
    const held: string[][] = []
    await request(manager, cookie, (s) => held.push(s.get('cart')!))
    held[0]!.push('mutated after commit')
    assert.deepEqual((await request(manager, cookie)).session.get('cart'), ['apple', 'pear'])
  })

  it('stores and sends a cookie for an empty new session only with saveUninitialized', async () => {
    const { manager, spy } = setup({ saveUninitialized: true })
    const { result } = await request(manager, undefined)
    assert.equal(result.setCookie.length, 1)
    assert.equal(spy.count('create'), 1)
  })
})

describe('expiry', () => {
  it('ends a session after the idle timeout, measured on the server', async () => {
    const { manager, clock } = setup({ idleTimeout: 30 * 60_000 })
    const { cookie } = await request(manager, undefined, (s) => s.set('userId', 'alice'))
    clock.advance(30 * 60_000 - 1)
    assert.equal((await request(manager, cookie)).session.get('userId'), 'alice')
    clock.advance(30 * 60_000 + 1)
    assert.equal((await request(manager, cookie)).session.isNew, true)
  })

  it('refreshes the idle deadline on reads, at most one touch per touchInterval', async () => {
    const { manager, clock, spy } = setup({ idleTimeout: 30 * 60_000, touchInterval: 60_000 })
    let { cookie } = await request(manager, undefined, (s) => s.set('userId', 'alice'))
    spy.reset()
    for (let i = 0; i < 10; i++) {
      clock.advance(5_000) // ten reads in 50 s: within one interval
      ;({ cookie } = await request(manager, cookie, (s) => s.get('userId')))
    }
    assert.equal(spy.count('touch'), 0)
    clock.advance(15_000)
    const { result } = await request(manager, cookie, (s) => s.get('userId'))
    assert.equal(spy.count('touch'), 1)
    assert.equal(
      attribute(result.setCookie[0]!, 'Max-Age'),
      String(30 * 60),
      'the cookie follows the new deadline',
    )
    // Active for 3 hours with reads every 20 minutes: alive throughout thanks to the touches.
    for (let i = 0; i < 9; i++) {
      clock.advance(20 * 60_000)
      assert.equal((await request(manager, cookie, (s) => s.get('userId'))).session.get('userId'), 'alice')
    }
  })

  it('moves the idle deadline on writes in touchInterval steps, re-sending the cookie only then, and never behind the record', async () => {
    const idle = 30 * 60_000
    const interval = 60_000
    const { manager, clock, memory } = setup({ idleTimeout: idle, touchInterval: interval })
    let { cookie, result } = await request(manager, undefined, (s) => s.set('visits', 0))
    const key = sha256Hex(idOf(cookie!))
    let cookieExpiresAt = clock.now() + Number(attribute(result.setCookie[0]!, 'Max-Age')) * 1000
    let sent = 0
    const start = clock.now()
    for (let i = 0; i < 200; i++) {
      clock.advance(7_000) // a write every 7 s for 23 minutes
      ;({ cookie, result } = await request(manager, cookie, (s) => s.set('visits', i + 1)))
      for (const header of result.setCookie) {
        sent++
        cookieExpiresAt = clock.now() + Number(attribute(header, 'Max-Age')) * 1000
      }
      const record = await memory.get(key, clock.now())
      assert.equal(JSON.parse(record!.data).d.visits, i + 1, 'every write is stored')
      assert.ok(record!.expiresAt >= clock.now() + idle - interval, 'at most one interval behind activity')
      assert.ok(
        cookieExpiresAt >= record!.expiresAt,
        'the browser keeps the cookie as long as the record lives',
      )
    }
    assert.ok(sent <= Math.ceil((clock.now() - start) / interval) + 1, `${sent} cookies for 200 writes`)
    assert.ok(sent >= Math.floor((clock.now() - start) / interval) - 1, `${sent} cookies for 200 writes`)
    clock.advance(idle - interval - 1)
    assert.equal((await request(manager, cookie)).session.get('visits'), 200)
  })

  it('never moves the absolute deadline, however active the session is', async () => {
    const { manager, clock } = setup({ idleTimeout: 30 * 60_000, absoluteTimeout: 8 * 60 * 60_000 })
    let { cookie } = await request(manager, undefined, (s) => s.set('visits', 0))
    for (let elapsed = 0; elapsed < 8 * 60 * 60_000 - 10 * 60_000; elapsed += 10 * 60_000) {
      clock.advance(10 * 60_000)
      const response = await request(manager, cookie, (s) => s.set('visits', (s.get('visits') ?? 0) + 1))
      assert.equal(response.session.isNew, false)
      cookie = response.cookie
      // Once the idle deadline is capped by the absolute one, a write changes no deadline and sends no cookie.
      for (const header of response.result.setCookie) {
        const maxAge = Number(attribute(header, 'Max-Age'))
        assert.ok(
          maxAge * 1000 <= T0 + 8 * 60 * 60_000 - clock.now(),
          'Max-Age never outlives the absolute deadline',
        )
      }
    }
    clock.advance(10 * 60_000 + 1)
    assert.equal((await request(manager, cookie)).session.isNew, true)
  })

  it('does not refresh expiry on reads when rolling is off', async () => {
    const { manager, clock, spy } = setup({ rolling: false, idleTimeout: 10 * 60_000 })
    const { cookie } = await request(manager, undefined, (s) => s.set('userId', 'alice'))
    spy.reset()
    clock.advance(9 * 60_000)
    await request(manager, cookie, (s) => s.get('userId'))
    assert.equal(spy.count('touch'), 0)
    clock.advance(2 * 60_000)
    assert.equal((await request(manager, cookie)).session.isNew, true)
  })

  it('sends a browser-session cookie without Max-Age when persistent is false', async () => {
    const { manager } = setup({ cookie: { persistent: false } })
    const { result } = await request(manager, undefined, (s) => s.set('userId', 'alice'))
    assert.equal(attribute(result.setCookie[0]!, 'Max-Age'), undefined)
  })

  it('refuses timeouts that would never expire', () => {
    for (const bad of [0, -1, Number.POSITIVE_INFINITY, Number.NaN, 1.5, 401 * 24 * 60 * 60_000]) {
      assert.throws(() => setup({ absoluteTimeout: bad }), SessionConfigError)
      assert.throws(() => setup({ idleTimeout: bad }), SessionConfigError)
    }
  })
})

describe('regenerate and destroy', () => {
  it('regenerate() issues a new ID, keeps the data, and kills the old ID before the response', async () => {
    const { manager, memory } = setup()
    const { cookie: before } = await request(manager, undefined, (s) => s.set('cart', ['apple']))
    const { cookie: after } = await request(manager, before, async (s) => {
      await s.regenerate()
      assert.equal(await memory.get(sha256Hex(idOf(before!)), T0), undefined, 'old record deleted at once')
      s.set('userId', 'alice')
    })
    assert.notEqual(idOf(after!), idOf(before!))
    const next = await request(manager, after)
    assert.deepEqual([next.session.get('userId'), next.session.get('cart')], ['alice', ['apple']])
    assert.equal((await request(manager, before)).session.isNew, true)
  })

  it('destroy() deletes the record and clears the cookie with the same attributes', async () => {
    const { manager, memory } = setup()
    const { cookie } = await request(manager, undefined, (s) => s.set('userId', 'alice'))
    const { result } = await request(manager, cookie, (s) => s.destroy())
    assert.equal(memory.size, 0)
    const clearing = result.setCookie[0]!
    assert.ok(clearing.startsWith(`${manager.cookieName}=;`))
    assert.equal(attribute(clearing, 'Max-Age'), '0')
    assert.equal(attribute(clearing, 'Path'), '/')
    assert.equal(attribute(clearing, 'Secure'), true)
    assert.equal(attribute(clearing, 'HttpOnly'), true)
    assert.equal(attribute(clearing, 'SameSite'), 'Lax')
    assert.equal((await request(manager, cookie)).session.isNew, true)
  })

  it('starts a new session with a new ID when data is written after destroy()', async () => {
    const { manager } = setup()
    const { cookie } = await request(manager, undefined, (s) => s.set('userId', 'alice'))
    const { cookie: next } = await request(manager, cookie, async (s) => {
      await s.destroy()
      s.set('visits', 1)
    })
    assert.notEqual(idOf(next!), idOf(cookie!))
    const after = await request(manager, next)
    assert.deepEqual([after.session.get('userId'), after.session.get('visits')], [undefined, 1])
  })
})

describe('cookie attributes', () => {
  it('defaults to __Host-sid; HttpOnly; Secure; SameSite=Lax; Path=/ with no Domain', async () => {
    const { manager } = setup()
    const { result } = await request(manager, undefined, (s) => s.set('visits', 1))
    const header = result.setCookie[0]!
    assert.equal(manager.cookieName, '__Host-sid')
    assert.match(header, /^__Host-sid=[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{43};/)
    for (const flag of ['HttpOnly', 'Secure']) assert.equal(attribute(header, flag), true)
    assert.equal(attribute(header, 'SameSite'), 'Lax')
    assert.equal(attribute(header, 'Path'), '/')
    assert.equal(attribute(header, 'Domain'), undefined)
    assert.equal(attribute(header, 'Max-Age'), String(30 * 60))
  })

  it("with secure: 'auto', marks the cookie Secure only over HTTPS or a trusted X-Forwarded-Proto", async () => {
    const plain = setup({ cookie: { secure: 'auto' } })
    assert.equal(plain.manager.cookieName, 'sid')
    const overHttp = await request(plain.manager, undefined, (s) => s.set('visits', 1), {
      forwardedProto: 'https',
    })
    assert.equal(
      attribute(overHttp.result.setCookie[0]!, 'Secure'),
      undefined,
      'X-Forwarded-Proto ignored without trustProxy',
    )
    assert.equal(plain.warnings[0]?.code, 'TESSERA_FORWARDED_PROTO_IGNORED')
    const tls = await request(plain.manager, undefined, (s) => s.set('visits', 1), { encrypted: true })
    assert.equal(attribute(tls.result.setCookie[0]!, 'Secure'), true)
    const proxied = setup({ cookie: { secure: 'auto' }, trustProxy: true })
    const behindProxy = await request(proxied.manager, undefined, (s) => s.set('visits', 1), {
      forwardedProto: 'https',
    })
    assert.equal(attribute(behindProxy.result.setCookie[0]!, 'Secure'), true)
  })

  it('keeps Secure on a plain-HTTP request that spoofs X-Forwarded-Proto: http', async () => {
    const { manager } = setup()
    const { result } = await request(manager, undefined, (s) => s.set('visits', 1), {
      forwardedProto: 'http',
      encrypted: false,
    })
    assert.equal(attribute(result.setCookie[0]!, 'Secure'), true)
  })

  it('warns once, naming the fix, when a Secure cookie answers plain HTTP for a host other than localhost', async () => {
    const { manager, warnings } = setup()
    await request(manager, undefined, (s) => s.set('visits', 1), { host: 'localhost:3000' })
    await request(manager, undefined, (s) => s.set('visits', 1), { host: '[::1]:3000' })
    assert.equal(warnings.length, 0)
    await request(manager, undefined, (s) => s.set('visits', 1), { host: 'app.example.com' })
    await request(manager, undefined, (s) => s.set('visits', 1), { host: 'app.example.com' })
    assert.equal(warnings.length, 1)
    assert.equal(warnings[0]!.code, 'TESSERA_SECURE_COOKIE_OVER_HTTP')
    assert.match(warnings[0]!.message, /trustProxy: true/)
  })

  it('emits Partitioned and Priority when asked', async () => {
    const { manager } = setup({ cookie: { partitioned: true, priority: 'High', sameSite: 'None' } })
    const { result } = await request(manager, undefined, (s) => s.set('visits', 1))
    assert.equal(attribute(result.setCookie[0]!, 'Partitioned'), true)
    assert.equal(attribute(result.setCookie[0]!, 'Priority'), 'High')
    assert.equal(attribute(result.setCookie[0]!, 'SameSite'), 'None')
  })

  for (const [label, cookie] of [
    ['a __Host- name with a Domain', { name: '__Host-s', domain: 'example.com' }],
    ['a __Host- name with a Path other than /', { name: '__Host-s', path: '/app' }],
    ['a __Host- name without Secure', { name: '__Host-s', secure: false }],
    ['a __Secure- name without Secure', { name: '__Secure-s', secure: 'auto' }],
    ['SameSite=None without Secure', { sameSite: 'None', secure: false }],
    ['Partitioned without Secure', { partitioned: true, secure: false }],
    ['a name that is not a token', { name: 'a=b; Max-Age=9' }],
    ['a path with a semicolon', { path: '/;Domain=evil', name: 'sid' }],
    ['a domain with CR LF', { domain: 'x\r\nSet-Cookie: y', name: 'sid' }],
    ['an unknown SameSite', { sameSite: 'Lax; Secure' }],
  ] as const) {
    it(`refuses ${label} at construction with a SessionConfigError`, () => {
      assert.throws(
        () => setup({ cookie: cookie as SessionManagerOptions['cookie'] & object }),
        SessionConfigError,
      )
    })
  }
})

describe('session data', () => {
  it('loads stored data without polluting any prototype', async () => {
    const { manager, memory, clock } = setup()
    const { cookie } = await request(manager, undefined, (s) => s.set('visits', 1))
    const key = sha256Hex(idOf(cookie!))
    const current = (await memory.get(key, clock.now()))!
    const poisoned = current.data.replace(
      '"d":{',
      '"d":{"__proto__":{"isAdmin":true},"nested":{"constructor":{"prototype":{"x":1}}},"rce":"_$$ND_FUNC$$_function(){globalThis.pwned=1}()",',
    )
    assert.ok(
      await memory.update(
        key,
        { ...current, data: poisoned, version: current.version + 1 },
        current.version,
        clock.now(),
      ),
    )
    const { session } = await request(manager, cookie)
    const loaded = session as unknown as { get(k: string): unknown }
    assert.equal(({} as Record<string, unknown>).isAdmin, undefined)
    assert.equal(({} as Record<string, unknown>).x, undefined)
    assert.equal((globalThis as Record<string, unknown>).pwned, undefined)
    assert.equal(loaded.get('isAdmin'), undefined)
    assert.deepEqual(loaded.get('nested'), {})
    assert.equal(typeof loaded.get('rce'), 'string')
  })

  it('refuses reserved keys and values JSON cannot hold', async () => {
    const { manager } = setup()
    const session = await manager.load({ cookie: undefined })
    const loose = session as unknown as { set(k: string, v: unknown): void }
    for (const key of ['__proto__', 'constructor', 'prototype'])
      assert.throws(() => loose.set(key, 1), SessionDataError)
    assert.throws(() => loose.set('f', () => 1), SessionDataError)
    assert.throws(() => loose.set('n', 1n), SessionDataError)
  })

  it('rejects a cyclic value at commit, writing nothing and sending no cookie', async () => {
    const { manager, spy } = setup()
    const session = await manager.load({ cookie: undefined })
    const cyclic: Record<string, unknown> = {}
    cyclic.self = cyclic
    ;(session as unknown as { set(k: string, v: unknown): void }).set('cyclic', cyclic)
    await assert.rejects(manager.commit(session), SessionDataError)
    assert.equal(spy.count(), 0)
  })

  it('rejects data over maxDataBytes with SessionTooLargeError and keeps the previous state', async () => {
    const { manager, spy } = setup({ maxDataBytes: 1024 })
    const { cookie } = await request(manager, undefined, (s) => s.set('blob', 'small'))
    spy.reset()
    await assert.rejects(
      request(manager, cookie, (s) => s.set('blob', 'é'.repeat(600))),
      SessionTooLargeError,
    )
    assert.equal(spy.count('update'), 0)
    assert.equal((await request(manager, cookie)).session.get('blob'), 'small')
  })

  it('treats a garbage record from the store as missing and deletes it', async () => {
    for (const garbage of [
      '{"',
      '42',
      'null',
      '{"v":1,"c":"NaN","a":1,"d":{}}',
      '{"v":2,"c":1,"a":9e15,"d":{}}',
      '[]',
    ]) {
      const { manager, memory, clock } = setup()
      const { cookie } = await request(manager, undefined, (s) => s.set('userId', 'alice'))
      const key = sha256Hex(idOf(cookie!))
      const current = (await memory.get(key, clock.now()))!
      await memory.update(
        key,
        { ...current, data: garbage, version: current.version + 1 },
        current.version,
        clock.now(),
      )
      assert.equal((await request(manager, cookie)).session.isNew, true, garbage)
      assert.equal(await memory.get(key, clock.now()), undefined)
    }
  })
})

describe('store failures', () => {
  const failing = (method: keyof Store): Store => {
    const store = new MemoryStore({ cleanupIntervalMs: 0 })
    return new Proxy(store, {
      get: (target, property) =>
        property === method ? async () => Promise.reject(new Error('ECONNREFUSED')) : bound(target, property),
    })
  }

  it('fails load with a StoreError carrying the driver error, never a fresh session', async () => {
    const store = failing('get')
    const writer = createSessionManager<Data>({
      store: new MemoryStore({ cleanupIntervalMs: 0 }),
      secrets: [SECRET_A],
    })
    const { cookie } = await request(writer, undefined, (s) => s.set('userId', 'alice'))
    const manager = createSessionManager<Data>({ store, secrets: [SECRET_A] })
    const error = await manager.load({ cookie }).then(
      () => undefined,
      (e: unknown) => e,
    )
    assert.ok(error instanceof StoreError)
    assert.equal(error.code, 'ERR_SESSION_STORE')
    assert.equal(error.status, 503)
    assert.equal((error.cause as Error).message, 'ECONNREFUSED')
  })

  it('fails commit with a StoreError and no cookie when the write fails', async () => {
    const manager = createSessionManager<Data>({ store: failing('create'), secrets: [SECRET_A] })
    const session = await manager.load({ cookie: undefined })
    session.set('userId', 'alice')
    await assert.rejects(manager.commit(session), StoreError)
  })
})

describe('concurrent requests on one session', () => {
  it('merges changes to different keys instead of losing one', async () => {
    const { manager } = setup()
    const { cookie } = await request(manager, undefined, (s) => s.set('visits', 0))
    const first = await manager.load({ cookie })
    const second = await manager.load({ cookie })
    first.set('a', 1)
    second.set('b', 2)
    await manager.commit(first)
    await manager.commit(second)
    const { session } = await request(manager, cookie)
    assert.deepEqual([session.get('a'), session.get('b'), session.get('visits')], [1, 2, 0])
  })

  it('keeps a key this request deleted deleted, and keys it did not touch as the other writer left them', async () => {
    const { manager } = setup()
    const { cookie } = await request(manager, undefined, (s) => s.set('a', 1).set('b', 1))
    const first = await manager.load({ cookie })
    const second = await manager.load({ cookie })
    first.set('b', 5)
    second.delete('a')
    await manager.commit(first)
    await manager.commit(second)
    const { session } = await request(manager, cookie)
    assert.deepEqual([session.has('a'), session.get('b')], [false, 5])
  })

  it('never resurrects a session destroyed by a concurrent request', async () => {
    const { manager } = setup()
    const { cookie } = await request(manager, undefined, (s) => s.set('userId', 'alice'))
    const slow = await manager.load({ cookie })
    await request(manager, cookie, (s) => s.destroy())
    slow.set('cart', ['apple'])
    await assert.rejects(manager.commit(slow), SessionDestroyedError)
    assert.equal((await request(manager, cookie)).session.isNew, true)
  })

  it('gives up with SessionConflictError rather than overwrite when retries run out', async () => {
    const { manager } = setup({ maxConflictRetries: 0 })
    const { cookie } = await request(manager, undefined, (s) => s.set('a', 0))
    const first = await manager.load({ cookie })
    const second = await manager.load({ cookie })
    first.set('a', 1)
    second.set('b', 2)
    await manager.commit(first)
    const error = await manager.commit(second).then(
      () => undefined,
      (e: unknown) => e,
    )
    assert.ok(error instanceof SessionConflictError)
    assert.equal(error.code, 'ERR_SESSION_CONFLICT')
    const { session } = await request(manager, cookie)
    assert.deepEqual([session.get('a'), session.has('b')], [1, false])
  })

  it('fails the later save of a key both requests changed, keeping the earlier write whole', async () => {
    const { manager } = setup()
    const { cookie } = await request(manager, undefined, (s) => s.set('a', 0).set('b', 0))
    const first = await manager.load({ cookie })
    const second = await manager.load({ cookie })
    first.set('a', 1)
    second.set('a', 2).set('b', 2)
    await manager.commit(first)
    await assert.rejects(manager.commit(second), SessionConflictError)
    const { session } = await request(manager, cookie)
    assert.deepEqual(
      [session.get('a'), session.get('b')],
      [1, 0],
      'nothing of the failed request is half-applied',
    )
  })

  it('does not count the same change made by both requests as a conflict', async () => {
    const { manager } = setup()
    const { cookie } = await request(manager, undefined, (s) => s.set('a', 0))
    const first = await manager.load({ cookie })
    const second = await manager.load({ cookie })
    first.set('a', 7)
    second.set('a', 7).set('b', 1)
    await manager.commit(first)
    await manager.commit(second)
    const { session } = await request(manager, cookie)
    assert.deepEqual([session.get('a'), session.get('b')], [7, 1])
  })

  it("overwrites the other writer's changes only when last-write-wins is chosen", async () => {
    const { manager } = setup({ onConflict: 'last-write-wins' })
    const { cookie } = await request(manager, undefined, (s) => s.set('a', 0))
    const first = await manager.load({ cookie })
    const second = await manager.load({ cookie })
    first.set('a', 1).set('b', 1)
    second.set('a', 2)
    await manager.commit(first)
    await manager.commit(second)
    const { session } = await request(manager, cookie)
    assert.deepEqual([session.get('a'), session.has('b')], [2, false])
  })

  it('merges 200 concurrent requests, each setting its own key, without losing one', async () => {
    const { manager } = setup()
    const { cookie } = await request(manager, undefined, (s) => s.set('visits', 0))
    const keyed = (s: unknown) => s as { set(k: string, v: number): void; get(k: string): unknown }
    const results = await Promise.allSettled(
      Array.from({ length: 200 }, (_, i) => request(manager, cookie, (s) => keyed(s).set(`k${i}`, i))),
    )
    assert.deepEqual(
      results.filter((r) => r.status === 'rejected'),
      [],
    )
    const { session } = await request(manager, cookie)
    for (let i = 0; i < 200; i++) assert.equal(keyed(session).get(`k${i}`), i)
  })
})

describe('login and the per-user index', () => {
  it('login() regenerates, binds the user, records the client, and restarts the absolute deadline', async () => {
    const { manager, memory, clock } = setup({ absoluteTimeout: 8 * 60 * 60_000 })
    const { cookie: anonymous } = await request(manager, undefined, (s) => s.set('cart', ['apple']))
    clock.advance(20 * 60_000)
    const { cookie, session } = await request(manager, anonymous, (s) => s.login('alice'), {
      userAgent: 'Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0',
      ip: '203.0.113.7',
    })
    assert.notEqual(idOf(cookie!), idOf(anonymous!))
    assert.equal(await memory.get(sha256Hex(idOf(anonymous!)), clock.now()), undefined)
    assert.equal(session.userId, 'alice')
    assert.equal(session.authenticatedAt?.getTime(), clock.now())
    assert.equal(session.absoluteExpiresAt.getTime(), clock.now() + 8 * 60 * 60_000)
    const next = await request(manager, cookie)
    assert.deepEqual([next.session.userId, next.session.get('cart')], ['alice', ['apple']])
    const [info] = await manager.listSessions('alice', { current: next.session })
    assert.equal(info?.userAgent, 'Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0')
    assert.equal(info?.ip, '203.0.113.7')
    assert.equal(info?.current, true)
    assert.equal(info?.handle, sha256Hex(idOf(cookie!)))
    assert.ok(!JSON.stringify(info).includes(idOf(cookie!)), 'the raw ID is never listed')
  })

  it('stores a logged-in session even when its data is empty', async () => {
    const { manager } = setup()
    const { result, cookie } = await request(manager, undefined, (s) => s.login('alice'))
    assert.equal(result.setCookie.length, 1)
    assert.equal((await request(manager, cookie)).session.userId, 'alice')
  })

  it("lists only the user's live sessions, and revokes all, all but the current one, or one by handle", async () => {
    const { manager, clock } = setup({ idleTimeout: 30 * 60_000 })
    const device = async () => (await request(manager, undefined, (s) => s.login('alice'))).cookie!
    const [phone, laptop, tablet] = [await device(), await device(), await device()]
    const bob = (await request(manager, undefined, (s) => s.login('bob'))).cookie!
    const expiring = await device()
    clock.advance(20 * 60_000)
    for (const cookie of [phone, laptop, tablet, bob]) await request(manager, cookie, (s) => s.touch())
    clock.advance(15 * 60_000) // `expiring` was never touched: now past its idle deadline
    assert.equal((await manager.listSessions('alice')).length, 3)
    const current = (await request(manager, tablet)).session
    // Three records go: phone, laptop, and the expired one that cleanup had not reached yet.
    assert.equal(await manager.revokeSessions('alice', { except: current }), 3)
    assert.equal((await request(manager, phone)).session.isNew, true)
    assert.equal((await request(manager, laptop)).session.isNew, true)
    assert.equal((await request(manager, tablet)).session.userId, 'alice')
    assert.equal((await request(manager, bob)).session.userId, 'bob')
    assert.equal((await request(manager, expiring)).session.isNew, true)
    const [tabletInfo] = await manager.listSessions('alice')
    assert.equal(
      await manager.revokeSession('bob', tabletInfo!.handle),
      false,
      "bob cannot end alice's session",
    )
    assert.equal(await manager.revokeSession('alice', tabletInfo!.handle), true)
    assert.equal((await request(manager, tablet)).session.isNew, true)
    assert.deepEqual(await manager.listSessions('alice'), [])
  })

  it('unbinds the user on destroy() and refuses an empty user ID', async () => {
    const { manager } = setup()
    const { cookie } = await request(manager, undefined, (s) => s.login('alice'))
    await request(manager, cookie, (s) => s.destroy())
    assert.deepEqual(await manager.listSessions('alice'), [])
    const session = await manager.load({ cookie: undefined })
    await assert.rejects(session.login(''), SessionDataError)
  })

  it('records the first X-Forwarded-For address as the IP only with trustProxy', async () => {
    for (const trustProxy of [false, true]) {
      const { manager } = setup({ trustProxy })
      await request(manager, undefined, (s) => s.login('alice'), {
        ip: '10.0.0.2',
        forwardedFor: '198.51.100.4, 10.0.0.1',
      })
      const [info] = await manager.listSessions('alice')
      assert.equal(info?.ip, trustProxy ? '198.51.100.4' : '10.0.0.2')
    }
  })
})

describe('caching', () => {
  it('marks a response no-store and Vary: Cookie when it sets the cookie, even on a refresh-only touch', async () => {
    const { manager, clock } = setup()
    const { result, cookie } = await request(manager, undefined, (s) => s.set('visits', 1))
    assert.deepEqual([result.cacheControl, result.vary], ['no-store', 'Cookie'])
    clock.advance(2 * 60_000)
    const touched = await request(manager, cookie) // the handler never reads the session; rolling refreshes it
    assert.equal(touched.result.setCookie.length, 1)
    assert.deepEqual([touched.result.cacheControl, touched.result.vary], ['no-store', 'Cookie'])
  })

  it('marks a response that only asked has() as depending on the session', async () => {
    const { manager } = setup()
    const { result } = await request(manager, undefined, (s) => s.has('userId'))
    assert.deepEqual([result.setCookie, result.cacheControl, result.vary], [[], 'no-store', 'Cookie'])
  })

  it('leaves a response that never used the session cacheable', async () => {
    const { manager } = setup()
    const { result } = await request(manager, undefined)
    assert.deepEqual(result, { setCookie: [] })
  })

  it('uses the configured Cache-Control, or none with cacheControl: false', async () => {
    assert.equal(
      (await request(setup({ cacheControl: 'private' }).manager, undefined, (s) => s.has('a'))).result
        .cacheControl,
      'private',
    )
    assert.deepEqual(
      (await request(setup({ cacheControl: false }).manager, undefined, (s) => s.set('a', 1))).result
        .cacheControl,
      undefined,
    )
  })
})

describe('read-once values and recent authentication', () => {
  it('take() returns a value once and removes it', async () => {
    const { manager } = setup()
    const { cookie } = await request(manager, undefined, (s) => s.set('blob', 'Welcome back!'))
    const { session: first, cookie: next } = await request(manager, cookie, (s) =>
      assert.equal(s.take('blob'), 'Welcome back!'),
    )
    assert.equal(first.has('blob'), false)
    const { session } = await request(manager, next)
    assert.equal(session.take('blob'), undefined)
  })

  it('authenticatedWithin() is true only within the given time of the last login', async () => {
    const { manager, clock } = setup()
    const { cookie } = await request(manager, undefined, (s) => s.login('alice'))
    clock.advance(14 * 60_000)
    assert.equal((await request(manager, cookie)).session.authenticatedWithin(15 * 60_000), true)
    clock.advance(2 * 60_000)
    assert.equal((await request(manager, cookie)).session.authenticatedWithin(15 * 60_000), false)
    assert.equal((await request(manager, undefined)).session.authenticatedWithin(15 * 60_000), false)
  })
})

describe('hardening', () => {
  it('counts repeated copies of one cookie once, so padding cannot push the real one out of view', async () => {
    const { manager } = setup()
    const attacker = (await request(manager, undefined, (s) => s.set('userId', 'mallory'))).cookie!
    const victim = (await request(manager, undefined, (s) => s.set('userId', 'alice'))).cookie!
    const padded = `${attacker}; ${attacker}; ${attacker}; ${attacker}; ${victim}`
    assert.equal((await request(manager, padded)).session.isNew, true, 'two distinct live sessions: neither')
    assert.equal(
      (await request(manager, `${victim}; ${victim}; ${victim}; ${victim}; ${victim}`)).session.get('userId'),
      'alice',
    )
  })

  it('fails closed on more than four distinct same-named cookies, without a store call', async () => {
    const { manager, spy } = setup()
    const victim = (await request(manager, undefined, (s) => s.set('userId', 'alice'))).cookie!
    spy.reset()
    const name = manager.cookieName
    const noise = [1, 2, 3, 4].map((n) => `${name}=junk${n}`).join('; ')
    assert.equal((await request(manager, `${noise}; ${victim}`)).session.isNew, true)
    assert.equal(spy.count('get'), 0)
  })

  it('drops prototype keys spelled with JSON escapes when loading', async () => {
    const { manager, memory, clock } = setup()
    const { cookie } = await request(manager, undefined, (s) => s.set('visits', 1))
    const key = sha256Hex(idOf(cookie!))
    const current = (await memory.get(key, clock.now()))!
    const poisoned = current.data.replace('"d":{', '"d":{"__proto\\u005f_":{"isAdmin":true},')
    await memory.update(
      key,
      { ...current, data: poisoned, version: current.version + 1 },
      current.version,
      clock.now(),
    )
    const { session } = await request(manager, cookie)
    const copy = Object.assign(
      {},
      ...session.keys().map((k) => ({ [k]: (session as unknown as { get(k: string): unknown }).get(k) })),
    )
    assert.equal(copy.isAdmin, undefined)
    assert.deepEqual(session.keys(), ['visits'])
  })
})

describe('events', () => {
  it('reports the lifecycle with handles, never raw IDs', async () => {
    const { manager, clock } = setup()
    const seen: [string, unknown][] = []
    for (const name of ['created', 'saved', 'touched', 'regenerated', 'loggedIn', 'destroyed'] as const) {
      manager.on(name, (event) => seen.push([name, event]))
    }
    const { cookie } = await request(manager, undefined, (s) => s.set('visits', 1))
    const { cookie: second } = await request(manager, cookie, (s) => s.set('visits', 2))
    clock.advance(2 * 60_000)
    await request(manager, second)
    const { cookie: third } = await request(manager, second, (s) => s.regenerate())
    const { cookie: fourth } = await request(manager, third, (s) => s.login('alice'))
    await request(manager, fourth, (s) => s.destroy())
    assert.deepEqual(
      seen.map(([name]) => name),
      ['created', 'saved', 'touched', 'regenerated', 'created', 'loggedIn', 'created', 'destroyed'],
    )
    const text = JSON.stringify(seen)
    for (const c of [cookie, second, third, fourth])
      assert.ok(!text.includes(idOf(c!)), 'no raw ID in any event')
    assert.match(String((seen[0]![1] as { session: string }).session), /^[0-9a-f]{16}$/)
  })

  it('says why a cookie was rejected: malformed, bad signature, unknown, duplicate', async () => {
    const { manager, clock } = setup()
    const reasons: string[] = []
    manager.on('rejected', ({ reason }) => reasons.push(reason))
    const name = manager.cookieName
    const live = (await request(manager, undefined, (s) => s.set('visits', 1))).cookie!
    const other = (await request(manager, undefined, (s) => s.set('visits', 1))).cookie!
    const gone = (await request(manager, undefined, (s) => s.set('visits', 1))).cookie!
    await request(manager, gone, (s) => s.destroy())
    const value = live.slice(live.indexOf('=') + 1)
    await request(manager, `${name}=garbage`)
    await request(manager, `${name}=${value.slice(0, -1)}${value.endsWith('A') ? 'B' : 'A'}`)
    await request(manager, gone)
    await request(manager, `${live}; ${other}`)
    clock.advance(manager.idleTimeout + 1)
    await request(manager, live)
    // Stores never return expired records, so an expired session reads as unknown unless a store lags behind.
    assert.deepEqual(reasons, ['malformed', 'bad-signature', 'unknown', 'duplicate', 'unknown'])
  })

  it('reports store errors and conflicts, and survives a throwing listener', async () => {
    const { manager, warnings } = setup()
    const conflicts: number[] = []
    manager.on('conflict', ({ attempt }) => conflicts.push(attempt))
    manager.on('conflict', () => {
      throw new Error('listener bug')
    })
    const { cookie } = await request(manager, undefined, (s) => s.set('a', 0))
    const first = await manager.load({ cookie })
    const second = await manager.load({ cookie })
    first.set('a', 1)
    second.set('b', 1)
    await manager.commit(first)
    await manager.commit(second)
    assert.deepEqual(conflicts, [1])
    assert.equal(warnings[0]?.code, 'TESSERA_LISTENER_ERROR')
  })
})

// A store method bound to its store, or a plain property as is (proxies in these tests wrap real stores).
function bound(target: object, property: string | symbol): unknown {
  const value: unknown = Reflect.get(target, property)
  return typeof value === 'function' ? value.bind(target) : value
}

describe('in-process store calls', () => {
  it('reads MemoryStore at once, yet calls as written a get replaced by a subclass, an assignment or a proxy', async () => {
    const writer = createSessionManager<Data>({
      store: new MemoryStore({ cleanupIntervalMs: 0 }),
      secrets: [SECRET_A],
    })
    const { cookie } = await request(writer, undefined, (s) => s.set('userId', 'alice'))
    const replaced: string[] = []
    class CountingStore extends MemoryStore {
      override async get(key: string, now: number): Promise<StoreRecord | undefined> {
        replaced.push('subclass')
        return super.get(key, now)
      }
    }
    const assigned = new MemoryStore({ cleanupIntervalMs: 0 })
    const originalGet = assigned.get.bind(assigned)
    assigned.get = (key, now) => {
      replaced.push('assignment')
      return originalGet(key, now)
    }
    const plain = new MemoryStore({ cleanupIntervalMs: 0 })
    const proxied = new Proxy(plain, {
      get: (target, property) => {
        if (property === 'get') {
          return (key: string, now: number) => {
            replaced.push('proxy')
            return target.get(key, now)
          }
        }
        const value = Reflect.get(target, property, target)
        return typeof value === 'function' ? value.bind(target) : value
      },
    })
    for (const [label, store] of [
      ['subclass', new CountingStore({ cleanupIntervalMs: 0 })],
      ['assignment', assigned],
      ['proxy', proxied],
    ] as const) {
      const manager = createSessionManager<Data>({ store, secrets: [SECRET_A] })
      const { cookie: own } = await request(manager, undefined, (s) => s.set('userId', label))
      replaced.length = 0
      assert.equal((await request(manager, own)).session.get('userId'), label)
      assert.deepEqual(replaced, [label])
    }
    assert.equal(
      (await request(writer, cookie)).session.get('userId'),
      'alice',
      'the plain store still reads',
    )
  })

  it('settles load and commit without a promise for MemoryStore, reading and writing, and with promises for a store that makes them wait', async () => {
    const memory = createSessionManager<Data>({
      store: new MemoryStore({ cleanupIntervalMs: 0 }),
      secrets: [SECRET_A],
    })
    const { cookie } = await request(memory, undefined, (s) => s.set('userId', 'alice'))
    const loaded = memory[loadNow]({ cookie })
    assert.ok(!(loaded instanceof Promise), 'a MemoryStore read gives the session itself')
    assert.equal(loaded.get('userId'), 'alice')
    loaded.set('userId', 'bob')
    const committed = memory[commitNow](loaded)
    assert.ok(!(committed instanceof Promise), 'a MemoryStore write gives the result itself')
    assert.equal((await request(memory, cookie)).session.get('userId'), 'bob', 'and the write landed')
    // The public methods still return promises, and a second commit still rejects rather than throws.
    const again = memory.load({ cookie })
    assert.ok(again instanceof Promise)
    const session = await again
    await memory.commit(session)
    await assert.rejects(memory.commit(session), SessionCommittedError)

    const waiting: Store = new Proxy(new MemoryStore({ cleanupIntervalMs: 0 }), {
      get: (target, property) => bound(target, property),
    })
    const remote = createSessionManager<Data>({ store: waiting, secrets: [SECRET_A] })
    const { cookie: remoteCookie } = await request(remote, undefined, (s) => s.set('userId', 'carol'))
    const pending = remote[loadNow]({ cookie: remoteCookie })
    assert.ok(pending instanceof Promise, 'a store without the at-once methods makes the load wait')
    const remoteSession = await pending
    remoteSession.set('userId', 'dave')
    const saving = remote[commitNow](remoteSession)
    assert.ok(saving instanceof Promise)
    await saving
    assert.equal((await request(remote, remoteCookie)).session.get('userId'), 'dave')
  })

  it('turns an exception of the at-once read into a StoreError with its cause and a storeError event', async () => {
    const failure = new Error('heap corrupted')
    class BrokenStore extends MemoryStore {
      override [getNow](): StoreRecord | undefined {
        throw failure
      }
    }
    const store = new BrokenStore({ cleanupIntervalMs: 0 })
    const manager = createSessionManager<Data>({ store, secrets: [SECRET_A] })
    const { cookie } = await request(manager, undefined, (s) => s.set('userId', 'alice'))
    const events: unknown[] = []
    manager.on('storeError', (event) => events.push(event))
    const error = await manager.load({ cookie }).then(
      () => undefined,
      (e: unknown) => e,
    )
    assert.ok(error instanceof StoreError)
    assert.equal(error.cause, failure)
    assert.deepEqual(events, [{ operation: 'get', error }])
  })
  it('reports at-once calls in storeCall events as any store call, succeeded or failed', async () => {
    const calls: { operation: string; ok: boolean }[] = []
    const manager = createSessionManager<Data>({
      store: new MemoryStore({ cleanupIntervalMs: 0 }),
      secrets: [SECRET_A],
    })
    manager.on('storeCall', ({ operation, ok, ms }) => {
      assert.ok(ms >= 0)
      calls.push({ operation, ok })
    })
    const { cookie } = await request(manager, undefined, (s) => s.set('visits', 1))
    await request(manager, cookie, (s) => s.set('visits', 2))
    assert.deepEqual(calls, [
      { operation: 'create', ok: true },
      { operation: 'get', ok: true },
      { operation: 'update', ok: true },
    ])
    class BrokenStore extends MemoryStore {
      override [getNow](): StoreRecord | undefined {
        throw new Error('heap corrupted')
      }
    }
    const broken = createSessionManager<Data>({
      store: new BrokenStore({ cleanupIntervalMs: 0 }),
      secrets: [SECRET_A],
    })
    const failed: { operation: string; ok: boolean }[] = []
    broken.on('storeCall', ({ operation, ok }) => failed.push({ operation, ok }))
    const own = (await request(broken, undefined, (s) => s.set('visits', 1))).cookie
    await assert.rejects(broken.load({ cookie: own }), StoreError)
    assert.deepEqual(failed.at(-1), { operation: 'get', ok: false })
  })

  it('writes MemoryStore at once, yet calls as written an update replaced by an assignment, and wraps its exceptions', async () => {
    const assigned = new MemoryStore({ cleanupIntervalMs: 0 })
    const originalUpdate = assigned.update.bind(assigned)
    let replacedCalls = 0
    assigned.update = (...args) => {
      replacedCalls++
      return originalUpdate(...args)
    }
    const manager = createSessionManager<Data>({ store: assigned, secrets: [SECRET_A] })
    const { cookie } = await request(manager, undefined, (s) => s.set('visits', 1))
    await request(manager, cookie, (s) => s.set('visits', 2))
    assert.equal(replacedCalls, 1)
    assert.equal((await request(manager, cookie)).session.get('visits'), 2)

    const failure = new Error('disk full')
    class BrokenWrites extends MemoryStore {
      override [updateNow](): boolean {
        throw failure
      }
    }
    const broken = createSessionManager<Data>({
      store: new BrokenWrites({ cleanupIntervalMs: 0 }),
      secrets: [SECRET_A],
    })
    const first = await request(broken, undefined, (s) => s.set('visits', 1))
    const session = await broken.load({ cookie: first.cookie })
    session.set('visits', 2)
    const error = await broken.commit(session).then(
      () => undefined,
      (e: unknown) => e,
    )
    assert.ok(error instanceof StoreError)
    assert.equal(error.cause, failure)
  })
})

describe('records parsed lately (read again without parsing)', () => {
  // MemoryStore itself, whose reads and writes answer at once: the path that remembers what it parsed or wrote.
  const setupPlain = () => {
    const memory = new MemoryStore({ cleanupIntervalMs: 0 })
    return { memory, manager: createSessionManager<Data>({ store: memory, secrets: [SECRET_A] }) }
  }

  it('gives each load its own copy of the data: a change in one request reaches no other load of the record', async () => {
    const { manager } = setupPlain()
    const { cookie } = await request(manager, undefined, (s) => s.set('userId', 'alice').set('visits', 1))
    const parsed = await manager.load({ cookie })
    const remembered = await manager.load({ cookie })
    remembered.set('visits', 99).delete('userId')
    parsed.set('visits', 98)
    const third = await manager.load({ cookie })
    assert.equal(third.get('visits'), 1, 'nothing was saved')
    assert.equal(third.get('userId'), 'alice')
    await manager.commit(remembered)
    const written = await manager.load({ cookie })
    assert.equal(written.get('visits'), 99)
    assert.equal(written.has('userId'), false)
    written.set('visits', 97)
    assert.equal(
      (await manager.load({ cookie })).get('visits'),
      99,
      'what was written is not the session writing it',
    )
  })

  it('never hands out an object of an earlier load: nested data changed in place stays in its request', async () => {
    const { manager } = setupPlain()
    const { cookie } = await request(manager, undefined, (s) => s.set('cart', ['book']))
    for (let i = 0; i < 3; i++) (await manager.load({ cookie })).get('cart')!.push('pen')
    assert.deepEqual((await manager.load({ cookie })).get('cart'), ['book'])
  })

  it('reads the record anew when another writer changed it, though the key is the same', async () => {
    const { manager, memory } = setupPlain()
    const { cookie } = await request(manager, undefined, (s) => s.set('visits', 1))
    assert.equal((await manager.load({ cookie })).get('visits'), 1)
    // Another process sharing the store (a second manager on it) writes the session.
    const other = createSessionManager<Data>({ store: memory, secrets: [SECRET_A] })
    await request(other, cookie, (s) => s.set('visits', 2))
    assert.equal((await manager.load({ cookie })).get('visits'), 2)
  })

  it('reads back what JSON stored after its own write, not the value it wrote: NaN and -0 come back as null and 0', async () => {
    const { manager } = setupPlain()
    const { cookie } = await request(manager, undefined, (s) => s.set('visits', 1))
    await request(manager, cookie, (s) => s.set('visits', Number.NaN).set('a', -0))
    const loaded = await manager.load({ cookie })
    assert.equal(loaded.get('visits'), null)
    assert.ok(Object.is(loaded.get('a'), 0))
  })
})

describe('store timeouts', () => {
  it('fails a request with a StoreError when the store does not answer within storeTimeout', async () => {
    const hanging: Store = new Proxy(new MemoryStore({ cleanupIntervalMs: 0 }), {
      // A networked store that stops answering (not ephemeral: in-process stores are not timed).
      get: (target, property) =>
        property === 'get'
          ? () => new Promise(() => {})
          : property === 'ephemeral'
            ? false
            : bound(target, property),
    })
    const writer = createSessionManager<Data>({
      store: new MemoryStore({ cleanupIntervalMs: 0 }),
      secrets: [SECRET_A],
    })
    const { cookie } = await request(writer, undefined, (s) => s.set('userId', 'alice'))
    const manager = createSessionManager<Data>({ store: hanging, secrets: [SECRET_A], storeTimeout: 50 })
    const started = Date.now()
    await assert.rejects(
      manager.load({ cookie }),
      (error: unknown) => error instanceof StoreError && /within 50 ms/.test(error.message),
    )
    assert.ok(Date.now() - started < 1000)
  })
})

describe('cookie refresh', () => {
  it('re-sends the presented token unchanged when only the Max-Age moves, and a new one after regenerate()', async () => {
    const { manager, clock } = setup()
    const { cookie } = await request(manager, undefined, (s) => s.set('visits', 1))
    clock.advance(2 * 60_000)
    const { cookie: refreshed, result } = await request(manager, cookie, (s) => s.set('visits', 2))
    assert.equal(result.setCookie.length, 1)
    assert.equal(refreshed, cookie)
    const { cookie: regenerated } = await request(manager, cookie, (s) => s.regenerate())
    assert.notEqual(regenerated, cookie)
  })
})
