import assert from 'node:assert/strict'
import { Readable } from 'node:stream'
import { describe, it } from 'node:test'
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify'
import { SECRET_A } from '../../test/support.js'
import { StoreError } from '../errors.js'
import { createSessionManager, type SessionManager } from '../manager.js'
import type { Session } from '../session.js'
import type { Store } from '../store.js'
import { MemoryStore } from '../stores/memory.js'
import { type ContractReply, contractRoutes, runAdapterContract } from '../testing/adapter-contract.js'
import { tesseraSession } from './fastify.js'

function send(reply: FastifyReply, answer: ContractReply): FastifyReply {
  if (answer.kind === 'redirect') return reply.redirect(answer.location, 303)
  if (answer.kind === 'text') return reply.headers(answer.headers).send(answer.body)
  return reply.type('text/plain; charset=utf-8').send(Readable.from(answer.chunks))
}

async function contractApp(manager: SessionManager): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(tesseraSession, { manager })
  for (const route of contractRoutes) {
    app.route({
      method: route.method,
      url: route.path,
      handler: async (request, reply) => send(reply, await route.handle(request.session)),
    })
  }
  return app
}

/** `fastify.inject` behind a `fetch`-shaped function, so the contract can drive it without a socket. */
function injectFetch(app: FastifyInstance): (request: Request) => Promise<Response> {
  return async (request) => {
    const url = new URL(request.url)
    const injected = await app.inject({
      method: request.method as 'GET' | 'POST',
      url: url.pathname + url.search,
      headers: Object.fromEntries(request.headers),
    })
    const headers = new Headers()
    for (const [name, value] of Object.entries(injected.headers)) {
      for (const one of [value ?? []].flat()) headers.append(name, String(one))
    }
    const empty = [204, 304].includes(injected.statusCode)
    return new Response(empty ? null : injected.rawPayload, { status: injected.statusCode, headers })
  }
}

runAdapterContract({
  name: 'Fastify 5 over a socket',
  start: async (manager) => {
    const app = await contractApp(manager)
    const origin = await app.listen({ port: 0, host: '127.0.0.1' })
    return { origin, close: () => app.close() }
  },
})

runAdapterContract({
  name: 'Fastify 5 with inject()',
  start: async (manager) => {
    const app = await contractApp(manager)
    await app.ready()
    return { fetch: injectFetch(app), close: () => app.close() }
  },
})

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

describe('Fastify plugin', () => {
  it('types request.session as a tessera Session', async () => {
    const app = Fastify()
    await app.register(tesseraSession, { manager: manager() })
    app.get('/', async (request) => {
      const typed: Session<Record<string, unknown>> = request.session
      // @ts-expect-error a tessera session has no such method: the property is typed, not any
      typed.nonexistent?.()
      return 'ok'
    })
    assert.equal((await app.inject('/')).body, 'ok')
    await app.close()
  })

  it("passes a store failure to the app's own error handler as a StoreError (503)", async () => {
    const app = Fastify()
    await app.register(tesseraSession, { manager: manager(failing(['create'])) })
    const seen: unknown[] = []
    app.setErrorHandler((error, _request, reply) => {
      seen.push(error)
      return reply.code((error as { status?: number }).status ?? 500).send('handled by the app')
    })
    app.get('/', async (request) => {
      request.session.set('visits', 1)
      return 'saved'
    })
    const response = await app.inject('/')
    assert.equal(response.statusCode, 503)
    assert.equal(response.body, 'handled by the app')
    assert.equal(response.headers['set-cookie'], undefined)
    assert.ok(seen[0] instanceof StoreError)
    await app.close()
  })

  it("answers 503, not the route's 303, when the save after a login redirect fails", async () => {
    const app = Fastify()
    await app.register(tesseraSession, { manager: manager(failing(['create'])) })
    app.post('/login', async (request, reply) => {
      await request.session.login('alice')
      return reply.redirect('/home', 303)
    })
    const response = await app.inject({ method: 'POST', url: '/login' })
    assert.equal(response.statusCode, 503)
    assert.equal(response.headers['set-cookie'], undefined)
    await app.close()
  })

  it('drops the changes of a handler that throws, and the error page carries no session headers', async () => {
    const store = new MemoryStore({ cleanupIntervalMs: 0 })
    const app = Fastify()
    await app.register(tesseraSession, { manager: manager(store) })
    app.get('/', async (request) => {
      request.session.set('visits', 1)
      throw new Error('boom')
    })
    const response = await app.inject('/')
    assert.equal(response.statusCode, 500)
    assert.equal(response.headers['set-cookie'], undefined)
    assert.equal(response.headers['cache-control'], undefined)
    assert.equal(store.size, 0)
    await app.close()
  })

  it("keeps the app's own Set-Cookie headers and adds the session's", async () => {
    const app = Fastify()
    await app.register(tesseraSession, { manager: manager() })
    app.get('/', async (request, reply) => {
      request.session.set('visits', 1)
      reply.header('set-cookie', 'theme=dark; Path=/')
      return 'ok'
    })
    const cookies = [(await app.inject('/')).headers['set-cookie'] ?? []].flat()
    assert.deepEqual(cookies.map((cookie) => cookie.split('=')[0]).sort(), ['sid', 'theme'])
    await app.close()
  })

  it('refuses to be registered twice on one instance', async () => {
    const app = Fastify()
    await app.register(tesseraSession, { manager: manager() })
    await assert.rejects(async () => {
      await app.register(tesseraSession, { manager: manager() })
    }, /session/)
    await app.close()
  })
})
