// Checklist A and B (docs/security.md): session identifiers, and how they travel.
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import { syncBuiltinESMExports } from 'node:module'
import { describe, it, mock } from 'node:test'
import { withSession } from '../../src/adapters/node.js'
import { generateSessionId } from '../../src/id.js'
import { sha256Hex } from '../../src/internal/crypto.js'
import { createSessionManager } from '../../src/manager.js'
import type { Session } from '../../src/session.js'
import { CookieSigner } from '../../src/signer.js'
import type { Store } from '../../src/store.js'
import { MemoryStore } from '../../src/stores/memory.js'
import { request, SECRET_A } from '../support.js'
import { type Data, idOf, serve, setup, tokenOf } from './support.js'

describe('A. session identifiers', () => {
  it('#1: draws every session ID from crypto.randomBytes and never calls Math.random', async () => {
    const { manager } = setup()
    const randomBytes = mock.method(crypto, 'randomBytes')
    syncBuiltinESMExports()
    const random = mock.method(Math, 'random')
    try {
      for (let i = 0; i < 100; i++) await request(manager, undefined, (s) => s.set('visits', i))
      await request(manager, undefined, (s) => s.login('alice'))
      assert.equal(random.mock.callCount(), 0, 'Math.random was called')
      const sizes = randomBytes.mock.calls.map((call) => call.arguments[0])
      assert.ok(sizes.length >= 101, `randomBytes called ${sizes.length} times for 101 sessions`)
      assert.ok(
        sizes.every((size) => size === 32),
        `every draw is 32 bytes: ${JSON.stringify([...new Set(sizes)])}`,
      )
    } finally {
      random.mock.restore()
      randomBytes.mock.restore()
      syncBuiltinESMExports()
    }
  })

  it('#1: issues 100,000 distinct 43-character base64url IDs', () => {
    const ids = new Set<string>()
    for (let i = 0; i < 100_000; i++) {
      const id = generateSessionId()
      if (!/^[A-Za-z0-9_-]{43}$/.test(id)) assert.fail(`malformed ID ${JSON.stringify(id)}`)
      ids.add(id)
    }
    assert.equal(ids.size, 100_000)
  })

  it('#2: retries a colliding ID with a fresh one and never overwrites the record that holds it', async () => {
    const queue: string[] = []
    // Random for the 64 samples taken at construction, then whatever the test queues.
    const { manager, memory, spy, clock } = setup({ generateId: () => queue.shift() ?? generateSessionId() })
    const collision = generateSessionId()
    queue.push(collision)
    const first = await request(manager, undefined, (s) => s.set('email', 'first@example.com'))
    assert.equal(idOf(first.cookie!), collision)
    const before = await memory.get(sha256Hex(collision), clock.now())

    spy.reset()
    queue.push(collision)
    const created: string[] = []
    manager.on('created', ({ session }) => created.push(session))
    const second = await request(manager, undefined, (s) => s.set('email', 'second@example.com'))
    const creates = spy.calls.filter((call) => call.method === 'create').map((call) => call.key)
    assert.equal(creates.length, 2, 'one refused create, one retry')
    assert.equal(creates[0], sha256Hex(collision))
    assert.notEqual(idOf(second.cookie!), collision)
    assert.equal(creates[1], sha256Hex(idOf(second.cookie!)))
    assert.equal(created.length, 1)
    assert.equal(spy.count('update'), 0)
    assert.deepEqual(await memory.get(sha256Hex(collision), clock.now()), before)
    assert.equal((await request(manager, first.cookie)).session.get('email'), 'first@example.com')
    assert.equal((await request(manager, second.cookie)).session.get('email'), 'second@example.com')
  })

  it('#3: keeps personal data out of the cookie, whose length does not depend on the data', async () => {
    const { manager } = setup()
    const small = await request(manager, undefined, (s) => s.set('email', 'alice@example.com'))
    const large = await request(manager, undefined, (s) => s.set('blob', 'x'.repeat(10_000)))
    const value = tokenOf(small.cookie!)
    for (const form of [value, Buffer.from(idOf(small.cookie!), 'base64url').toString('latin1')]) {
      assert.ok(!form.toLowerCase().includes('alice'), form)
      assert.ok(!form.includes('example'), form)
    }
    assert.match(value, /^[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{43}$/)
    assert.equal(tokenOf(large.cookie!).length, value.length)
    assert.equal(
      small.result.setCookie[0]!.length,
      large.result.setCookie[0]!.length,
      'the whole Set-Cookie header too',
    )
  })

  it('#4: holds no issued token or raw ID anywhere in the store, in keys or in values', async () => {
    const written: { method: string | symbol; args: unknown[] }[] = []
    const memory = new MemoryStore({ cleanupIntervalMs: 0 })
    const recording: Store = new Proxy(memory, {
      get(target, property) {
        const value = Reflect.get(target, property)
        if (typeof value !== 'function') return value
        return (...args: unknown[]) => {
          written.push({ method: property, args })
          return Reflect.apply(value, target, args)
        }
      },
    })
    const manager = createSessionManager<Data>({ store: recording, secrets: [SECRET_A], onWarning: () => {} })
    const tokens: string[] = []
    let { cookie } = await request(manager, undefined, (s) => s.set('email', 'alice@example.com'))
    tokens.push(cookie!)
    const steps: ((session: Session<Data>) => unknown)[] = [
      (s) => s.set('visits', 2),
      (s) => s.login('alice'),
      (s) => s.regenerate(),
      (s) => s.csrfToken(),
    ]
    for (const step of steps) {
      cookie = (await request(manager, cookie, step)).cookie
      tokens.push(cookie!)
    }
    await manager.listSessions('alice')
    const keys = new Set(
      written.filter(({ method }) => method !== 'listByUser').map(({ args }) => String(args[0])),
    )
    const dump = [JSON.stringify(written)]
    for (const key of keys) dump.push(JSON.stringify((await memory.get(key, Date.now())) ?? null))
    for (const user of await memory.listByUser('alice', Date.now())) dump.push(JSON.stringify(user))
    const text = dump.join('\n')
    for (const token of tokens) {
      assert.ok(!text.includes(tokenOf(token)), 'a signed token reached the store')
      assert.ok(!text.includes(idOf(token)), 'a raw session ID reached the store')
    }
    assert.ok(keys.size >= 3)
    for (const key of keys) assert.match(key, /^[0-9a-f]{64}$/)
  })

  it('#4: treats the store key, validly signed, as an unknown ID: a leaked store yields no usable cookie', async () => {
    const { manager, spy, memory, clock } = setup()
    const { cookie } = await request(manager, undefined, (s) => s.set('userId', 'alice'))
    const key = sha256Hex(idOf(cookie!))
    assert.ok(await memory.get(key, clock.now()), 'the record is stored under the hash')
    const reasons: string[] = []
    manager.on('rejected', ({ reason }) => reasons.push(reason))
    // What an attacker holding a dump of the store and the signing secret would present.
    const forged = `${manager.cookieName}=${new CookieSigner([SECRET_A], manager.cookieName).sign(key)}`
    spy.reset()
    const { session } = await request(manager, forged)
    assert.equal(session.isNew, true)
    assert.equal(session.get('userId'), undefined)
    assert.deepEqual(
      spy.calls.filter((call) => call.method === 'get').map((call) => call.key),
      [sha256Hex(key)],
      'the presented value is hashed again, so the record is not found',
    )
    assert.deepEqual(reasons, ['unknown'])
  })
})

describe('B. transport of the ID', () => {
  it('#6: leaves the Location of an app redirect untouched under the query transport', async () => {
    const store = new MemoryStore({ cleanupIntervalMs: 0 })
    const warnings: string[] = []
    const sessions = createSessionManager<Data>({
      store,
      secrets: [SECRET_A],
      transport: { type: 'query' },
      onWarning: (warning) => warnings.push(warning.code),
    })
    const url = await serve(
      withSession(sessions, async (req, res, session) => {
        if (req.url?.startsWith('/login')) await session.login('alice')
        res.writeHead(303, { Location: '/profile?tab=devices#top' })
        res.end()
      }),
    )
    const login = await fetch(`${url}/login`, { method: 'POST', redirect: 'manual' })
    assert.equal(login.status, 303)
    assert.equal(login.headers.get('location'), '/profile?tab=devices#top')
    assert.equal(login.headers.get('referrer-policy'), 'no-referrer')
    const token = login.headers.get('session-token')
    assert.ok(token !== null && token.length > 0, 'the new token goes out in Session-Token')
    const next = await fetch(`${url}/profile?sid=${token}`, { redirect: 'manual' })
    assert.equal(next.headers.get('location'), '/profile?tab=devices#top')
    assert.equal(next.headers.get('referrer-policy'), 'no-referrer')
    for (const response of [login, next]) assert.ok(!response.headers.get('location')?.includes(token))
    assert.deepEqual(warnings, ['TESSERA_URL_TRANSPORT'])
  })
})
