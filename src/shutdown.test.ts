// Graceful shutdown (manager.close) and the fail-open read policy: what happens at the edges of a store's life.
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import { describe, it } from 'node:test'
import { request, SECRET_A } from '../test/support.js'
import { withSession } from './adapters/node.js'
import { SessionClosedError, StoreError } from './errors.js'
import { createSessionManager, type SessionManagerOptions } from './manager.js'
import type { Store } from './store.js'
import { MemoryStore } from './stores/memory.js'

type Data = { n?: number }

function setup(options: Partial<SessionManagerOptions> = {}) {
  const store = new MemoryStore({ cleanupIntervalMs: 0 })
  let closed = 0
  const close = store.close.bind(store)
  store.close = async () => {
    closed++
    await close()
  }
  const manager = createSessionManager<Data>({
    store,
    secrets: [SECRET_A],
    onWarning: () => undefined,
    ...options,
  })
  return { manager, store, closes: () => closed }
}

// A store whose every call fails, as a Redis that went away would.
function down(store: Store): void {
  const refused = () => Promise.reject(new Error('ECONNREFUSED'))
  Object.assign(store, { get: refused, create: refused, update: refused, touch: refused, destroy: refused })
}

describe('manager.close()', () => {
  it('waits for a session loaded before the close to be committed, and that save lands', async () => {
    const { manager, store, closes } = setup()
    const { cookie } = await request(manager, undefined, (s) => s.set('n', 1))
    const inFlight = await manager.load({ cookie, host: 'localhost' })
    let closedAt = 0
    const closing = manager.close().then(() => (closedAt = performance.now()))
    await new Promise((resolve) => setTimeout(resolve, 50))
    assert.equal(closes(), 0, 'the store stays open while a session is in flight')
    inFlight.set('n', 2)
    const committedAt = performance.now()
    await manager.commit(inFlight)
    await closing
    assert.ok(closedAt >= committedAt)
    assert.equal(closes(), 1)
    assert.equal(store.size, 1)
  })

  it('refuses new loads with SessionClosedError (503) once closing', async () => {
    const { manager } = setup()
    await manager.close()
    const error = await manager.load({ cookie: undefined }).catch((e: unknown) => e)
    assert.ok(error instanceof SessionClosedError)
    assert.deepEqual([error.code, error.status], ['ERR_SESSION_CLOSED', 503])
  })

  it('gives up waiting after the timeout when a handler never commits its session', async () => {
    const { manager, closes } = setup()
    await manager.load({ cookie: undefined }) // never committed
    const started = performance.now()
    await manager.close({ timeout: 100 })
    const waited = performance.now() - started
    assert.ok(waited >= 90 && waited < 2_000, `waited ${waited} ms`)
    assert.equal(closes(), 1)
  })

  it('keeps the store open with closeStore: false, and is idempotent', async () => {
    const { manager, closes } = setup()
    const first = manager.close({ closeStore: false })
    assert.equal(manager.close(), first)
    await first
    assert.equal(closes(), 0)
  })

  it('counts a failed load as finished, so close() does not wait for it', async () => {
    const { manager, store } = setup()
    down(store)
    const { cookie } = await request(
      createSessionManager({ store: new MemoryStore(), secrets: [SECRET_A] }),
      undefined,
      (s) => s.set('n', 1),
    )
    await assert.rejects(manager.load({ cookie }), StoreError)
    const started = performance.now()
    await manager.close({ timeout: 5_000 })
    assert.ok(performance.now() - started < 1_000)
  })

  it('lets an HTTP server drain: a request in flight at SIGTERM still saves and gets its cookie', async () => {
    const { manager, store } = setup({ cookie: { secure: false } })
    let release: () => void = () => undefined
    const gate = new Promise<void>((resolve) => {
      release = resolve
    })
    const server = createServer(
      withSession(manager, async (_req, res, session) => {
        session.set('n', 1)
        await gate
        res.end('saved')
      }),
    )
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const { port } = server.address() as { port: number }
    const response = fetch(`http://127.0.0.1:${port}/`)
    await new Promise((resolve) => setTimeout(resolve, 100))
    server.close()
    const closing = manager.close()
    release()
    const answer = await response
    await closing
    assert.equal(await answer.text(), 'saved')
    assert.match(answer.headers.get('set-cookie') ?? '', /^sid=/)
    assert.equal(store.size, 1)
  })
})

describe('failOpen', () => {
  async function outage(options: Partial<SessionManagerOptions>) {
    const { manager, store } = setup(options)
    const { cookie } = await request(manager, undefined, (s) => s.login('alice'))
    down(store)
    return { manager, cookie }
  }

  it('is off by default: a store failure at load is a StoreError, never a fresh session', async () => {
    const { manager, cookie } = await outage({})
    await assert.rejects(manager.load({ cookie }), StoreError)
  })

  it('serves a read-only degraded session that leaves the cookie alone', async () => {
    const { manager, cookie } = await outage({ failOpen: true })
    const { session, result } = await request(manager, cookie, (s) => s.get('n'))
    assert.equal(session.degraded, true)
    assert.equal(session.userId, undefined)
    assert.deepEqual(result.setCookie, [], 'no Set-Cookie: the real session survives the outage')
    assert.equal(result.cacheControl, 'no-store')
  })

  it('fails a degraded request that writes, logs in or logs out, with the StoreError, rather than drop it', async () => {
    const { manager, cookie } = await outage({ failOpen: true })
    for (const change of [
      (s: { set(k: 'n', v: number): void }) => s.set('n', 1),
      (s: { login(u: string): Promise<void> }) => s.login('bob'),
      (s: { destroy(): Promise<void> }) => s.destroy(),
    ]) {
      const session = await manager.load({ cookie, host: 'localhost' })
      await change(session as never)
      await assert.rejects(manager.commit(session), StoreError)
    }
  })

  it('decides per request with a function: public pages fail open, the rest fail closed', async () => {
    const { manager, cookie } = await outage({
      failOpen: (request) => request.url?.startsWith('/public/') === true,
    })
    const degraded = await manager.load({ cookie, url: '/public/home' })
    assert.equal(degraded.degraded, true)
    await assert.rejects(manager.load({ cookie, url: '/account' }), StoreError)
  })

  it('serves a degraded page through the node:http adapter with a 200 and no cookie', async () => {
    const { manager, cookie } = await outage({ failOpen: true, cookie: { secure: false, name: 'sid' } })
    const server = createServer(
      withSession(manager, (_req, res, session) => {
        res.end(session.degraded ? 'sessions unavailable' : `hello ${session.userId}`)
      }),
    )
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const { port } = server.address() as { port: number }
    try {
      const answer = await fetch(`http://127.0.0.1:${port}/`, { headers: { cookie: cookie! } })
      assert.equal(answer.status, 200)
      assert.equal(await answer.text(), 'sessions unavailable')
      assert.equal(answer.headers.get('set-cookie'), null)
    } finally {
      server.close()
    }
  })
})
