/**
 * The behaviour every framework adapter must show, as a runnable `node:test` suite: one set of routes
 * ({@link contractRoutes}), wired into the framework in a few lines, and one set of cases run against it
 * (login flow, lazy write, regenerate, destroy, tampered cookie, store error → 503 through the framework's
 * own error path, a streamed response sent only after the session is saved, caching headers, the header and
 * query transports). An adapter holds no session logic of its own, so what differs between frameworks is
 * only how they hold the response until the commit is done and how they answer errors: this proves both.
 *
 * Subpath: `tessera/testing/adapters`.
 *
 * @example
 * ```ts
 * import { findRoute, runAdapterContract, writeNodeReply } from 'tessera/testing/adapters'
 *
 * runAdapterContract({
 *   name: 'node:http',
 *   start: async (manager) => {
 *     const server = createServer(withSession(manager, async (req, res, session) => {
 *       const route = findRoute(req.method, req.url)
 *       if (route) await writeNodeReply(res, await route.handle(session))
 *     }))
 *     // …listen on 127.0.0.1:0 and return { origin, close }
 *   },
 * })
 * ```
 *
 * @module
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import type { ServerResponse } from 'node:http'
import { after, before, describe, it } from 'node:test'
import { createSessionManager, type SessionManager, type SessionManagerOptions } from '../manager.js'
import type { Session } from '../session.js'
import type { Store } from '../store.js'
import { MemoryStore } from '../stores/memory.js'

/** The session the contract routes see. */
export type ContractSession = Session<Record<string, unknown>>

/** What a contract route answers; each framework's test turns it into a native response. */
export type ContractReply =
  | { readonly kind: 'text'; readonly body: string; readonly headers: Readonly<Record<string, string>> }
  | { readonly kind: 'redirect'; readonly location: string } // always 303
  | { readonly kind: 'stream'; readonly chunks: AsyncIterable<string> }

/** One route of the contract app. */
export interface ContractRoute {
  readonly method: 'GET' | 'POST'
  readonly path: string
  readonly handle: (session: ContractSession) => ContractReply | Promise<ContractReply>
}

/** The chunks `GET /stream` writes, one every few milliseconds. */
export const STREAM_CHUNKS: readonly string[] = ['first chunk\n', 'second chunk\n', 'third chunk\n']

const text = (body: string, headers: Record<string, string> = {}): ContractReply => ({
  kind: 'text',
  body,
  headers: { 'content-type': 'text/plain; charset=utf-8', ...headers },
})

async function* slowly(chunks: readonly string[]): AsyncGenerator<string> {
  for (const chunk of chunks) {
    await new Promise((resolve) => setTimeout(resolve, 5))
    yield chunk
  }
}

/** The routes every adapter's test wires, the same in every framework. */
export const contractRoutes: readonly ContractRoute[] = [
  {
    method: 'GET',
    path: '/count',
    handle: (session) => {
      const visits = Number(session.get('visits') ?? 0) + 1
      session.set('visits', visits)
      return text(String(visits))
    },
  },
  {
    method: 'POST',
    path: '/login',
    handle: async (session) => {
      await session.login('alice')
      return { kind: 'redirect', location: '/count' }
    },
  },
  {
    method: 'POST',
    path: '/logout',
    handle: async (session) => {
      await session.destroy()
      return { kind: 'redirect', location: '/' }
    },
  },
  {
    // Reads only; its own caching headers must give way to the session's, its Vary must be merged.
    method: 'GET',
    path: '/read',
    handle: (session) =>
      text(
        JSON.stringify({
          visits: session.get('visits') ?? 0,
          streamed: session.get('streamed') ?? false,
          userId: session.userId ?? null,
        }),
        { 'cache-control': 'public, max-age=60', vary: 'Accept-Encoding' },
      ),
  },
  {
    // Never touches the session: its caching headers must be left alone.
    method: 'GET',
    path: '/static',
    handle: () => text('static', { 'cache-control': 'public, max-age=60' }),
  },
  {
    method: 'GET',
    path: '/stream',
    handle: (session) => {
      session.set('streamed', true)
      return { kind: 'stream', chunks: slowly(STREAM_CHUNKS) }
    },
  },
  {
    // Served by a manager whose store is down: the write cannot be saved, so the answer must be a 503.
    method: 'GET',
    path: '/boom-store',
    handle: (session) => {
      session.set('visits', 1)
      return text('saved')
    },
  },
]

/** The contract route for a request, or undefined (answer 404). */
export function findRoute(method: string | undefined, url: string | undefined): ContractRoute | undefined {
  const path = (url ?? '/').split('?')[0]
  return contractRoutes.find((route) => route.method === method && route.path === path)
}

/** Writes a contract reply on a node:http response (node:http and Express). */
export async function writeNodeReply(res: ServerResponse, reply: ContractReply): Promise<void> {
  if (reply.kind === 'redirect') {
    res.writeHead(303, { location: reply.location }).end()
  } else if (reply.kind === 'text') {
    res.writeHead(200, reply.headers).end(reply.body)
  } else {
    res.setHeader('content-type', 'text/plain; charset=utf-8')
    for await (const chunk of reply.chunks) res.write(chunk)
    res.end()
  }
}

/** A contract reply as a Web `Response`, its stream body a `ReadableStream` pulled chunk by chunk. */
export function toWebResponse(reply: ContractReply): Response {
  if (reply.kind === 'redirect')
    return new Response(null, { status: 303, headers: { location: reply.location } })
  if (reply.kind === 'text') return new Response(reply.body, { headers: reply.headers })
  const iterator = reply.chunks[Symbol.asyncIterator]()
  const encoder = new TextEncoder()
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const next = await iterator.next()
      if (next.done) controller.close()
      else controller.enqueue(encoder.encode(next.value))
    },
  })
  return new Response(body, { headers: { 'content-type': 'text/plain; charset=utf-8' } })
}

/** A running contract app: a real server (`origin`), or an in-process `fetch` (Hono's `app.request`). */
export type AdapterTarget =
  | { readonly origin: string; close(): Promise<void> }
  | { readonly fetch: (request: Request) => Promise<Response>; close?(): Promise<void> }

/** Options of {@link runAdapterContract}. */
export interface AdapterContractOptions {
  /** Suite name in the test report, usually the framework. */
  name: string
  /** Starts the contract app ({@link contractRoutes}) with the session middleware over `manager`. */
  start: (manager: SessionManager) => Promise<AdapterTarget>
  /** When set, the suite is reported as skipped with this reason. */
  skip?: string | undefined
}

type StoreOperation = 'get' | 'create' | 'update' | 'touch' | 'destroy'

/** A MemoryStore that counts calls, can answer slowly and log when a write lands, or fail like a dead backend. */
class ContractStore {
  readonly calls: StoreOperation[] = []
  readonly events: string[] = []
  delayMs = 0
  readonly store: Store

  constructor(failing = false) {
    const memory = new MemoryStore({ cleanupIntervalMs: 0 })
    const watched = new Set<string>(['get', 'create', 'update', 'touch', 'destroy'])
    this.store = new Proxy(memory, {
      get: (target, property) => {
        const value: unknown = Reflect.get(target, property)
        if (typeof value !== 'function') return value
        if (typeof property !== 'string' || !watched.has(property)) return value.bind(target)
        return async (...args: unknown[]) => {
          this.calls.push(property as StoreOperation)
          if (failing) throw new Error('connect ECONNREFUSED 127.0.0.1:6379')
          if (this.delayMs > 0 && property !== 'get') await sleep(this.delayMs)
          const result: unknown = await Reflect.apply(value, target, args)
          if (property === 'create' || property === 'update') this.events.push('saved')
          return result
        }
      },
    })
  }

  writes(): number {
    return this.calls.filter((call) => call !== 'get').length
  }

  reset(): void {
    this.calls.length = 0
    this.events.length = 0
    this.delayMs = 0
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** The first `name=value` pair set for `name`, or undefined. */
function cookieOf(response: Response, name = 'sid'): string | undefined {
  const header = response.headers.getSetCookie().find((value) => value.startsWith(`${name}=`))
  return header?.split(';')[0]
}

function varyList(response: Response): string[] {
  const vary = response.headers.get('vary')
  return vary === null ? [] : vary.split(',').map((name) => name.trim().toLowerCase())
}

/**
 * Registers the contract cases under `describe('Adapter contract: <name>')`. Each configuration (healthy
 * store, failing store, header and query transports) gets its own app from `start`, closed afterwards.
 */
export function runAdapterContract(options: AdapterContractOptions): void {
  const { name, start, skip } = options
  const secret = randomBytes(32).toString('base64url')
  const targets: AdapterTarget[] = []

  const launch = async (store: Store, extra: Partial<SessionManagerOptions> = {}) => {
    const manager = createSessionManager({ store, secrets: [secret], cookie: { secure: 'auto' }, ...extra })
    const target = await start(manager)
    targets.push(target)
    return (path: string, init: { method?: string; headers?: Record<string, string> } = {}) => {
      const request = {
        method: init.method ?? 'GET',
        headers: init.headers ?? {},
        redirect: 'manual',
      } as const
      return 'origin' in target
        ? fetch(`${target.origin}${path}`, request)
        : target.fetch(new Request(`http://localhost${path}`, request))
    }
  }

  describe(`Adapter contract: ${name}`, skip === undefined ? {} : { skip }, () => {
    const spy = new ContractStore()
    let send: Awaited<ReturnType<typeof launch>>
    before(async () => {
      send = await launch(spy.store)
    })
    after(async () => {
      for (const target of targets.splice(0)) await target.close?.()
    })
    const read = async (cookie?: string) =>
      (await send('/read', cookie === undefined ? {} : { headers: { cookie } })).json() as Promise<{
        visits: number
        streamed: boolean
        userId: string | null
      }>

    it('loads and saves the session: the visit count survives between requests', async () => {
      const first = await send('/count')
      assert.equal(first.status, 200)
      assert.equal(await first.text(), '1')
      const cookie = cookieOf(first)
      assert.ok(cookie, 'a new session with data gets a cookie')
      const second = await send('/count', { headers: { cookie } })
      assert.equal(await second.text(), '2')
    })

    it('login flow: a new ID, the data kept, and the redirect sent only after the session is saved', async () => {
      const anonymous = cookieOf(await send('/count'))!
      spy.reset()
      spy.delayMs = 30
      const login = await send('/login', { method: 'POST', headers: { cookie: anonymous } })
      spy.events.push('response')
      assert.equal(login.status, 303)
      assert.match(login.headers.get('location') ?? '', /\/count$/)
      assert.deepEqual(spy.events, ['saved', 'response'], 'the redirect waited for the store')
      const loggedIn = cookieOf(login)
      assert.ok(loggedIn && loggedIn !== anonymous, 'login issues a new session ID')
      assert.equal(await (await send('/count', { headers: { cookie: loggedIn } })).text(), '2')
      assert.equal((await read(loggedIn)).userId, 'alice')
    })

    it('regenerate on login leaves the old ID dead', async () => {
      const anonymous = cookieOf(await send('/count'))!
      const login = await send('/login', { method: 'POST', headers: { cookie: anonymous } })
      assert.ok(cookieOf(login))
      assert.deepEqual(await read(anonymous), { visits: 0, streamed: false, userId: null })
    })

    it('lazy write: an anonymous request that only reads gets no cookie and costs no store call', async () => {
      spy.reset()
      const response = await send('/read')
      assert.equal(response.status, 200)
      assert.deepEqual(response.headers.getSetCookie(), [])
      assert.deepEqual(spy.calls, [])
    })

    it('destroy deletes the session and clears its cookie in the same response', async () => {
      const cookie = cookieOf(await send('/count'))!
      const logout = await send('/logout', { method: 'POST', headers: { cookie } })
      assert.equal(logout.status, 303)
      const cleared = logout.headers.getSetCookie().find((value) => value.startsWith('sid='))
      assert.match(cleared ?? '', /^sid=;.*Max-Age=0/i)
      assert.equal((await read(cookie)).visits, 0)
    })

    it('a tampered cookie gives a fresh session, and its forged ID costs no store call', async () => {
      const cookie = cookieOf(await send('/count'))!
      const first = cookie.charAt(4) === 'A' ? 'B' : 'A' // the ID's first character, right after 'sid='
      const tampered = `sid=${first}${cookie.slice(5)}`
      spy.reset()
      const response = await send('/count', { headers: { cookie: tampered } })
      assert.equal(await response.text(), '1')
      assert.ok(!spy.calls.includes('get'), 'a bad signature is refused before the store')
      const fresh = cookieOf(response)
      assert.ok(fresh && fresh !== tampered && fresh !== cookie)
    })

    it('streams a response written in chunks, its headers sent only after the session is saved', async () => {
      spy.reset()
      spy.delayMs = 30
      const response = await send('/stream')
      spy.events.push('response')
      assert.deepEqual(spy.events, ['saved', 'response'], 'the headers waited for the store')
      assert.equal(response.status, 200)
      assert.equal(await response.text(), STREAM_CHUNKS.join(''))
      const cookie = cookieOf(response)
      assert.ok(cookie)
      assert.equal((await read(cookie)).streamed, true)
    })

    it('a response that read the session gets Cache-Control: no-store and Cookie merged into Vary', async () => {
      const response = await send('/read')
      assert.equal(response.headers.get('cache-control'), 'no-store')
      assert.deepEqual(varyList(response), ['accept-encoding', 'cookie'])
      await response.arrayBuffer()
    })

    it('leaves the caching headers of a response that never used the session alone', async () => {
      const response = await send('/static')
      assert.equal(await response.text(), 'static')
      assert.equal(response.headers.get('cache-control'), 'public, max-age=60')
      assert.equal(response.headers.get('vary'), null)
      assert.deepEqual(response.headers.getSetCookie(), [])
    })

    describe('store errors', () => {
      let down: Awaited<ReturnType<typeof launch>>
      before(async () => {
        down = await launch(new ContractStore(true).store)
      })

      it("answers 503 through the framework's error path, with no Set-Cookie, when the save fails", async () => {
        const response = await down('/boom-store')
        assert.equal(response.status, 503)
        assert.deepEqual(response.headers.getSetCookie(), [])
        assert.notEqual(await response.text(), 'saved')
      })

      it('answers 503, never a fresh session, when the load fails', async () => {
        const cookie = cookieOf(await send('/count'))! // valid under the same secret; the store is down
        const response = await down('/read', { headers: { cookie } })
        assert.equal(response.status, 503)
        assert.deepEqual(response.headers.getSetCookie(), [])
        await response.arrayBuffer()
      })
    })

    describe('other transports', () => {
      it('header transport: the token goes out in Session-Token and comes back as a Bearer token', async () => {
        const api = await launch(new ContractStore().store, { transport: { type: 'header' } })
        const first = await api('/count')
        const token = first.headers.get('session-token')
        assert.ok(token)
        assert.deepEqual(first.headers.getSetCookie(), [])
        assert.deepEqual(varyList(first), ['authorization'])
        const second = await api('/count', { headers: { authorization: `Bearer ${token}` } })
        assert.equal(await second.text(), '2')
      })

      it('query transport: every response carries Referrer-Policy: no-referrer', async () => {
        const links = await launch(new ContractStore().store, {
          transport: { type: 'query' },
          onWarning: () => undefined,
        })
        const first = await links('/count')
        const token = first.headers.get('session-token')
        assert.ok(token)
        assert.equal(first.headers.get('referrer-policy'), 'no-referrer')
        assert.equal(await (await links(`/count?sid=${encodeURIComponent(token)}`)).text(), '2')
        const untouched = await links('/static')
        assert.equal(untouched.headers.get('referrer-policy'), 'no-referrer')
        await untouched.arrayBuffer()
      })
    })
  })
}
