/**
 * Where a session's cost goes under Express: the same Express app with a series of middlewares, from none to
 * tessera's, each answering the bench's modifying route (`/inc`) and read-only route (`/read`).
 *
 *   npm run bench:express-budget [-- --rounds=30]
 *
 * The variants, each its own Express app in this one process:
 * - `express`: no middleware (the ceiling);
 * - `empty middleware`: `(req, res, next) => next()`, what Express charges any middleware;
 * - `caching headers`: a middleware setting `Cache-Control: no-store` and `Vary: Cookie`, which a response
 *   that used the session must carry (checklist #44);
 * - `least session`: the least a server-side session does: find a record by cookie in a Map, `JSON.parse` it,
 *   and on `/inc` `JSON.stringify` it back (no signature, no expiry, no headers);
 * - `tessera engine`: tessera's `load()` and `commit()` on MemoryStore, on a plain request object, once per
 *   request inside the Express flow (nothing read from or written on `req` or `res`);
 * - `tessera`: tessera's Express middleware on MemoryStore.
 *
 * No sockets: each request is a real `IncomingMessage` and `ServerResponse` over a stream that discards what
 * it is given, so Express, its router and Node's header code all run. The variants are measured in
 * interleaved rounds (A B C…, then …C B A) of 500 requests, so the machine's drifting speed touches each
 * alike: on these noisy machines, separate processes moved by ±20% between runs, and the ratios here by a few
 * percent. Wall time per request, after four warm-up rounds; 1,000 sessions per variant.
 */

import { IncomingMessage, ServerResponse } from 'node:http'
import { Duplex } from 'node:stream'
import express from 'express'
import { session as expressSession } from '../src/adapters/express.js'
import { createSessionManager } from '../src/index.js'
import { type CommitResult, commitNow, loadNow } from '../src/manager.js'
import type { Session } from '../src/session.js'
import { MemoryStore } from '../src/stores/memory.js'
import { COOKIE_NAME, SECRET } from './common.js'

const SESSIONS = 1000
const BATCH = 500
const WARM_UP_ROUNDS = 4
const rounds = Number(
  process.argv.find((arg) => arg.startsWith('--rounds='))?.slice('--rounds='.length) ?? 30,
)

// The response's bytes go nowhere; Node and Express do all their work up to the socket.
class DiscardingSocket extends Duplex {
  readonly remoteAddress = '127.0.0.1'
  readonly encrypted = false
  override _read(): void {}
  override _write(_chunk: unknown, _encoding: unknown, callback: () => void): void {
    callback()
  }
  override _writev(_chunks: unknown, callback: () => void): void {
    callback()
  }
}

type App = (req: IncomingMessage, res: ServerResponse) => void

/** One GET through `app`; resolves to the `name=value` of the first Set-Cookie, if any. */
function request(app: App, socket: DiscardingSocket, url: string, cookie: string | undefined) {
  return new Promise<string | undefined>((resolve) => {
    const req = new IncomingMessage(socket as never)
    req.method = 'GET'
    req.url = url
    const headers = ['Host', '127.0.0.1', 'User-Agent', 'express-budget']
    if (cookie !== undefined)
      headers.push('Cookie', cookie)
      // What Node's HTTP parser calls for each request's header block.
    ;(req as unknown as { _addHeaderLines(lines: string[], n: number): void })._addHeaderLines(
      headers,
      headers.length,
    )
    req.complete = true
    req.push(null)
    const res = new ServerResponse(req)
    res.assignSocket(socket as never)
    res.on('finish', () => {
      res.detachSocket(socket as never)
      const setCookie = res.getHeader('set-cookie')
      const first = Array.isArray(setCookie) ? setCookie[0] : setCookie
      resolve(first === undefined ? undefined : String(first).split(';')[0])
    })
    app(req, res)
  })
}

/** What a route needs of a session: the counter. */
interface Counter {
  get(): number | undefined
  set(value: number): void
}

function expressApp(
  middleware: express.RequestHandler | undefined,
  counterOf: (req: IncomingMessage) => Counter,
) {
  const app = express()
  app.disable('x-powered-by')
  if (middleware !== undefined) app.use(middleware)
  for (const path of ['/login', '/inc', '/read']) {
    app.get(path, (req, res) => {
      const counter = counterOf(req)
      if (path === '/login') counter.set(0)
      const value = counter.get()
      if (typeof value !== 'number') throw new Error(`${path} lost its session`)
      if (path === '/inc') counter.set(value + 1)
      res.status(200).send(String(path === '/inc' ? value + 1 : value))
    })
  }
  return app as unknown as App
}

const noCounter: Counter = { get: () => 0, set: () => {} }

function managerOf() {
  const store = new MemoryStore()
  // The bench servers' settings: defaults, 'auto' Secure (plain HTTP here).
  return createSessionManager<{ counter?: number }>({
    store,
    secrets: [SECRET],
    cookie: { name: COOKIE_NAME, secure: 'auto' },
  })
}
type Manager = ReturnType<typeof managerOf>
type CounterSession = Session<{ counter?: number }>

function counterOf(session: CounterSession): Counter {
  return { get: () => session.get('counter'), set: (value) => session.set('counter', value) }
}

// `load()` then `commit()` without a promise where MemoryStore allows (a touch or a new session may wait).
function engineRequest(
  manager: Manager,
  cookie: string | undefined,
  modify: boolean,
): Promise<CommitResult> | CommitResult {
  const loading = manager[loadNow]({ cookie })
  const use = (session: CounterSession) => {
    const value = session.get('counter') ?? 0
    if (modify) session.set('counter', value + 1)
    return manager[commitNow](session)
  }
  return loading instanceof Promise ? loading.then(use) : use(loading)
}

interface Variant {
  readonly name: string
  readonly app: App
  /** The cookie of each session, sent in turn; undefined where the variant keeps its own. */
  readonly cookies: (string | undefined)[]
  modifying: number
  readOnly: number
  requests: number
}

async function variant(name: string, app: App, socket: DiscardingSocket, login: boolean): Promise<Variant> {
  const cookies: (string | undefined)[] = []
  for (let i = 0; i < SESSIONS; i++)
    cookies.push(login ? await request(app, socket, '/login', undefined) : undefined)
  return { name, app, cookies, modifying: 0, readOnly: 0, requests: 0 }
}

async function variants(socket: DiscardingSocket): Promise<Variant[]> {
  // A variant whose routes have no session: only its middleware differs from bare Express.
  const sessionless = (name: string, middleware?: express.RequestHandler) =>
    variant(
      name,
      expressApp(middleware, () => noCounter),
      socket,
      false,
    )
  const all: Variant[] = []
  all.push(await sessionless('express'))
  all.push(await sessionless('empty middleware', (_req, _res, next) => next()))
  all.push(
    await sessionless('caching headers', (_req, res, next) => {
      res.setHeader('Cache-Control', 'no-store')
      res.setHeader('Vary', 'Cookie')
      next()
    }),
  )

  const records = new Map<string, string>()
  const ids: string[] = []
  for (let i = 0; i < SESSIONS; i++) {
    const id = i.toString(36).padStart(43, '0')
    ids.push(id)
    records.set(
      id,
      JSON.stringify({ v: 1, c: Date.now(), a: Date.now() + 86_400_000, d: { counter: 0 }, h: 'f00dcafe' }),
    )
  }
  let next = 0
  all.push(
    await sessionless('least session', (req, _res, done) => {
      const id = ids[next++ % SESSIONS]!
      const record = JSON.parse(records.get(id)!) as { d: { counter: number } }
      if (req.url === '/inc') {
        record.d.counter++
        records.set(id, JSON.stringify(record))
      }
      done()
    }),
  )

  const engine = managerOf()
  const engineCookies: string[] = []
  for (let i = 0; i < SESSIONS; i++) {
    const result = await engineRequest(engine, undefined, true)
    engineCookies.push(result.setCookie[0]!.split(';')[0]!)
  }
  let turn = 0
  all.push(
    await sessionless('tessera engine', (req, _res, done) => {
      const committing = engineRequest(engine, engineCookies[turn++ % SESSIONS], req.url === '/inc')
      if (committing instanceof Promise) committing.then(() => done(), done)
      else done()
    }),
  )

  const manager = managerOf()
  all.push(
    await variant(
      'tessera',
      expressApp(expressSession(manager) as unknown as express.RequestHandler, (req) =>
        counterOf((req as unknown as { session: CounterSession }).session),
      ),
      socket,
      true,
    ),
  )
  return all
}

async function main(): Promise<void> {
  // Tessera warns once about plain HTTP; not what is measured.
  process.removeAllListeners('warning')
  const socket = new DiscardingSocket()
  const measured = await variants(socket)
  for (let round = 0; round < WARM_UP_ROUNDS + rounds; round++) {
    const order = round % 2 === 0 ? measured : [...measured].reverse()
    for (const v of order) {
      for (const path of ['/inc', '/read'] as const) {
        const started = process.hrtime.bigint()
        for (let i = 0; i < BATCH; i++)
          await request(v.app, socket, path, v.cookies[(round * BATCH + i) % SESSIONS])
        const µs = Number(process.hrtime.bigint() - started) / 1000
        if (round < WARM_UP_ROUNDS) continue
        if (path === '/inc') v.modifying += µs
        else v.readOnly += µs
      }
      if (round >= WARM_UP_ROUNDS) v.requests += BATCH
    }
  }
  const [ceiling] = measured
  console.log(
    `Express, ${rounds} interleaved rounds of ${BATCH} requests per variant and route (µs per request; ratio to Express)`,
  )
  console.log('| variant | modifying µs | ratio | read-only µs | ratio |')
  console.log('| --- | ---: | ---: | ---: | ---: |')
  for (const v of measured) {
    const modifying = v.modifying / v.requests
    const readOnly = v.readOnly / v.requests
    const ratio = (own: number, base: number) => (base / v.requests / own).toFixed(2)
    console.log(
      `| ${v.name} | ${modifying.toFixed(1)} | ${ratio(modifying, ceiling!.modifying)} | ${readOnly.toFixed(1)} | ${ratio(readOnly, ceiling!.readOnly)} |`,
    )
  }
}

await main()
