// Checklist H and I (docs/security.md): store failures and garbage, and what stored data can and cannot do.
import assert from 'node:assert/strict'
import { createHmac } from 'node:crypto'
import { describe, it, mock } from 'node:test'
import { SessionDataError, StoreError } from '../../src/errors.js'
import { sha256Hex } from '../../src/internal/crypto.js'
import { createSessionManager } from '../../src/manager.js'
import type { Store, StoreRecord } from '../../src/store.js'
import { MemoryStore } from '../../src/stores/memory.js'
import { fakeClock, request, SECRET_A, T0 } from '../support.js'
import { bound, type Data, idOf, setup } from './support.js'

type Loose = { get(key: string): unknown; set(key: string, value: unknown): void }

/** `levels` objects nested in one another: `{x:{x:…{x:1}}}`. */
function nest(levels: number): unknown {
  let value: unknown = 1
  for (let i = 0; i < levels; i++) value = { x: value }
  return value
}

/** The same as text, built without recursion so that 100,000 levels fit. */
const nestedText = (levels: number) => `${'{"x":'.repeat(levels)}1${'}'.repeat(levels)}`

/** A live session, and a way to replace its stored text behind the manager's back. */
async function stored(options: Parameters<typeof setup>[0] = {}) {
  const context = setup(options)
  const { manager, memory, clock } = context
  const { cookie } = await request(manager, undefined, (s) => s.set('visits', 1))
  const key = sha256Hex(idOf(cookie!))
  const replace = async (data: string) => {
    const current = (await memory.get(key, clock.now()))!
    assert.ok(
      await memory.update(
        key,
        { ...current, data, version: current.version + 1 },
        current.version,
        clock.now(),
      ),
    )
  }
  const text = (await memory.get(key, clock.now()))!.data
  return { ...context, cookie: cookie!, key, replace, text }
}

describe('H. store contract', () => {
  it("#37: treats a record stored under another session's key as garbage, never as that session", async () => {
    const { manager, memory, clock } = setup()
    const rejected: string[] = []
    manager.on('rejected', ({ reason }) => rejected.push(reason))
    const alice = await request(manager, undefined, (s) => s.login('alice'))
    const mallory = await request(manager, undefined, (s) => s.set('visits', 1))
    const aliceKey = sha256Hex(idOf(alice.cookie!))
    const malloryKey = sha256Hex(idOf(mallory.cookie!))
    // A store that mixed up its keys: Alice's record now answers for Mallory's ID.
    const record = (await memory.get(aliceKey, clock.now()))!
    await memory.destroy(malloryKey)
    assert.ok(await memory.create(malloryKey, record, clock.now()))
    const { session } = await request(manager, mallory.cookie)
    assert.equal(session.isNew, true)
    assert.equal(session.userId, undefined, "Mallory never gets Alice's session")
    assert.deepEqual(rejected, ['garbage'])
    assert.equal(await memory.get(malloryKey, clock.now()), undefined, 'the misplaced record is deleted')
  })

  it('#37: emits storeError with the operation and the StoreError, its cause the driver error, for every failing call', async () => {
    const failing = new Set<string>()
    const hanging = new Set<string>()
    const driverError = new Error('ECONNREFUSED 10.0.0.5:6379')
    const store: Store = new Proxy(new MemoryStore({ cleanupIntervalMs: 0 }), {
      get(target, property) {
        if (property === 'ephemeral') return false // a networked store: calls are timed
        if (typeof property === 'string' && failing.has(property))
          return async () => Promise.reject(driverError)
        if (typeof property === 'string' && hanging.has(property)) return () => new Promise(() => {})
        return bound(target, property)
      },
    })
    const clock = fakeClock()
    const manager = createSessionManager<Data>({
      store,
      secrets: [SECRET_A],
      clock: clock.now,
      storeTimeout: 100,
      onWarning: () => {},
    })
    const events: { operation: string; error: unknown }[] = []
    manager.on('storeError', (event) => events.push(event))
    const { cookie } = await request(manager, undefined, (s) => s.login('alice'))

    const expect = async (operation: string, call: () => Promise<unknown>, cause: unknown = driverError) => {
      events.length = 0
      const thrown = await call().then(
        () => assert.fail(`${operation} did not fail`),
        (error: unknown) => error,
      )
      assert.ok(thrown instanceof StoreError, operation)
      assert.equal(thrown.status, 503)
      assert.equal(events.length, 1, operation)
      assert.equal(events[0]!.operation, operation)
      assert.equal(events[0]!.error, thrown, 'the event carries the error the caller got')
      if (cause !== null) assert.equal(thrown.cause, cause)
    }
    const fail = async (method: string, operation: string, call: () => Promise<unknown>) => {
      failing.add(method)
      try {
        await expect(operation, call)
      } finally {
        failing.delete(method)
      }
    }
    await fail('get', 'get', () => manager.load({ cookie }))
    await fail('create', 'create', () => request(manager, undefined, (s) => s.set('visits', 1)))
    await fail('update', 'update', () => request(manager, cookie, (s) => s.set('visits', 2)))
    clock.advance(2 * 60_000)
    await fail('touch', 'touch', () => request(manager, cookie))
    await fail('destroy', 'destroy', () => request(manager, cookie, (s) => s.regenerate()))
    await fail('listByUser', 'listByUser', () => manager.listSessions('alice'))
    await fail('destroyByUser', 'destroyByUser', () => manager.revokeSessions('alice'))
    hanging.add('get')
    await expect('get', () => manager.load({ cookie }), null)
    hanging.clear()
    assert.match(String((events[0]!.error as Error).message), /within 100 ms/)
    assert.equal((await request(manager, cookie)).session.userId, 'alice', 'nothing was lost meanwhile')
  })

  it('#37: treats anything but a well-formed record from get() as missing, deletes it, and exposes none of its data', async () => {
    const { text } = await stored()
    const valid = JSON.parse(text) as Record<string, unknown>
    const good = (data: unknown, extra: object = {}) => ({
      data,
      version: 2,
      expiresAt: T0 + 60_000,
      ...extra,
    })
    const garbage: unknown[] = [
      '',
      42,
      'a string',
      [],
      {},
      Buffer.from(text),
      good(undefined),
      good(''),
      good(42),
      good(Buffer.from(text)),
      good('{"'),
      good('null'),
      good(JSON.stringify({ ...valid, v: 2 })),
      good(JSON.stringify({ ...valid, d: [] })),
      good(JSON.stringify({ ...valid, d: 'x' })),
      good(JSON.stringify({ ...valid, c: 'NaN' })),
      good(JSON.stringify({ ...valid, a: 1e300 })),
      good(JSON.stringify({ ...valid, c: -1 })),
      good(JSON.stringify({ ...valid, u: 42 })),
      good(text, { version: 'x' }),
      good(text, { version: 1.5 }),
      good(text, { expiresAt: 'NaN' }),
      good(text, { expiresAt: undefined }),
      good(text, { expiresAt: T0 - 1 }),
    ]
    for (const record of garbage) {
      const { spy, cookie, key } = await stored()
      const fake: Store = new Proxy(spy.store, {
        get: (target, property) =>
          property === 'get' ? async () => record as StoreRecord : bound(target, property),
      })
      const reader = createSessionManager<Data>({
        store: fake,
        secrets: [SECRET_A],
        clock: () => T0,
        onWarning: () => {},
      })
      const reasons: string[] = []
      reader.on('rejected', ({ reason }) => reasons.push(reason))
      spy.reset()
      const session = await reader.load({ cookie })
      const label = JSON.stringify(record)?.slice(0, 80)
      assert.equal(session.isNew, true, label)
      assert.equal(session.get('visits'), undefined, label)
      assert.deepEqual(
        spy.calls.map((call) => [call.method, call.key]),
        [['destroy', key]],
        `deleted: ${label}`,
      )
      assert.ok(reasons.length === 1 && ['garbage', 'expired'].includes(reasons[0]!), `${label}: ${reasons}`)
    }
  })
  it('#37: treats a record whose expiresAt is NaN, infinite, fractional or beyond any real date as garbage', async () => {
    for (const expiresAt of [Number.NaN, Number.POSITIVE_INFINITY, 1e300, 9e15, T0 + 60_000.5]) {
      const { spy, cookie, key, memory, clock } = await stored()
      const record = { ...(await memory.get(key, clock.now()))!, expiresAt }
      const reader = createSessionManager<Data>({
        store: new Proxy(spy.store, {
          get: (target, property) => (property === 'get' ? async () => record : bound(target, property)),
        }),
        secrets: [SECRET_A],
        clock: () => T0,
        onWarning: () => {},
      })
      const session = await reader.load({ cookie })
      assert.equal(session.isNew, true, String(expiresAt))
    }
  })

  it('#37: treats stored timestamps outside the Date range as garbage, never as an Invalid Date', async () => {
    for (const field of ['a', 'c', 't']) {
      const { manager, replace, text, cookie } = await stored()
      const wire = { ...(JSON.parse(text) as Record<string, unknown>), u: 'alice', [field]: 9e15 }
      await replace(JSON.stringify(wire))
      const { session } = await request(manager, cookie)
      assert.equal(session.isNew, true, field)
    }
  })
})

describe('I. session data', () => {
  it('#39: loads data 64 objects deep and drops a stored session nested deeper, to 100,000 levels, without throwing', async () => {
    const { manager, replace, text, cookie } = await stored()
    const withDeep = (deep: string) => text.replace('"d":{', `"d":{"deep":${deep},`)
    await replace(withDeep(nestedText(63))) // with "d" itself: 64 objects deep
    assert.deepEqual(
      ((await request(manager, cookie)).session as unknown as Loose).get('deep'),
      nest(63),
      'at the cap',
    )
    for (const levels of [64, 1_000, 10_000, 100_000]) {
      const context = await stored()
      await context.replace(withDeep(nestedText(levels)))
      const reasons: string[] = []
      context.manager.on('rejected', ({ reason }) => reasons.push(reason))
      const { session } = await request(context.manager, context.cookie)
      assert.equal(session.isNew, true, `${levels} levels`)
      assert.deepEqual(reasons, ['garbage'])
      assert.equal(await context.memory.get(context.key, context.clock.now()), undefined, 'and deleted')
    }
  })

  it('#39: drops stored text longer than 4 × maxDataBytes before parsing it, and loads text of exactly that length', async () => {
    for (const maxDataBytes of [1024, undefined]) {
      const cap = 4 * (maxDataBytes ?? 65_536)
      const { manager, replace, text, cookie } = await stored(
        maxDataBytes === undefined ? {} : { maxDataBytes },
      )
      await replace(text + ' '.repeat(cap - text.length)) // JSON allows trailing whitespace
      assert.equal((await request(manager, cookie)).session.get('visits'), 1, `exactly ${cap}`)
      await replace(text + ' '.repeat(cap + 1 - text.length))
      const parse = mock.method(JSON, 'parse')
      try {
        assert.equal((await request(manager, cookie)).session.isNew, true, `${cap + 1}`)
        const big = parse.mock.calls.filter((call) => String(call.arguments[0]).length > cap)
        assert.equal(big.length, 0, 'never parsed')
      } finally {
        parse.mock.restore()
      }
    }
  })

  it('#39: refuses at commit, with SessionDataError, data nested deeper than a load accepts, keeping the old state', async () => {
    const { manager, spy } = setup()
    const { cookie } = await request(manager, undefined, (s) => s.login('alice'))
    const loose = (s: unknown) => s as Loose
    assert.equal(
      (await request(manager, cookie, (s) => loose(s).set('deep', nest(63)))).session.userId,
      'alice',
      'at the cap: stored',
    )
    assert.deepEqual(loose((await request(manager, cookie)).session).get('deep'), nest(63))
    spy.reset()
    await assert.rejects(
      request(manager, cookie, (s) => loose(s).set('deep', nest(64))),
      SessionDataError,
    )
    await assert.rejects(
      request(manager, undefined, (s) => loose(s).set('deep', nest(64))),
      SessionDataError,
      'a new session too',
    )
    assert.equal(spy.count('update') + spy.count('create'), 0, 'nothing written')
    const { session } = await request(manager, cookie)
    assert.equal(session.userId, 'alice', 'still logged in')
    assert.deepEqual(loose(session).get('deep'), nest(63))
  })

  it('#40: keeps user keys named like metadata out of the deadlines, the user binding, the CSRF secret and the version', async () => {
    const updates: { expectedVersion: number; record: StoreRecord }[] = []
    const { spy, clock, memory } = setup()
    const recording: Store = new Proxy(spy.store, {
      get: (target, property) =>
        property === 'update'
          ? (key: string, record: StoreRecord, expectedVersion: number, now: number) => {
              updates.push({ expectedVersion, record })
              return target.update(key, record, expectedVersion, now)
            }
          : bound(target, property),
    })
    const sessions = createSessionManager<Data>({
      store: recording,
      secrets: [SECRET_A],
      clock: clock.now,
      onWarning: () => {},
    })
    const far = T0 + 365 * 24 * 60 * 60_000
    const planted: Record<string, unknown> = {
      expiresAt: far,
      absoluteExpiresAt: far,
      createdAt: 0,
      authenticatedAt: far,
      userId: 'mallory',
      version: 999,
      generation: 999,
      csrfSecret: 'attacker-chosen-csrf-secret-000000000000',
      v: 2,
      c: 0,
      a: far,
      u: 'mallory',
      t: far,
      k: 'attacker-chosen-csrf-secret-000000000000',
      n: far,
      s: 'f'.repeat(64),
      ua: 'evil',
      ip: '6.6.6.6',
      d: { userId: 'mallory' },
    }
    let { cookie } = await request(sessions, undefined, (s) => {
      for (const [key, value] of Object.entries(planted)) (s as unknown as Loose).set(key, value)
    })
    const key = sha256Hex(idOf(cookie!))
    let record = (await memory.get(key, clock.now()))!
    assert.equal(record.version, 1)
    assert.equal(record.expiresAt, T0 + sessions.idleTimeout)
    assert.equal(record.userId, undefined)
    const { session } = await request(sessions, cookie)
    assert.equal(session.userId, undefined)
    assert.equal(session.authenticatedAt, undefined)
    assert.equal(session.createdAt.getTime(), T0)
    assert.equal(session.absoluteExpiresAt.getTime(), T0 + sessions.absoluteTimeout)
    for (const [name, value] of Object.entries(planted))
      assert.deepEqual((session as unknown as Loose).get(name), value)
    const nonce = 'A'.repeat(22)
    const forged = `${nonce}.${createHmac('sha256', 'attacker-chosen-csrf-secret-000000000000').update(`csrf:${nonce}`).digest('base64url')}`
    assert.equal(session.verifyCsrfToken(forged), false)
    assert.deepEqual(await sessions.listSessions('mallory'), [])

    // A record whose user data claims another version: the conditional write goes by the store's version.
    clock.advance(1000)
    ;({ cookie } = await request(sessions, cookie, (s) => s.login('alice')))
    ;({ cookie } = await request(sessions, cookie, (s) => s.set('visits', 5)))
    record = (await memory.get(sha256Hex(idOf(cookie!)), clock.now()))!
    assert.equal(record.userId, 'alice')
    const last = updates.at(-1)!
    assert.equal(last.expectedVersion, 1)
    assert.equal(last.record.version, 2)
    assert.equal(record.version, 2)
    assert.equal((await request(sessions, cookie)).session.userId, 'alice')
    assert.equal(((await request(sessions, cookie)).session as unknown as Loose).get('u'), 'mallory')
  })
})
