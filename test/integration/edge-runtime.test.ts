// tessera/web where only Web APIs exist (Vercel Edge, Cloudflare Workers without nodejs_compat): the core,
// MemoryStore, CookieStore and the Web adapter bundle with no node: module, and run in a context that has no
// process, no Buffer and no require: Web Crypto and the portable SHA-256 do the cryptography.
import assert from 'node:assert/strict'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { createContext, runInContext } from 'node:vm'
import { build } from 'esbuild'
import { createSessionManager } from 'tessera'
import { CookieStore } from 'tessera/cookie'

const root = join(import.meta.dirname, '../..')
mkdirSync(join(root, 'test-output'), { recursive: true })
// Inside the package, so that `tessera/…` resolves to this package's built files.
const dir = mkdtempSync(join(root, 'test-output', 'edge-'))
after(() => rmSync(dir, { recursive: true, force: true }))

const SECRET = 'vN3kQ8xT2mW9pL4rJ7cH1sF6gB0dY5zE-aU_iOqXtK'

type Handler = (request: Request) => Promise<Response>
interface EdgeModule {
  usesNodeCrypto: boolean
  counter(store: 'memory' | 'cookie' | 'hybrid'): Handler
}

// What a Worker has: Web APIs only. Timers return numbers, as in browsers and Workers (no unref()).
function workerGlobals(): Record<string, unknown> {
  const timers = new Map<number, ReturnType<typeof setInterval>>()
  let next = 1
  return {
    crypto: globalThis.crypto,
    TextEncoder,
    TextDecoder,
    atob,
    btoa,
    Request,
    Response,
    Headers,
    URL,
    URLSearchParams,
    ReadableStream,
    console,
    queueMicrotask,
    structuredClone,
    performance,
    setTimeout: (run: () => void, ms?: number) => {
      const id = next++
      timers.set(id, setTimeout(run, ms))
      return id
    },
    clearTimeout: (id: number) => clearTimeout(timers.get(id)),
    setInterval: (run: () => void, ms?: number) => {
      const id = next++
      const timer = setInterval(run, ms)
      timer.unref()
      timers.set(id, timer)
      return id
    },
    clearInterval: (id: number) => clearInterval(timers.get(id)),
  }
}

let edge: EdgeModule
let bundle = ''

before(async () => {
  const entry = join(dir, 'worker.js')
  writeFileSync(
    entry,
    `import { createSessionManager } from 'tessera'
    import { MemoryStore } from 'tessera/memory'
    import { CookieStore } from 'tessera/cookie'
    import { withSession } from 'tessera/web'
    export const usesNodeCrypto = typeof process !== 'undefined'
    export function counter(kind) {
      const sessions = createSessionManager({
        store: kind === 'cookie' ? new CookieStore() : new MemoryStore(),
        secrets: [${JSON.stringify(SECRET)}],
        ...(kind === 'hybrid' && { hybrid: { revalidateAfter: 60_000 } }),
      })
      return withSession(sessions, async (request, session) => {
        const path = new URL(request.url).pathname
        if (path === '/login') await session.login('alice')
        if (path === '/csrf') {
          const token = session.csrfToken()
          return Response.json({ token, verified: session.verifyCsrfToken(token) })
        }
        const visits = (session.get('visits') ?? 0) + 1
        session.set('visits', visits)
        return Response.json({ visits, user: session.userId ?? null })
      })
    }`,
  )
  const output = join(dir, 'worker.bundle.js')
  // platform 'neutral' resolves no Node built-in: a node: import anywhere in the graph fails the build.
  await build({
    entryPoints: [entry],
    bundle: true,
    platform: 'neutral',
    format: 'iife',
    globalName: 'edge',
    outfile: output,
    logLevel: 'silent',
  })
  bundle = readFileSync(output, 'utf8')
  const context = createContext(workerGlobals())
  runInContext(bundle, context)
  edge = (context as { edge: EdgeModule }).edge
})

async function visit(
  handler: Handler,
  path: string,
  cookies: Map<string, string>,
): Promise<Record<string, unknown>> {
  const cookie = [...cookies].map(([name, value]) => `${name}=${value}`).join('; ')
  const response = await handler(
    new Request(`https://app.example${path}`, {
      method: path === '/login' ? 'POST' : 'GET',
      headers: cookie ? { cookie } : {},
    }),
  )
  assert.equal(response.status, 200, await response.clone().text())
  for (const header of response.headers.getSetCookie()) {
    const [pair] = header.split(';')
    const [name, value] = pair!.split('=') as [string, string]
    if (/Max-Age=0/.test(header)) cookies.delete(name)
    else cookies.set(name, value)
  }
  return (await response.json()) as Record<string, unknown>
}

describe('tessera/web with Web APIs only (no node:crypto, no process, no Buffer)', () => {
  it('bundles the core, MemoryStore, CookieStore and the Web adapter without a single node: module', () => {
    assert.ok(bundle.length > 0)
    assert.equal(edge.usesNodeCrypto, false, 'the context has no process')
    assert.doesNotMatch(bundle, /from ["']node:|require\(["']node:/)
  })

  for (const kind of ['memory', 'cookie', 'hybrid'] as const) {
    it(`keeps a session across requests, logs in and issues CSRF tokens (${kind})`, async () => {
      const handler = edge.counter(kind)
      const cookies = new Map<string, string>()
      assert.equal((await visit(handler, '/', cookies)).visits, 1)
      assert.equal((await visit(handler, '/', cookies)).visits, 2)
      const afterLogin = await visit(handler, '/login', cookies)
      assert.deepEqual([afterLogin.visits, afterLogin.user], [3, 'alice'])
      const csrf = await visit(handler, '/csrf', cookies)
      assert.equal(csrf.verified, true)
      const forged = new Map([...cookies].map(([name, value]) => [name, `${value.slice(0, -2)}AA`]))
      assert.equal((await visit(handler, '/', forged)).visits, 1, 'a tampered cookie is a fresh session')
    })
  }

  it('seals a stateless cookie on the edge that a Node server with the same secret opens, and back', async () => {
    const cookies = new Map<string, string>()
    await visit(edge.counter('cookie'), '/', cookies)
    const onNode = createSessionManager<{ visits?: number }>({ store: new CookieStore(), secrets: [SECRET] })
    const header = [...cookies].map(([name, value]) => `${name}=${value}`).join('; ')
    const session = await onNode.load({ cookie: header })
    assert.equal(session.get('visits'), 1)
    session.set('visits', 41)
    const { setCookie } = await onNode.commit(session)
    const back = new Map([[onNode.cookieName, setCookie[0]!.split(';')[0]!.split('=')[1]!]])
    assert.equal((await visit(edge.counter('cookie'), '/', back)).visits, 42)
  })
})
