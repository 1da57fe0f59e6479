import assert from 'node:assert/strict'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Readable } from 'node:stream'
import { describe, it } from 'node:test'
import Koa from 'koa'
import { SECRET_A } from '../../test/support.js'
import { StoreError } from '../errors.js'
import { createSessionManager, type SessionManager } from '../manager.js'
import type { Session } from '../session.js'
import type { Store } from '../store.js'
import { MemoryStore } from '../stores/memory.js'
import { findRoute, runAdapterContract } from '../testing/adapter-contract.js'
import { koaSession } from './koa.js'

async function listen(app: Koa): Promise<{ origin: string; close(): Promise<void> }> {
  const server: Server = app.listen(0, '127.0.0.1')
  await new Promise((resolve) => server.once('listening', resolve))
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

function contractApp(manager: SessionManager): Koa {
  const app = new Koa()
  app.silent = true // Koa logs 5xx errors otherwise; the contract provokes them on purpose
  app.use(koaSession(manager))
  app.use(async (ctx) => {
    const route = findRoute(ctx.method, ctx.url)
    if (route === undefined) return
    const reply = await route.handle(ctx.session)
    if (reply.kind === 'redirect') {
      ctx.redirect(reply.location)
      ctx.status = 303
    } else if (reply.kind === 'text') {
      ctx.set(reply.headers)
      ctx.body = reply.body
    } else {
      ctx.type = 'text/plain; charset=utf-8'
      ctx.body = Readable.from(reply.chunks)
    }
  })
  return app
}

runAdapterContract({ name: 'Koa 3', start: async (manager) => listen(contractApp(manager)) })

const failing = (methods: readonly string[]): Store =>
  new Proxy(new MemoryStore({ cleanupIntervalMs: 0 }), {
    get: (target, property) => {
      const value: unknown = Reflect.get(target, property)
      if (typeof property === 'string' && methods.includes(property))
        return async () => Promise.reject(new Error('ECONNREFUSED'))
      return typeof value === 'function' ? value.bind(target) : value
    },
  })

const manager = (store: Store = new MemoryStore({ cleanupIntervalMs: 0 })) =>
  createSessionManager({ store, secrets: [SECRET_A], cookie: { secure: 'auto' } })

describe('Koa middleware', () => {
  it('types ctx.session as a tessera Session', async () => {
    const app = new Koa()
    app.use(koaSession(manager()))
    app.use((ctx) => {
      const typed: Session<Record<string, unknown>> = ctx.session
      // @ts-expect-error a tessera session has no such method: the property is typed, not any
      typed.nonexistent?.()
      ctx.body = 'ok'
    })
    const { origin, close } = await listen(app)
    assert.equal(await (await fetch(origin)).text(), 'ok')
    await close()
  })

  it('lets an upstream error middleware catch a store failure as a StoreError (503)', async () => {
    const app = new Koa()
    const seen: unknown[] = []
    app.use(async (ctx, next) => {
      try {
        await next()
      } catch (error) {
        seen.push(error)
        ctx.status = (error as { status?: number }).status ?? 500
        ctx.body = 'handled by the app'
      }
    })
    app.use(koaSession(manager(failing(['create']))))
    app.use((ctx) => {
      ctx.session.set('visits', 1)
      ctx.body = 'saved'
    })
    const { origin, close } = await listen(app)
    const response = await fetch(origin)
    assert.equal(response.status, 503)
    assert.equal(await response.text(), 'handled by the app')
    assert.deepEqual(response.headers.getSetCookie(), [])
    assert.ok(seen[0] instanceof StoreError)
    await close()
  })

  it('drops the changes of a middleware that throws, and answers through Koa (500)', async () => {
    const store = new MemoryStore({ cleanupIntervalMs: 0 })
    const app = new Koa()
    app.silent = true
    app.use(koaSession(manager(store)))
    app.use((ctx) => {
      ctx.session.set('visits', 1)
      throw new Error('boom')
    })
    const { origin, close } = await listen(app)
    const response = await fetch(origin)
    assert.equal(response.status, 500)
    assert.deepEqual(response.headers.getSetCookie(), [])
    assert.equal(store.size, 0)
    await close()
  })

  it("keeps the app's own Set-Cookie headers and adds the session's", async () => {
    const app = new Koa()
    app.use(koaSession(manager()))
    app.use((ctx) => {
      ctx.session.set('visits', 1)
      ctx.cookies.set('theme', 'dark')
      ctx.body = 'ok'
    })
    const { origin, close } = await listen(app)
    const cookies = (await fetch(origin)).headers.getSetCookie()
    assert.deepEqual(cookies.map((cookie) => cookie.split('=')[0]).sort(), ['sid', 'theme'])
    await close()
  })

  it('fails loudly, instead of losing the cookie, when the app wrote the response itself', async () => {
    const app = new Koa()
    const errors: unknown[] = []
    app.on('error', (error) => errors.push(error))
    app.use(koaSession(manager()))
    app.use((ctx) => {
      ctx.session.set('visits', 1)
      ctx.respond = false
      ctx.res.end('raw')
    })
    const { origin, close } = await listen(app)
    assert.equal(await (await fetch(origin)).text(), 'raw')
    assert.equal((errors[0] as { code?: string }).code, 'ERR_SESSION_COMMITTED')
    await close()
  })
})
