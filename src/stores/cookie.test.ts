import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { fakeClock, SECRET_A, SECRET_B } from '../../test/support.js'
import { SessionConfigError, SessionTooLargeError } from '../errors.js'
import { createSessionManager, type SessionManagerOptions } from '../manager.js'
import { Sealer } from '../sealer.js'
import { CookieStore, type CookieStoreOptions } from './cookie.js'

type Data = { userId?: string; note?: string; blob?: string }

function setup(store: CookieStoreOptions = {}, options: Partial<SessionManagerOptions> = {}) {
  const clock = fakeClock()
  const manager = createSessionManager<Data>({
    store: new CookieStore(store),
    secrets: [SECRET_A],
    clock: clock.now,
    ...options,
  })
  return { manager, clock }
}

/** A browser's cookie jar for one origin, enough for chunked cookies: Set-Cookie in, Cookie header out. */
class Jar {
  readonly cookies = new Map<string, string>()
  take(setCookie: readonly string[]): void {
    for (const header of setCookie) {
      const [pair] = header.split(';')
      const name = pair!.slice(0, pair!.indexOf('='))
      if (/;\s*Max-Age=0/.test(header)) this.cookies.delete(name)
      else this.cookies.set(name, pair!.slice(name.length + 1))
    }
  }
  get header(): string | undefined {
    return this.cookies.size === 0 ? undefined : [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ')
  }
}

async function visit(
  manager: ReturnType<typeof setup>['manager'],
  jar: Jar,
  handle: (s: Awaited<ReturnType<typeof manager.load>>) => unknown = () => undefined,
) {
  const session = await manager.load({ cookie: jar.header, host: 'localhost' })
  await handle(session)
  const result = await manager.commit(session)
  jar.take(result.setCookie)
  return { session, result }
}

describe('CookieStore: stateless sessions sealed in the cookie', () => {
  it('round-trips the data through the cookie alone, unreadable by the client', async () => {
    const { manager } = setup()
    const jar = new Jar()
    await visit(manager, jar, (s) => s.set('note', 'the secret plan'))
    const value = jar.cookies.get('__Host-sid')!
    assert.match(value, /^t2\.[0-9a-z]+\.[A-Za-z0-9_-]+$/)
    assert.ok(!Buffer.from(value.split('.')[2]!, 'base64url').toString('latin1').includes('secret plan'))
    const { session } = await visit(manager, jar)
    assert.equal(session.get('note'), 'the secret plan')
  })

  it('seals the same data differently every time', async () => {
    const sealer = new Sealer([SECRET_A], 'sid')
    assert.notEqual(await sealer.seal('{"a":1}'), await sealer.seal('{"a":1}'))
  })

  it('remembers a value it opened, yet refuses it once its hour is older than a session may live', async () => {
    const clock = fakeClock()
    const sealer = new Sealer([SECRET_A], 'sid', false, clock.now)
    const value = await sealer.seal('{"a":1}')
    const opened = await sealer.open(value)
    assert.equal(opened?.plaintext, '{"a":1}')
    assert.equal(
      await sealer.open(value),
      opened,
      'the same value again: the result remembered, not decrypted',
    )
    clock.advance(401 * 24 * 3_600_000)
    assert.equal(await sealer.open(value), undefined)
  })

  it("gives a fresh session for every single flipped byte, a truncation, a foreign or another cookie's value", async () => {
    const { manager } = setup()
    const jar = new Jar()
    await visit(manager, jar, (s) => s.set('userId', 'alice'))
    const value = jar.cookies.get('__Host-sid')!
    // Opened once first, so the sealer remembers it: what follows must not pass for it.
    assert.equal((await manager.load({ cookie: `__Host-sid=${value}` })).get('userId'), 'alice')
    const flips: string[] = []
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
    for (let i = 0; i < value.length; i++) {
      const replacement = alphabet[(alphabet.indexOf(value[i]!) + 1) % alphabet.length] ?? 'A'
      flips.push(`${value.slice(0, i)}${replacement}${value.slice(i + 1)}`)
    }
    const foreign = createSessionManager<Data>({ store: new CookieStore(), secrets: [SECRET_B] })
    const foreignJar = new Jar()
    await visit(foreign as typeof manager, foreignJar, (s) => s.set('userId', 'mallory'))
    const otherName = await new Sealer([SECRET_A], 'flash').seal(`${Date.now() + 1e6}.{}`)
    for (const variant of [
      ...flips,
      value.slice(0, -1),
      value.slice(0, 20),
      `t1${value.slice(2)}`,
      `t3${value.slice(2)}`,
      foreignJar.cookies.get('__Host-sid')!,
      otherName,
      '',
    ]) {
      const session = await manager.load({ cookie: `__Host-sid=${variant}` })
      assert.equal(session.isNew, true, `variant ${variant.slice(0, 12)}…`)
    }
  })

  it('re-seals a cookie sealed with an older secret under the newest one', async () => {
    const { manager, clock } = setup()
    const jar = new Jar()
    await visit(manager, jar, (s) => s.set('userId', 'alice'))
    const rotated = createSessionManager<Data>({
      store: new CookieStore(),
      secrets: [SECRET_B, SECRET_A],
      clock: clock.now,
    })
    const { session, result } = await visit(rotated, jar)
    assert.equal(session.get('userId'), 'alice')
    assert.equal(result.setCookie.length, 1)
    const newestOnly = createSessionManager<Data>({
      store: new CookieStore(),
      secrets: [SECRET_B],
      clock: clock.now,
    })
    assert.equal((await visit(newestOnly, jar)).session.get('userId'), 'alice')
  })

  it('refuses a replayed cookie after its sealed idle or absolute deadline, whatever the browser kept', async () => {
    const { manager, clock } = setup({}, { idleTimeout: 30 * 60_000, absoluteTimeout: 60 * 60_000 })
    const jar = new Jar()
    await visit(manager, jar, (s) => s.set('userId', 'alice'))
    const copy = jar.header
    clock.advance(31 * 60_000)
    assert.equal((await manager.load({ cookie: copy })).isNew, true, 'idle deadline')
    const active = new Jar()
    await visit(manager, active, (s) => s.set('userId', 'bob'))
    for (let i = 0; i < 6; i++) {
      clock.advance(10 * 60_000)
      await visit(manager, active, (s) => s.get('userId'))
    }
    assert.equal((await visit(manager, active)).session.isNew, true, 'absolute deadline, despite activity')
  })

  it('refuses a session sealed in the future beyond the clock skew', async () => {
    const ahead = fakeClock(Date.now() + 10 * 60_000)
    const future = createSessionManager<Data>({
      store: new CookieStore(),
      secrets: [SECRET_A],
      clock: ahead.now,
    })
    const jar = new Jar()
    await visit(future as never, jar, (s: { set(k: string, v: string): void }) => s.set('userId', 'alice'))
    const now = createSessionManager<Data>({ store: new CookieStore(), secrets: [SECRET_A] })
    assert.equal((await now.load({ cookie: jar.header })).isNew, true)
  })

  it('splits a large session over name.0, name.1… and back into one cookie as it shrinks, clearing stale chunks', async () => {
    const { manager } = setup()
    const jar = new Jar()
    // 9,000 characters seal to about 12 KB of base64url: four chunks of at most 3,800.
    await visit(manager, jar, (s) => s.set('blob', 'x'.repeat(9000)))
    assert.deepEqual([...jar.cookies.keys()].sort(), [
      '__Host-sid.0',
      '__Host-sid.1',
      '__Host-sid.2',
      '__Host-sid.3',
    ])
    for (const [name, value] of jar.cookies)
      assert.ok(name.length + value.length < 4000, 'each chunk fits a cookie')
    assert.equal((await visit(manager, jar)).session.get('blob'), 'x'.repeat(9000))
    await visit(manager, jar, (s) => s.set('blob', 'x'.repeat(4000)))
    assert.deepEqual(
      [...jar.cookies.keys()].sort(),
      ['__Host-sid.0', '__Host-sid.1'],
      'the stale chunks are cleared',
    )
    await visit(manager, jar, (s) => s.set('blob', 'small'))
    assert.deepEqual([...jar.cookies.keys()], ['__Host-sid'])
    assert.equal((await visit(manager, jar)).session.get('blob'), 'small')
  })

  it('fails a session past maxCookies with SessionTooLargeError and sends nothing, keeping the old cookie valid', async () => {
    const { manager } = setup({ maxCookies: 2 })
    const jar = new Jar()
    await visit(manager, jar, (s) => s.set('blob', 'small'))
    const session = await manager.load({ cookie: jar.header })
    session.set('blob', 'y'.repeat(20_000))
    await assert.rejects(manager.commit(session), SessionTooLargeError)
    assert.equal((await visit(manager, jar)).session.get('blob'), 'small')
  })

  it('destroy() clears every cookie of the session', async () => {
    const { manager } = setup()
    const jar = new Jar()
    await visit(manager, jar, (s) => s.set('blob', 'x'.repeat(5000)))
    await visit(manager, jar, (s) => s.destroy())
    assert.equal(jar.cookies.size, 0)
  })

  it('revokes a user through validAfter, and says plainly that it cannot list or end sessions server-side', async () => {
    let validAfter: number | undefined
    const { manager, clock } = setup({ validAfter: () => validAfter })
    const jar = new Jar()
    await visit(manager, jar, (s) => s.login('alice'))
    clock.advance(1000)
    validAfter = clock.now()
    assert.equal((await visit(manager, jar)).session.isNew, true)
    const later = new Jar()
    await visit(manager, later, (s) => s.login('alice'))
    assert.equal((await visit(manager, later)).session.userId, 'alice')
    await assert.rejects(manager.listSessions('alice'), SessionConfigError)
    await assert.rejects(manager.revokeSessions('alice'), SessionConfigError)
  })

  it('in signed-only mode, keeps the data readable but refuses any change', async () => {
    const { manager } = setup({ signedOnly: true })
    const jar = new Jar()
    await visit(manager, jar, (s) => s.set('note', 'visible'))
    const value = jar.cookies.get('__Host-sid')!
    const [, body] = value.split('.')
    assert.match(Buffer.from(body!, 'base64url').toString(), /visible/)
    const forged = Buffer.from(
      Buffer.from(body!, 'base64url').toString().replace('visible', 'changed!'),
    ).toString('base64url')
    assert.equal(
      (await manager.load({ cookie: `__Host-sid=s1.${forged}.${value.split('.')[2]}` })).isNew,
      true,
    )
    assert.equal((await visit(manager, jar)).session.get('note'), 'visible')
  })

  it('writes nothing for an untouched visitor and refreshes the cookie only once per touch interval', async () => {
    const { manager, clock } = setup()
    const jar = new Jar()
    assert.deepEqual((await visit(manager, jar, (s) => s.get('userId'))).result.setCookie, [])
    await visit(manager, jar, (s) => s.set('userId', 'alice'))
    clock.advance(10_000)
    assert.deepEqual((await visit(manager, jar)).result.setCookie, [])
    clock.advance(60_000)
    assert.equal((await visit(manager, jar)).result.setCookie.length, 1)
  })
})
