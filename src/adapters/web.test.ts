import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { describe, it } from 'node:test'
import { Hono } from 'hono'
import { SECRET_A } from '../../test/support.js'
import { StoreError } from '../errors.js'
import { createSessionManager } from '../manager.js'
import type { Store } from '../store.js'
import { MemoryStore } from '../stores/memory.js'
import { contractRoutes, findRoute, runAdapterContract, toWebResponse } from '../testing/adapter-contract.js'
import { commitSession, honoSession, loadSession, type SessionVariables, withSession } from './web.js'

runAdapterContract({
  name: 'Hono middleware (app.request)',
  start: async (manager) => {
    const app = new Hono<{ Variables: SessionVariables<Record<string, unknown>> }>()
    app.use(honoSession(manager))
    for (const route of contractRoutes) {
      app.on(route.method, route.path, async (c) => toWebResponse(await route.handle(c.get('session'))))
    }
    return { fetch: async (request) => app.request(request) }
  },
})

runAdapterContract({
  name: 'Web withSession (plain Request objects)',
  start: async (manager) => ({
    fetch: withSession(manager, async (request, session) => {
      const route = findRoute(request.method, new URL(request.url).pathname)
      return route === undefined
        ? new Response(null, { status: 404 })
        : toWebResponse(await route.handle(session))
    }),
  }),
})

type Data = { visits?: number }

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
  createSessionManager<Data>({ store, secrets: [SECRET_A], cookie: { secure: 'auto' } })

const cookieNames = (response: Response) =>
  response.headers
    .getSetCookie()
    .map((cookie) => cookie.split('=')[0])
    .sort()

describe('Web adapter: loadSession and commitSession on plain Request and Response objects', () => {
  it('issues a Secure __Host- cookie for an https request with the default cookie options', async () => {
    const sessions = createSessionManager<Data>({
      store: new MemoryStore({ cleanupIntervalMs: 0 }),
      secrets: [SECRET_A],
    })
    const request = new Request('https://shop.example/cart', { headers: { 'user-agent': 'test' } })
    const session = await loadSession(sessions, request)
    session.set('visits', 1)
    const response = await commitSession(sessions, session, new Response('ok'))
    const [cookie] = response.headers.getSetCookie()
    assert.match(cookie ?? '', /^__Host-sid=.*; Secure/)
    const again = await loadSession(
      sessions,
      new Request('https://shop.example/cart', { headers: { cookie: cookie!.split(';')[0]! } }),
    )
    assert.equal(again.get('visits'), 1)
  })

  it("keeps the response's status, its own Set-Cookie headers and Vary, even with immutable headers", async () => {
    const sessions = manager()
    const session = await loadSession(sessions, new Request('http://localhost/'))
    session.set('visits', 1)
    const redirect = Response.redirect('http://localhost/next', 303) // its headers are immutable
    const moved = await commitSession(sessions, session, redirect)
    assert.equal(moved.status, 303)
    assert.equal(moved.headers.get('location'), 'http://localhost/next')
    assert.deepEqual(cookieNames(moved), ['sid'])

    const other = await loadSession(sessions, new Request('http://localhost/'))
    other.set('visits', 2)
    const headers = new Headers({ vary: 'Accept-Encoding', 'content-type': 'text/html' })
    headers.append('set-cookie', 'a=1')
    headers.append('set-cookie', 'b=2')
    const page = await commitSession(sessions, other, new Response('<p>hi</p>', { status: 201, headers }))
    assert.equal(page.status, 201)
    assert.deepEqual(cookieNames(page), ['a', 'b', 'sid'])
    assert.equal(page.headers.get('vary'), 'Accept-Encoding, Cookie')
    assert.equal(page.headers.get('content-type'), 'text/html')
    assert.equal(await page.text(), '<p>hi</p>')
  })

  it('passes a ReadableStream body through chunk by chunk, never buffering it', async () => {
    const sessions = manager()
    const session = await loadSession(sessions, new Request('http://localhost/'))
    session.set('visits', 1)
    let push!: ReadableStreamDefaultController<Uint8Array>
    const body = new ReadableStream<Uint8Array>({
      start: (controller) => {
        push = controller
      },
    })
    const response = await commitSession(sessions, session, new Response(body))
    assert.deepEqual(cookieNames(response), ['sid'])
    const reader = response.body!.getReader()
    const decoder = new TextDecoder()
    push.enqueue(new TextEncoder().encode('first'))
    assert.equal(decoder.decode((await reader.read()).value), 'first') // arrives before the stream ends
    push.enqueue(new TextEncoder().encode('second'))
    assert.equal(decoder.decode((await reader.read()).value), 'second')
    push.close()
    assert.equal((await reader.read()).done, true)
  })

  it('withSession answers a store outage with 503 and rethrows any other error of the handler', async () => {
    const down = withSession(manager(failing(['create'])), (_request, session) => {
      session.set('visits', 1)
      return new Response('saved')
    })
    const response = await down(new Request('http://localhost/'))
    assert.equal(response.status, 503)
    assert.deepEqual(response.headers.getSetCookie(), [])

    const store = new MemoryStore({ cleanupIntervalMs: 0 })
    const broken = withSession(manager(store), (_request, session) => {
      session.set('visits', 1)
      throw new TypeError('a bug')
    })
    await assert.rejects(broken(new Request('http://localhost/')), TypeError)
    assert.equal(store.size, 0)
  })

  it("passes the runtime's extra arguments on (Next.js's { params }, Deno's info) and records the IP", async () => {
    const sessions = manager()
    type Info = { remoteAddr: { hostname: string } }
    const handler = withSession(
      sessions,
      async (_request, session, info: Info) => {
        await session.login('ada')
        return new Response(info.remoteAddr.hostname)
      },
      { ip: (_request, info) => info.remoteAddr.hostname },
    )
    const response = await handler(new Request('http://localhost/'), {
      remoteAddr: { hostname: '203.0.113.7' },
    })
    assert.equal(await response.text(), '203.0.113.7')
    const [device] = await sessions.listSessions('ada')
    assert.equal(device?.ip, '203.0.113.7')
  })

  it('uses only Web APIs: no node: import in the module', () => {
    const source = readFileSync(new URL('./web.ts', import.meta.url), 'utf8')
    assert.doesNotMatch(source, /from ['"]node:/)
    assert.doesNotMatch(source, /\b(Buffer|process|require)\b[.(]/)
  })
})

describe('Hono middleware', () => {
  it("passes a store failure to app.onError as a StoreError, and keeps the handler's headers off the error page", async () => {
    const app = new Hono<{ Variables: SessionVariables<Data> }>()
    const seen: unknown[] = []
    app.onError((error, c) => {
      seen.push(error)
      return c.text('handled by the app', (error as StoreError).status as 503)
    })
    app.use(honoSession(manager(failing(['create']))))
    app.post('/login', async (c) => {
      await c.get('session').login('alice')
      return new Response(null, {
        status: 303,
        headers: { location: '/home', 'cache-control': 'max-age=60' },
      })
    })
    const response = await app.request('/login', { method: 'POST' })
    assert.equal(response.status, 503)
    assert.equal(await response.text(), 'handled by the app')
    assert.equal(response.headers.get('location'), null)
    assert.equal(response.headers.get('cache-control'), null)
    assert.deepEqual(response.headers.getSetCookie(), [])
    assert.ok(seen[0] instanceof StoreError)
  })

  it('drops the changes of a handler that throws; the error page gets no session headers', async () => {
    const store = new MemoryStore({ cleanupIntervalMs: 0 })
    const app = new Hono<{ Variables: SessionVariables<Data> }>()
    app.onError((_error, c) => c.text('oops', 500))
    app.use(honoSession(manager(store)))
    app.get('/', (c) => {
      c.get('session').set('visits', 1)
      throw new Error('boom')
    })
    const response = await app.request('/')
    assert.equal(response.status, 500)
    assert.deepEqual(response.headers.getSetCookie(), [])
    assert.equal(response.headers.get('cache-control'), null)
    assert.equal(store.size, 0)
  })

  it("keeps the cookies and Vary the handler set through Hono's context", async () => {
    const app = new Hono<{ Variables: SessionVariables<Data> }>()
    app.use(honoSession(manager()))
    app.get('/', (c) => {
      c.get('session').set('visits', 1)
      c.header('set-cookie', 'theme=dark; Path=/', { append: true })
      c.header('vary', 'Accept-Language')
      return c.text('ok')
    })
    const response = await app.request('/')
    assert.deepEqual(cookieNames(response), ['sid', 'theme'])
    assert.equal(response.headers.get('vary'), 'Accept-Language, Cookie')
  })

  it("types c.get('session') by the manager's data", async () => {
    const app = new Hono<{ Variables: SessionVariables<Data> }>()
    app.use(honoSession(manager()))
    app.get('/', (c) => {
      const visits: number | undefined = c.get('session').get('visits')
      // @ts-expect-error 'userId' is not a key of the declared session data
      c.get('session').get('userId')
      return c.text(String(visits ?? 0))
    })
    assert.equal(await (await app.request('/')).text(), '0')
  })
})
