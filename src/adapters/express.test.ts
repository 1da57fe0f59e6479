import assert from 'node:assert/strict'
import { type Server, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, describe, it } from 'node:test'
import express5 from 'express'
import express4 from 'express4'
import { SECRET_A } from '../../test/support.js'
import { StoreError } from '../errors.js'
import { createSessionManager } from '../manager.js'
import type { Store } from '../store.js'
import { MemoryStore } from '../stores/memory.js'
import { csrf, session } from './express.js'

const servers: Server[] = []
after(() => {
  for (const server of servers) server.close()
})

type App = ReturnType<typeof express5>

async function listen(app: App): Promise<string> {
  const server = app.listen(0, '127.0.0.1')
  servers.push(server)
  await new Promise((resolve) => server.once('listening', resolve))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

const cookieOf = (response: Response) => response.headers.getSetCookie()[0]?.split(';')[0]

for (const [version, express] of [
  ['Express 5', express5],
  ['Express 4', express4 as unknown as typeof express5],
] as const) {
  describe(`${version} middleware`, () => {
    function app(store: Store = new MemoryStore({ cleanupIntervalMs: 0 })) {
      const sessions = createSessionManager({ store, secrets: [SECRET_A], cookie: { secure: 'auto' } })
      const application = express()
      application.use(session(sessions))
      application.get('/count', (req, res) => {
        const visits = Number(req.session.get('visits') ?? 0) + 1
        req.session.set('visits', visits)
        res.json({ visits })
      })
      application.post('/login', async (req, res) => {
        await req.session.regenerate()
        req.session.set('userId', 'alice')
        res.redirect(303, '/count')
      })
      application.post('/logout', async (req, res) => {
        await req.session.destroy()
        res.redirect(303, '/')
      })
      const errors: unknown[] = []
      application.use(
        (
          error: unknown,
          _req: unknown,
          res: { status(n: number): { send(b: string): void } },
          _next: unknown,
        ) => {
          errors.push(error)
          res.status((error as { status?: number }).status ?? 500).send('handled by the app')
        },
      )
      return { application, errors }
    }

    it('puts req.session on every request and saves it before the response', async () => {
      const url = await listen(app().application)
      const first = await fetch(`${url}/count`)
      assert.deepEqual(await first.json(), { visits: 1 })
      const second = await fetch(`${url}/count`, { headers: { cookie: cookieOf(first)! } })
      assert.deepEqual(await second.json(), { visits: 2 })
    })

    it('regenerates on login and clears the cookie on logout in the same response', async () => {
      const url = await listen(app().application)
      const anonymous = cookieOf(await fetch(`${url}/count`))!
      const login = await fetch(`${url}/login`, {
        method: 'POST',
        headers: { cookie: anonymous },
        redirect: 'manual',
      })
      const loggedIn = cookieOf(login)!
      assert.notEqual(loggedIn, anonymous)
      const logout = await fetch(`${url}/logout`, {
        method: 'POST',
        headers: { cookie: loggedIn },
        redirect: 'manual',
      })
      assert.match(logout.headers.getSetCookie()[0]!, /^sid=; Max-Age=0;/)
    })

    it('keeps req.session off the request object, and an assignment to req.session still sticks', async () => {
      const { application } = app()
      const seen: unknown[] = []
      application.get('/inspect', (req, res) => {
        seen.push(Object.hasOwn(req, 'session'), typeof req.session.get)
        const mine = { mine: true } as unknown as typeof req.session
        req.session = mine
        seen.push(req.session === mine, Object.hasOwn(req, 'session'))
        res.send('ok')
      })
      const url = await listen(application)
      await (await fetch(`${url}/inspect`)).text()
      assert.deepEqual(seen, [false, 'function', true, true])
      // The next request gets its own session through the accessor again.
      assert.deepEqual(await (await fetch(`${url}/count`)).json(), { visits: 1 })
    })

    it('replaces a req.session an earlier middleware set, as an assignment would', async () => {
      const sessions = createSessionManager({
        store: new MemoryStore({ cleanupIntervalMs: 0 }),
        secrets: [SECRET_A],
        cookie: { secure: 'auto' },
      })
      const application = express()
      application.use((req, _res, next) => {
        ;(req as unknown as { session: unknown }).session = 'from another library'
        next()
      })
      application.use(session(sessions))
      application.get('/', (req, res) => {
        req.session.set('visits', 1)
        res.send(typeof req.session.get)
      })
      const url = await listen(application)
      const response = await fetch(`${url}/`)
      assert.equal(await response.text(), 'function')
      assert.ok(cookieOf(response))
    })

    it("sets the session's headers through a setHeader wrapped on the response or on Node's prototype", async () => {
      const sessions = createSessionManager({
        store: new MemoryStore({ cleanupIntervalMs: 0 }),
        secrets: [SECRET_A],
        cookie: { secure: 'auto' },
      })
      const seen: string[] = []
      const application = express()
      application.use((req, res, next) => {
        if (req.url === '/wrapped') {
          const original = res.setHeader
          res.setHeader = function setHeader(
            this: typeof res,
            name: string,
            value: number | string | string[],
          ) {
            seen.push(`own ${name.toLowerCase()}`)
            return original.call(this, name, value)
          } as typeof res.setHeader
        }
        next()
      })
      application.use(session(sessions))
      application.get(['/wrapped', '/plain'], (req, res) => {
        req.session.get('visits')
        res.send('ok')
      })
      const url = await listen(application)
      const wrapped = await fetch(`${url}/wrapped`)
      assert.equal(wrapped.headers.get('cache-control'), 'no-store')
      assert.ok(seen.includes('own cache-control') && seen.includes('own vary'), seen.join())

      // An instrumentation that wraps Node's own prototype, as APM agents do, sees them too.
      const prototype = ServerResponse.prototype as { setHeader: ServerResponse['setHeader'] }
      const original = prototype.setHeader
      prototype.setHeader = function setHeader(
        this: ServerResponse,
        name: string,
        value: number | string | string[],
      ) {
        seen.push(`prototype ${name.toLowerCase()}`)
        return original.call(this, name, value)
      } as ServerResponse['setHeader']
      try {
        const plain = await fetch(`${url}/plain`)
        assert.equal(plain.headers.get('vary'), 'Cookie')
      } finally {
        prototype.setHeader = original
      }
      assert.ok(seen.includes('prototype cache-control') && seen.includes('prototype vary'), seen.join())
    })

    it("passes a store failure to the app's error handler as a StoreError with status 503", async () => {
      const down: Store = new Proxy(new MemoryStore({ cleanupIntervalMs: 0 }), {
        get: (target, property) =>
          property === 'create'
            ? async () => {
                throw new Error('ECONNREFUSED')
              }
            : bound(target, property),
      })
      const { application, errors } = app(down)
      const url = await listen(application)
      const response = await fetch(`${url}/count`)
      assert.equal(response.status, 503)
      assert.equal(await response.text(), 'handled by the app')
      assert.equal(response.headers.getSetCookie().length, 0)
      assert.ok(errors[0] instanceof StoreError)
    })
  })
}

describe('Express csrf() middleware', () => {
  async function appWithCsrf() {
    const sessions = createSessionManager({
      store: new MemoryStore({ cleanupIntervalMs: 0 }),
      secrets: [SECRET_A],
      cookie: { secure: 'auto' },
    })
    const application = express5()
    application.use(session(sessions), express5.urlencoded({ extended: false }), csrf())
    application.get('/form', (req, res) => {
      res.send(req.session.csrfToken())
    })
    application.post('/transfer', (_req, res) => {
      res.send('done')
    })
    application.use(
      (
        error: { status?: number; reason?: string },
        _req: unknown,
        res: { status(n: number): { send(b: string): void } },
        _next: unknown,
      ) => {
        res.status(error.status ?? 500).send(error.reason ?? 'error')
      },
    )
    return listen(application)
  }

  it('accepts a form post carrying the token from the form, and refuses one without it (403)', async () => {
    const url = await appWithCsrf()
    const form = await fetch(`${url}/form`)
    const cookie = cookieOf(form)!
    const token = await form.text()
    const ok = await fetch(`${url}/transfer`, {
      method: 'POST',
      headers: { cookie },
      body: new URLSearchParams({ _csrf: token }),
    })
    assert.deepEqual([ok.status, await ok.text()], [200, 'done'])
    const header = await fetch(`${url}/transfer`, {
      method: 'POST',
      headers: { cookie, 'x-csrf-token': token },
    })
    assert.equal(header.status, 200)
    const missing = await fetch(`${url}/transfer`, {
      method: 'POST',
      headers: { cookie },
      body: new URLSearchParams({}),
    })
    assert.deepEqual([missing.status, await missing.text()], [403, 'missing-token'])
    const crossSite = await fetch(`${url}/transfer`, {
      method: 'POST',
      headers: { cookie, 'sec-fetch-site': 'cross-site' },
      body: new URLSearchParams({ _csrf: token }),
    })
    assert.deepEqual([crossSite.status, await crossSite.text()], [403, 'cross-site'])
  })
})

// A store method bound to its store, or a plain property as is (proxies in these tests wrap real stores).
function bound(target: object, property: string | symbol): unknown {
  const value: unknown = Reflect.get(target, property)
  return typeof value === 'function' ? value.bind(target) : value
}
