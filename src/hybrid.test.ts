import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { fakeClock, SECRET_A, spyStore } from '../test/support.js'
import { SessionConfigError } from './errors.js'
import { createSessionManager, type SessionManagerOptions } from './manager.js'
import { CookieStore } from './stores/cookie.js'
import { MemoryStore } from './stores/memory.js'

type Data = { visits?: number }

function setup(options: Partial<SessionManagerOptions> = {}) {
  const clock = fakeClock()
  const spy = spyStore(new MemoryStore({ cleanupIntervalMs: 0 }))
  const manager = createSessionManager<Data>({
    store: spy.store,
    secrets: [SECRET_A],
    clock: clock.now,
    hybrid: {},
    ...options,
  })
  const jar = new Map<string, string>()
  const visit = async (
    handle: (s: Awaited<ReturnType<typeof manager.load>>) => unknown = () => undefined,
  ) => {
    const cookie = jar.size === 0 ? undefined : [...jar].map(([k, v]) => `${k}=${v}`).join('; ')
    const session = await manager.load({ cookie, host: 'localhost' })
    await handle(session)
    const result = await manager.commit(session)
    for (const header of result.setCookie) {
      const pair = header.slice(0, header.indexOf(';'))
      const name = pair.slice(0, pair.indexOf('='))
      if (/Max-Age=0/.test(header)) jar.delete(name)
      else jar.set(name, pair.slice(name.length + 1))
    }
    return session
  }
  return { manager, spy, clock, jar, visit }
}

describe('hybrid mode: a sealed copy of the session in a second cookie', () => {
  it('serves reads from the copy and goes back to the store once per revalidation interval', async () => {
    const { spy, clock, jar, visit } = setup({ hybrid: { revalidateAfter: 60_000 } })
    await visit((s) => s.set('visits', 1))
    assert.ok(jar.has('__Host-sid-cache'))
    spy.reset()
    for (let i = 0; i < 100; i++) {
      clock.advance(1000)
      assert.equal((await visit((s) => s.get('visits'))).get('visits'), 1)
    }
    assert.equal(
      spy.count('get'),
      1,
      '100 reads over 100 s: one store read, when the first copy aged out at 60 s',
    )
  })

  it('writes still go to the store, and the copy follows them', async () => {
    const { manager, spy, visit } = setup()
    await visit((s) => s.set('visits', 1))
    await visit((s) => s.set('visits', (s.get('visits') ?? 0) + 1))
    await visit((s) => s.set('visits', (s.get('visits') ?? 0) + 1))
    assert.equal(spy.count('update'), 2)
    const fresh = await manager.load({ cookie: undefined })
    assert.equal(fresh.isNew, true)
    assert.equal((await visit()).get('visits'), 3)
  })

  it('stops honouring a session destroyed elsewhere within the revalidation interval', async () => {
    const { manager, clock, jar, visit } = setup({ hybrid: { revalidateAfter: 30_000 } })
    await visit((s) => s.login('alice'))
    await manager.revokeSessions('alice')
    assert.equal((await visit()).userId, 'alice', 'the copy still answers until it is due for revalidation')
    clock.advance(30_000)
    assert.equal((await visit()).isNew, true)
    assert.equal(jar.has('__Host-sid-cache'), false, 'the stale copy is cleared')
  })

  it('ignores a copy made for another session ID, and clears the copy on destroy()', async () => {
    const { jar, visit } = setup()
    await visit((s) => s.set('visits', 1))
    const copy = jar.get('__Host-sid-cache')!
    const other = setup()
    await other.visit((s) => s.set('visits', 99))
    other.jar.set('__Host-sid-cache', copy)
    assert.equal((await other.visit()).get('visits'), 99)
    await visit((s) => s.destroy())
    assert.equal(jar.size, 0)
  })

  it('needs a server-side store and the cookie transport', () => {
    assert.throws(() => setup({ store: new CookieStore() }), SessionConfigError)
    assert.throws(() => setup({ transport: { type: 'header' } }), SessionConfigError)
  })
})
