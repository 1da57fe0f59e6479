import assert from 'node:assert/strict'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, describe, it } from 'node:test'
import { SECRET_A } from '../../test/support.js'
import { createSessionManager, type SessionManager } from '../manager.js'
import type { Store } from '../store.js'
import { MemoryStore } from '../stores/memory.js'
import { withSession } from './node.js'

type Data = { visits?: number }

const servers: Server[] = []
after(() => {
  for (const server of servers) server.close()
})

async function serve(handler: (req: IncomingMessage, res: ServerResponse) => unknown): Promise<string> {
  const server = createServer((req, res) => void handler(req, res))
  servers.push(server)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

function manager(store: Store = new MemoryStore({ cleanupIntervalMs: 0 })): SessionManager<Data> {
  return createSessionManager<Data>({ store, secrets: [SECRET_A], cookie: { secure: 'auto' } })
}

const cookieOf = (response: Response) =>
  response.headers
    .getSetCookie()
    .find((c) => c.startsWith('sid='))
    ?.split(';')[0]

describe('node:http adapter', () => {
  it('loads, saves before the response goes out, and counts visits across requests', async () => {
    const sessions = manager()
    const url = await serve(
      withSession(sessions, (_req, res, session) => {
        session.set('visits', (session.get('visits') ?? 0) + 1)
        res.end(String(session.get('visits')))
      }),
    )
    const first = await fetch(url)
    const cookie = cookieOf(first)!
    assert.equal(await first.text(), '1')
    const second = await fetch(url, { headers: { cookie } })
    assert.equal(await second.text(), '2')
  })

  it('sends a redirect only after the session it relies on is saved', async () => {
    let release!: () => void
    const gate = new Promise<void>((resolve) => (release = resolve))
    const memory = new MemoryStore({ cleanupIntervalMs: 0 })
    const slow: Store = new Proxy(memory, {
      get: (target, property) =>
        property === 'create'
          ? async (...args: Parameters<Store['create']>) => {
              await gate
              return target.create(...args)
            }
          : bound(target, property),
    })
    const url = await serve(
      withSession(manager(slow), (_req, res, session) => {
        session.set('visits', 1)
        res.writeHead(303, { location: '/next' }).end()
      }),
    )
    let answered = false
    const pending = fetch(url, { redirect: 'manual' }).then((response) => {
      answered = true
      return response
    })
    await new Promise((resolve) => setTimeout(resolve, 50))
    assert.equal(answered, false, 'the redirect waits for the store')
    assert.equal(memory.size, 0)
    release()
    const response = await pending
    assert.equal(response.status, 303)
    assert.equal(memory.size, 1)
    assert.ok(cookieOf(response))
  })

  it("keeps the app's own Set-Cookie headers and writeHead() header arrays unchanged", async () => {
    const url = await serve(
      withSession(manager(), (_req, res, session) => {
        session.set('visits', 1)
        res.setHeader('Set-Cookie', 'a=1')
        res.writeHead(200, ['X-A', '1', 'Set-Cookie', 'b=2', 'Link', '</x>', 'Link', '</y>'])
        res.end('ok')
      }),
    )
    const response = await fetch(url)
    const cookies = response.headers.getSetCookie()
    assert.deepEqual(cookies.map((c) => c.split('=')[0]).sort(), ['a', 'b', 'sid'])
    assert.equal(response.headers.get('x-a'), '1')
  })

  it('keeps a raw writeHead() array intact, duplicates included, when no header was set before', async () => {
    const url = await serve(
      withSession(manager(), (_req, res, session) => {
        session.set('visits', 1)
        res.writeHead(200, ['Set-Cookie', 'b=2', 'Link', '</x>', 'Link', '</y>']).end('ok')
      }),
    )
    const response = await fetch(url)
    assert.deepEqual(
      response.headers
        .getSetCookie()
        .map((c) => c.split('=')[0])
        .sort(),
      ['b', 'sid'],
    )
    assert.equal(response.headers.get('link'), '</x>, </y>')
  })

  it('merges with a Set-Cookie given in a writeHead() header object', async () => {
    const url = await serve(
      withSession(manager(), (_req, res, session) => {
        session.set('visits', 1)
        res.setHeader('Set-Cookie', ['a=1'])
        res.writeHead(200, 'OK', { 'set-cookie': ['b=2'], 'x-b': '2' }).end('ok')
      }),
    )
    const response = await fetch(url)
    assert.deepEqual(
      response.headers
        .getSetCookie()
        .map((c) => c.split('=')[0])
        .sort(),
      ['a', 'b', 'sid'],
    )
    assert.equal(response.headers.get('x-b'), '2')
  })

  it('streams a response written in several chunks after the session is saved', async () => {
    const url = await serve(
      withSession(manager(), async (_req, res, session) => {
        session.set('visits', 1)
        res.write('a')
        res.write('b')
        await new Promise((resolve) => setTimeout(resolve, 5))
        res.end('c')
      }),
    )
    const response = await fetch(url)
    assert.equal(await response.text(), 'abc')
    assert.ok(cookieOf(response))
  })

  it('answers 503 and sends no cookie when the store is down, instead of a fresh session', async () => {
    const down: Store = new Proxy(new MemoryStore({ cleanupIntervalMs: 0 }), {
      get: (target, property) =>
        typeof property === 'string' && ['get', 'create', 'update'].includes(property)
          ? async () => {
              throw new Error('ECONNREFUSED')
            }
          : bound(target, property),
    })
    const url = await serve(
      withSession(manager(down), (_req, res, session) => {
        session.set('visits', 1)
        res.end('saved?')
      }),
    )
    const response = await fetch(url)
    assert.equal(response.status, 503)
    assert.equal(response.headers.getSetCookie().length, 0)
    assert.notEqual(await response.text(), 'saved?')
  })

  it('drops the changes of a handler that throws before writing, and answers 500', async () => {
    const memory = new MemoryStore({ cleanupIntervalMs: 0 })
    const originalError = console.error
    console.error = () => undefined
    try {
      const url = await serve(
        withSession(manager(memory), (_req, _res, session) => {
          session.set('visits', 1)
          throw new Error('boom')
        }),
      )
      const response = await fetch(url)
      assert.equal(response.status, 500)
      assert.equal(memory.size, 0)
    } finally {
      console.error = originalError
    }
  })
})

describe('node:http adapter: caching headers', () => {
  it('adds Cookie to an existing Vary and replaces a public Cache-Control on a response that read the session', async () => {
    const url = await serve(
      withSession(manager(), (_req, res, session) => {
        res.setHeader('Vary', 'Accept-Encoding')
        res.writeHead(200, { 'Cache-Control': 'public, max-age=3600' })
        res.end(String(session.get('visits') ?? 0))
      }),
    )
    const response = await fetch(url)
    assert.equal(response.headers.get('vary'), 'Accept-Encoding, Cookie')
    assert.equal(response.headers.get('cache-control'), 'no-store')
  })

  it('leaves the caching headers of a response that never used the session alone', async () => {
    const url = await serve(
      withSession(manager(), (_req, res) => {
        res.writeHead(200, { 'Cache-Control': 'public, max-age=60' }).end('static')
      }),
    )
    const response = await fetch(url)
    assert.equal(response.headers.get('cache-control'), 'public, max-age=60')
    assert.equal(response.headers.get('vary'), null)
  })
})

describe('node:http adapter: writeHead() forms', () => {
  it('keeps every header of writeHead() given [name, value] pairs, with our cookie added', async () => {
    const url = await serve(
      withSession(manager(), (_req, res, session) => {
        session.set('visits', 1)
        res.writeHead(200, [
          ['X-A', '1'],
          ['Set-Cookie', 'b=2'],
        ] as unknown as string[])
        res.end('ok')
      }),
    )
    const response = await fetch(url)
    assert.deepEqual(
      response.headers
        .getSetCookie()
        .map((c) => c.split('=')[0])
        .sort(),
      ['b', 'sid'],
    )
    assert.equal(response.headers.get('x-a'), '1')
  })

  it('keeps both values of writeHead() object headers whose names differ only in case, and numbers as strings', async () => {
    const url = await serve(
      withSession(manager(), (_req, res, session) => {
        session.set('visits', 1)
        res.writeHead(200, { 'X-Trace': 'a', 'x-trace': 'b', 'X-Count': 3 }).end('ok')
      }),
    )
    const response = await fetch(url)
    assert.equal(response.headers.get('x-trace'), 'a, b')
    assert.equal(response.headers.get('x-count'), '3')
    assert.equal(response.headers.getSetCookie().length, 1)
  })

  it('answers through the error path, without crashing, when the held writeHead() is invalid', async () => {
    const url = await serve(
      withSession(manager(), (_req, res, session) => {
        session.set('visits', 1)
        res.writeHead(200, { 'X-Bad': 'line\nbreak' }).end('never')
      }),
    )
    const originalError = console.error
    console.error = () => undefined
    try {
      const response = await fetch(url)
      assert.equal(response.status, 500)
    } finally {
      console.error = originalError
    }
  })
})

// A store method bound to its store, or a plain property as is (proxies in these tests wrap real stores).
function bound(target: object, property: string | symbol): unknown {
  const value: unknown = Reflect.get(target, property)
  return typeof value === 'function' ? value.bind(target) : value
}
