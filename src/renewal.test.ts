// Checklist #30: the session ID is renewed while the session is in use, and requests already in flight with
// the old ID keep working for a short grace window without ever handing the old ID back.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { fakeClock, request, SECRET_A, spyStore } from '../test/support.js'
import { SessionConfigError } from './errors.js'
import type { SessionEvents } from './events.js'
import { sha256Hex } from './internal/crypto.js'
import { createSessionManager, type SessionManagerOptions } from './manager.js'
import { CookieStore } from './stores/cookie.js'
import { MemoryStore } from './stores/memory.js'

type Data = { visits?: number; a?: number; b?: number }

const MINUTE = 60_000

function setup(options: Partial<SessionManagerOptions> = {}) {
  const clock = fakeClock()
  const memory = new MemoryStore({ cleanupIntervalMs: 0 })
  const spy = spyStore(memory)
  const manager = createSessionManager<Data>({
    store: spy.store,
    secrets: [SECRET_A],
    clock: clock.now,
    onWarning: () => undefined,
    renewal: { after: 15 * MINUTE, grace: 30_000 },
    ...options,
  })
  const renewed: SessionEvents['renewed'][] = []
  manager.on('renewed', (event) => renewed.push(event))
  return { manager, memory, spy, clock, renewed }
}

const idOf = (cookie: string) => decodeURIComponent(cookie.slice(cookie.indexOf('=') + 1)).split('.')[0]!

describe('ID renewal while active (checklist #30)', () => {
  it('#30: keeps the ID until renewal.after, then the next response carries a new ID with the same data', async () => {
    const { manager, clock, renewed } = setup()
    const first = await request(manager, undefined, (s) => s.set('visits', 1))
    clock.advance(14 * MINUTE)
    const early = await request(manager, first.cookie, (s) => s.set('visits', 2))
    assert.equal(idOf(early.cookie!), idOf(first.cookie!), 'not renewed before renewal.after')
    clock.advance(1 * MINUTE)
    const due = await request(manager, early.cookie, (s) => s.get('visits'))
    assert.notEqual(idOf(due.cookie!), idOf(first.cookie!), 'a read-only request renews too once due')
    assert.equal(renewed.length, 1)
    assert.equal(renewed[0]?.session, sha256Hex(idOf(first.cookie!)).slice(0, 16))
    const after = await request(manager, due.cookie, (s) => s.get('visits'))
    assert.equal(after.session.get('visits'), 2)
    assert.equal(after.result.setCookie.length, 0, 'the renewed ID is not renewed again at once')
  })

  it('#30: counts the ID age from login, not from the anonymous session it replaced', async () => {
    const { manager, clock, renewed } = setup()
    const anonymous = await request(manager, undefined, (s) => s.set('visits', 1))
    clock.advance(14 * MINUTE)
    const loggedIn = await request(manager, anonymous.cookie, (s) => s.login('alice'))
    clock.advance(2 * MINUTE)
    await request(manager, loggedIn.cookie, (s) => s.get('visits'))
    assert.equal(renewed.length, 0, 'the login issued the ID 2 minutes ago')
  })

  it('#30: serves the old ID during the grace window, writes to the renewed session, and never re-sends the old ID', async () => {
    const { manager, clock } = setup()
    const first = await request(manager, undefined, (s) => s.set('visits', 1))
    clock.advance(15 * MINUTE)
    const renewing = await request(manager, first.cookie, (s) => s.get('visits'))
    clock.advance(10_000)
    const late = await request(manager, first.cookie, (s) => {
      assert.equal(s.get('visits'), 1)
      s.set('a', 1)
    })
    assert.deepEqual(late.result.setCookie, [], 'no Set-Cookie: the old ID must not overwrite the new one')
    const fresh = await request(manager, renewing.cookie, (s) => s.get('a'))
    assert.equal(fresh.session.get('a'), 1, 'the write through the old ID landed on the renewed session')
  })

  it('#30: a request that loaded before the renewal and saves after it lands its change on the renewed session', async () => {
    const { manager, clock } = setup()
    const first = await request(manager, undefined, (s) => s.set('visits', 1))
    clock.advance(15 * MINUTE)
    const inFlight = await manager.load({ cookie: first.cookie, host: 'localhost' })
    const renewing = await request(manager, first.cookie, (s) => s.set('a', 1))
    inFlight.set('b', 2)
    const result = await manager.commit(inFlight)
    assert.deepEqual(result.setCookie, [], 'the in-flight response leaves the renewed cookie alone')
    const check = await request(manager, renewing.cookie, (s) => s.get('a'))
    assert.equal(check.session.get('a'), 1)
    assert.equal(check.session.get('b'), 2, 'no lost update across the renewal')
  })

  it('#30: the old ID stops working when the grace window closes', async () => {
    const { manager, clock } = setup()
    const first = await request(manager, undefined, (s) => s.set('visits', 1))
    clock.advance(15 * MINUTE)
    const renewing = await request(manager, first.cookie, (s) => s.get('visits'))
    clock.advance(30_000)
    const stale = await request(manager, first.cookie, (s) => s.get('visits'))
    assert.equal(stale.session.isNew, true)
    assert.equal(stale.session.get('visits'), undefined)
    const current = await request(manager, renewing.cookie, (s) => s.get('visits'))
    assert.equal(current.session.get('visits'), 1)
  })

  it('#30: a late touch cannot stretch the old ID past the grace window', async () => {
    const { manager, clock, memory } = setup()
    const first = await request(manager, undefined, (s) => s.set('visits', 1))
    clock.advance(15 * MINUTE)
    await request(manager, first.cookie, (s) => s.get('visits'))
    const oldKey = sha256Hex(idOf(first.cookie!))
    await memory.touch(oldKey, clock.now() + 30 * MINUTE, clock.now()) // as an in-flight request's touch would
    clock.advance(31_000)
    const stale = await request(manager, first.cookie, (s) => s.get('visits'))
    assert.equal(stale.session.isNew, true)
  })

  it('#30: logging out through the old ID during the grace window ends the session under both IDs', async () => {
    const { manager, clock } = setup()
    const first = await request(manager, undefined, (s) => s.login('alice'))
    clock.advance(15 * MINUTE)
    const renewing = await request(manager, first.cookie, (s) => s.get('visits'))
    await request(manager, first.cookie, (s) => s.destroy())
    assert.equal((await request(manager, renewing.cookie)).session.isNew, true)
    assert.equal((await request(manager, first.cookie)).session.isNew, true)
  })

  it('#30: lists the renewed session once, and revoking the user ends the old ID too', async () => {
    const { manager, clock } = setup()
    const first = await request(manager, undefined, (s) => s.login('alice'))
    clock.advance(15 * MINUTE)
    const renewing = await request(manager, first.cookie, (s) => s.get('visits'))
    const listed = await manager.listSessions('alice')
    assert.deepEqual(
      listed.map((session) => session.handle),
      [sha256Hex(idOf(renewing.cookie!))],
    )
    await manager.revokeSessions('alice')
    assert.equal((await request(manager, first.cookie)).session.isNew, true)
    assert.equal((await request(manager, renewing.cookie)).session.isNew, true)
  })

  it('#30: keeps CSRF tokens issued before the renewal valid (the renewal is not a privilege change)', async () => {
    const { manager, clock } = setup()
    let token = ''
    const first = await request(manager, undefined, (s) => {
      token = s.csrfToken()
    })
    clock.advance(15 * MINUTE)
    const renewing = await request(manager, first.cookie, (s) => s.get('visits'))
    assert.notEqual(idOf(renewing.cookie!), idOf(first.cookie!))
    const check = await request(manager, renewing.cookie, (s) => assert.equal(s.verifyCsrfToken(token), true))
    assert.equal(check.session.isNew, false)
  })

  it('#30: gives header clients the renewed token in the response', async () => {
    const { manager, clock } = setup({ transport: { type: 'header' } })
    const session = await manager.load({ cookie: undefined, header: () => undefined })
    session.set('visits', 1)
    const { token } = await manager.commit(session)
    clock.advance(15 * MINUTE)
    const again = await manager.load({ cookie: undefined, header: () => `Bearer ${token}` })
    const result = await manager.commit(again)
    assert.ok(result.token !== undefined && result.token !== token)
    const renewed = await manager.load({ cookie: undefined, header: () => `Bearer ${result.token}` })
    assert.equal(renewed.get('visits'), 1)
  })

  it('#30: renews nothing when another request wrote the session in between, and renews on a later request', async () => {
    const { manager, clock, memory } = setup()
    const first = await request(manager, undefined, (s) => s.set('visits', 1))
    clock.advance(15 * MINUTE)
    const racing = await manager.load({ cookie: first.cookie, host: 'localhost' })
    // Another request saves between this request's save and its renewal: simulated by bumping the version.
    const key = sha256Hex(idOf(first.cookie!))
    const original = memory.update.bind(memory)
    let bumped = false
    memory.update = async (k, record, expected, now) => {
      const ok = await original(k, record, expected, now)
      if (!bumped && k === key) {
        bumped = true
        const live = await memory.get(key, now)
        await original(key, { ...live!, version: live!.version + 1 }, live!.version, now)
      }
      return ok
    }
    racing.set('a', 1)
    const result = await manager.commit(racing)
    memory.update = original
    assert.ok(
      result.setCookie.every((header) => !header.startsWith(`${manager.cookieName}=`)) ||
        idOf(result.setCookie[0]!) === idOf(first.cookie!),
      'no new ID was handed out for a renewal that did not happen',
    )
    assert.equal(memory.size, 1, 'the record made for the new ID was removed again')
    const later = await request(manager, first.cookie, (s) => s.get('a'))
    assert.equal(later.session.get('a'), 1)
    assert.notEqual(idOf(later.cookie!), idOf(first.cookie!), 'renewed on the next request')
  })

  it('#30: refuses renewal with a stateless store, and a grace window as long as renewal.after', () => {
    assert.throws(
      () =>
        createSessionManager({ store: new CookieStore(), secrets: [SECRET_A], renewal: { after: MINUTE } }),
      SessionConfigError,
    )
    assert.throws(
      () =>
        createSessionManager({
          store: new MemoryStore({ cleanupIntervalMs: 0 }),
          secrets: [SECRET_A],
          renewal: { after: MINUTE, grace: MINUTE },
        }),
      SessionConfigError,
    )
  })
})
