/**
 * One benchmark server, in a child process of its own (`node --import tsx bench/server.ts '<ServerConfig JSON>'`).
 * It listens on 127.0.0.1 on a free port and answers three routes, the same for every library:
 *
 * - `GET /login` starts a session holding `{ counter: 0 }`;
 * - `GET /inc` loads the session, increments the counter and saves it (401 without a session);
 * - `GET /read` loads the session and returns the counter without changing it (401 without a session).
 *
 * The parent talks to it over IPC: `memory` (process.memoryUsage, and heapUsed after a full GC), `stats`
 * (statements sent to PostgreSQL so far) and `close`. The child exits when the parent goes away.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { RequestHandler } from 'express'
import {
  COOKIE_NAME,
  errorMessage,
  type FromServer,
  IDLE_MS,
  type MemoryReport,
  SECRET,
  type ServerConfig,
  type ToServer,
} from './common.js'
import { requirePackage } from './require.js'

/** What a route needs from any library's session: the counter, read and written. */
interface Counter {
  get(): number | undefined
  set(value: number): void
}

interface Built {
  readonly server: Server
  close(): Promise<void>
  /** Statements sent to the backend so far (PostgreSQL only; Redis is counted by the parent from INFO). */
  queries?(): number
}

type Next = (error?: unknown) => void
type Middleware = (req: IncomingMessage, res: ServerResponse, next: Next) => void

const config = JSON.parse(process.argv[2] ?? '{}') as ServerConfig

function send(message: FromServer): void {
  process.send?.(message)
}

// Answers one of the three routes from a library's session; `save` runs before the response is written, for
// the libraries whose save is explicit (iron-session). Returns the status and body written.
function answer(url: string | undefined, counter: Counter): { status: number; body: string } {
  if (url === '/login') {
    counter.set(0)
    return { status: 200, body: 'ok' }
  }
  const value = counter.get()
  if (typeof value !== 'number') return { status: 401, body: 'no session' }
  if (url === '/inc') {
    counter.set(value + 1)
    return { status: 200, body: String(value + 1) }
  }
  if (url === '/read') return { status: 200, body: String(value) }
  return { status: 404, body: 'not found' }
}

function writePlain(res: ServerResponse, status: number, body: string): void {
  res.statusCode = status
  res.setHeader('content-type', 'text/plain; charset=utf-8')
  res.end(body)
}

function listen(server: Server): Promise<Server> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve(server))
  })
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve())
    server.closeAllConnections()
  })
}

// ---------------------------------------------------------------------------------------------- ceilings

async function nodeBare(): Promise<Built> {
  const server = await listen(
    createServer((req, res) => writePlain(res, 200, req.url === '/login' ? 'ok' : '0')),
  )
  return { server, close: () => closeServer(server) }
}

async function expressApp() {
  const { default: express } = await import('express')
  const app = express()
  app.disable('x-powered-by')
  return app
}

type ExpressApp = Awaited<ReturnType<typeof expressApp>>

// The three routes on an Express app, reading the session through `counterOf`.
function expressRoutes(app: ExpressApp, counterOf: (req: IncomingMessage) => Counter): void {
  for (const path of ['/login', '/inc', '/read']) {
    app.get(path, (req, res) => {
      const { status, body } = answer(path, counterOf(req))
      res.status(status).send(body)
    })
  }
}

async function expressListen(app: ExpressApp): Promise<Server> {
  return listen(createServer(app))
}

async function expressBare(): Promise<Built> {
  const app = await expressApp()
  for (const path of ['/login', '/inc', '/read']) {
    // The same calls as every session route (status, then send), minus the session.
    app.get(path, (_req, res) => {
      res.status(200).send(path === '/login' ? 'ok' : '0')
    })
  }
  const server = await expressListen(app)
  return { server, close: () => closeServer(server) }
}

async function fastifyBare(): Promise<Built> {
  const { default: Fastify } = await import('fastify')
  const app = Fastify({ logger: false })
  for (const path of ['/login', '/inc', '/read']) {
    app.get(path, async (_request, reply) => {
      // The same calls as every session route (code, then type), minus the session.
      reply.code(200).type('text/plain; charset=utf-8')
      return path === '/login' ? 'ok' : '0'
    })
  }
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { server: app.server, close: () => app.close() }
}

// ------------------------------------------------------------------------------------------------- peers

interface ExpressSessionModule {
  (options: Record<string, unknown>): Middleware
  readonly MemoryStore: new () => object
}

type ExpressSessionData = Record<string, unknown>

function expressSessionCounter(req: IncomingMessage): Counter {
  const session = (req as unknown as { session: ExpressSessionData }).session
  return {
    get: () => session.counter as number | undefined,
    set: (value) => {
      session.counter = value
    },
  }
}

// express-session as its README recommends for production: no resave, no empty sessions stored, a cookie
// with an idle lifetime. secure: false only because the bench is plain HTTP on loopback.
async function expressSessionWith(store: object | undefined, close: () => Promise<void>): Promise<Built> {
  const session = requirePackage<ExpressSessionModule>('express-session')
  const app = await expressApp()
  app.use(
    session({
      secret: SECRET,
      name: COOKIE_NAME,
      resave: false,
      saveUninitialized: false,
      ...(store !== undefined && { store }),
      cookie: { secure: false, httpOnly: true, sameSite: 'lax', maxAge: IDLE_MS },
    }) as unknown as RequestHandler,
  )
  expressRoutes(app, expressSessionCounter)
  const server = await expressListen(app)
  return {
    server,
    close: async () => {
      await closeServer(server)
      await close()
    },
  }
}

async function expressSessionMemory(): Promise<Built> {
  return expressSessionWith(undefined, async () => {})
}

async function expressSessionMemorystore(): Promise<Built> {
  const session = requirePackage<ExpressSessionModule>('express-session')
  const createStore =
    requirePackage<(session: ExpressSessionModule) => new (options: object) => object>('memorystore')
  const MemoryStore = createStore(session)
  // checkPeriod: expired entries pruned every minute, as tessera's MemoryStore sweeps by default.
  const store = new MemoryStore({ checkPeriod: 60_000 }) as { stopInterval?: () => void }
  return expressSessionWith(store, async () => store.stopInterval?.())
}

async function expressSessionRedis(): Promise<Built> {
  const { createClient } = await import('redis')
  const { RedisStore } = await import('connect-redis')
  const client = createClient({ url: config.redisUrl ?? 'redis://127.0.0.1:6379' })
  await client.connect()
  const store = new RedisStore({ client, prefix: `${config.redisPrefix ?? 'bench:'}es:` })
  return expressSessionWith(store, async () => {
    await client.quit()
  })
}

// Imported by a computed name, so its declaration merging (request.session) never meets tessera's Fastify
// adapter's in the type checker: the bench uses both.
async function untypedImport<T>(specifier: string): Promise<T> {
  return (await import(specifier)) as T
}

type FastifyPlugin = import('fastify').FastifyPluginAsync<Record<string, unknown>>

async function fastifySession(): Promise<Built> {
  const { default: Fastify } = await import('fastify')
  const { default: fastifyCookie } = await import('@fastify/cookie')
  const { default: fastifySessionPlugin } = await untypedImport<{ default: FastifyPlugin }>(
    '@fastify/session',
  )
  const app = Fastify({ logger: false })
  await app.register(fastifyCookie)
  // The plugin's defaults (its in-memory store, rolling: true) but no empty sessions stored, as for the others.
  await app.register(fastifySessionPlugin, {
    secret: SECRET,
    cookieName: COOKIE_NAME,
    saveUninitialized: false,
    cookie: { secure: false, httpOnly: true, sameSite: 'lax', maxAge: IDLE_MS },
  })
  for (const path of ['/login', '/inc', '/read']) {
    app.get(path, async (request, reply) => {
      const session = (request as unknown as { session: unknown }).session as {
        get(key: string): unknown
        set(key: string, value: unknown): void
      }
      const { status, body } = answer(path, {
        get: () => session.get('counter') as number | undefined,
        set: (value) => session.set('counter', value),
      })
      reply.code(status).type('text/plain; charset=utf-8')
      return body
    })
  }
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { server: app.server, close: () => app.close() }
}

async function ironSession(): Promise<Built> {
  const { getIronSession } = await import('iron-session')
  const options = {
    password: SECRET,
    cookieName: COOKIE_NAME,
    ttl: IDLE_MS / 1000,
    cookieOptions: { secure: false, httpOnly: true, sameSite: 'lax' as const },
  }
  const server = await listen(
    createServer((req, res) => {
      void (async () => {
        const session = await getIronSession<{ counter?: number }>(req, res, options)
        let changed = false
        const { status, body } = answer(req.url, {
          get: () => session.counter,
          set: (value) => {
            session.counter = value
            changed = true
          },
        })
        if (changed) await session.save()
        writePlain(res, status, body)
      })().catch((error: unknown) => {
        console.error(error)
        writePlain(res, 500, 'error')
      })
    }),
  )
  return { server, close: () => closeServer(server) }
}

// ----------------------------------------------------------------------------------------------- tessera

async function tesseraStore(
  kind: string,
): Promise<{ store: object; close(): Promise<void>; queries?(): number }> {
  if (kind === 'memory') {
    const { MemoryStore } = await import('../src/stores/memory.js')
    const store = new MemoryStore()
    return { store, close: () => store.close() }
  }
  if (kind === 'sqlite') {
    const { SqliteStore } = await import('../src/stores/sqlite.js')
    const store = await SqliteStore.open({ path: config.sqlitePath ?? ':memory:' })
    return { store, close: () => store.close() }
  }
  if (kind === 'cookie') {
    const { CookieStore } = await import('../src/stores/cookie.js')
    const store = new CookieStore()
    return { store, close: () => store.close() }
  }
  if (kind === 'redis') {
    const { RedisStore } = await import('../src/stores/redis.js')
    const store = await RedisStore.open({
      url: config.redisUrl ?? 'redis://127.0.0.1:6379',
      prefix: `${config.redisPrefix ?? 'bench:'}tessera:`,
    })
    return { store, close: () => store.close() }
  }
  if (kind === 'postgres') {
    const { PostgresStore } = await import('../src/stores/postgres.js')
    const { default: pg } = await import('pg')
    const pool = new pg.Pool({ connectionString: config.postgresUrl, max: 10 })
    // Counts every statement sent to the server: pool.query() and connections checked out both end in a
    // client's query(), wrapped as each connection opens (so pool.query is not counted twice).
    let queries = 0
    pool.on('connect', (client) => {
      const clientQuery = client.query.bind(client) as (...args: unknown[]) => Promise<unknown>
      Object.assign(client, {
        query: (...args: unknown[]) => {
          queries++
          return clientQuery(...args)
        },
      })
    })
    const store = new PostgresStore({ pool, table: config.postgresTable })
    return {
      store,
      close: async () => {
        await store.close()
        await pool.end()
      },
      queries: () => queries,
    }
  }
  throw new Error(`unknown tessera store ${kind}`)
}

async function tesseraManager(kind: string) {
  const { createSessionManager } = await import('../src/index.js')
  const backend = await tesseraStore(kind)
  // Defaults everywhere (rolling, touchInterval 60 s, merge on conflict), except 'auto' Secure: plain HTTP here.
  const manager = createSessionManager<{ counter?: number }>({
    store: backend.store as Parameters<typeof createSessionManager>[0]['store'],
    secrets: [SECRET],
    cookie: { name: COOKIE_NAME, secure: 'auto' },
  })
  return { manager, backend }
}

async function tesseraNode(kind: string): Promise<Built> {
  const { withSession } = await import('../src/adapters/node.js')
  const { manager, backend } = await tesseraManager(kind)
  const server = await listen(
    createServer(
      withSession(manager, (req, res, session) => {
        const { status, body } = answer(req.url, {
          get: () => session.get('counter'),
          set: (value) => session.set('counter', value),
        })
        writePlain(res, status, body)
      }),
    ),
  )
  return {
    server,
    close: async () => {
      await closeServer(server)
      await backend.close()
    },
    ...(backend.queries !== undefined && { queries: backend.queries }),
  }
}

async function tesseraExpress(kind: string): Promise<Built> {
  const { session } = await import('../src/adapters/express.js')
  const { manager, backend } = await tesseraManager(kind)
  const app = await expressApp()
  app.use(session(manager) as unknown as RequestHandler)
  expressRoutes(app, (req) => {
    const current = (
      req as unknown as {
        session: { get(key: 'counter'): unknown; set(key: 'counter', value: number): void }
      }
    ).session
    return {
      get: () => current.get('counter') as number | undefined,
      set: (value) => current.set('counter', value),
    }
  })
  const server = await expressListen(app)
  return {
    server,
    close: async () => {
      await closeServer(server)
      await backend.close()
    },
    ...(backend.queries !== undefined && { queries: backend.queries }),
  }
}

async function tesseraFastify(kind: string): Promise<Built> {
  const { default: Fastify } = await import('fastify')
  const adapter = await untypedImport<{ tesseraSession?: FastifyPlugin }>('../src/adapters/fastify.js')
  if (typeof adapter.tesseraSession !== 'function')
    throw new Error('src/adapters/fastify.ts exports no tesseraSession')
  const { manager, backend } = await tesseraManager(kind)
  const app = Fastify({ logger: false })
  await app.register(adapter.tesseraSession, { manager })
  for (const path of ['/login', '/inc', '/read']) {
    app.get(path, async (request, reply) => {
      const session = (
        request as unknown as {
          session: { get(key: string): unknown; set(key: string, value: unknown): void }
        }
      ).session
      const { status, body } = answer(path, {
        get: () => session.get('counter') as number | undefined,
        set: (value) => session.set('counter', value),
      })
      reply.code(status).type('text/plain; charset=utf-8')
      return body
    })
  }
  await app.listen({ port: 0, host: '127.0.0.1' })
  return {
    server: app.server,
    close: async () => {
      await app.close()
      await backend.close()
    },
  }
}

// -------------------------------------------------------------------------------------------------- main

const BUILDERS: Record<string, () => Promise<Built>> = {
  'node-bare': nodeBare,
  'express-bare': expressBare,
  'fastify-bare': fastifyBare,
  'express-session-memory': expressSessionMemory,
  'express-session-memorystore': expressSessionMemorystore,
  'express-session-redis': expressSessionRedis,
  'fastify-session': fastifySession,
  'iron-session': ironSession,
  'tessera-node-memory': () => tesseraNode('memory'),
  'tessera-express-memory': () => tesseraExpress('memory'),
  'tessera-fastify-memory': () => tesseraFastify('memory'),
  'tessera-node-sqlite': () => tesseraNode('sqlite'),
  'tessera-express-sqlite': () => tesseraExpress('sqlite'),
  'tessera-node-cookie': () => tesseraNode('cookie'),
  'tessera-node-redis': () => tesseraNode('redis'),
  'tessera-express-redis': () => tesseraExpress('redis'),
  'tessera-node-postgres': () => tesseraNode('postgres'),
  'tessera-express-postgres': () => tesseraExpress('postgres'),
}

function memory(): MemoryReport {
  const usage = process.memoryUsage()
  const gc = (globalThis as { gc?: () => void }).gc
  let heapUsedAfterGc: number | undefined
  if (gc !== undefined) {
    gc()
    heapUsedAfterGc = process.memoryUsage().heapUsed
  }
  return {
    rss: usage.rss,
    heapUsed: usage.heapUsed,
    heapTotal: usage.heapTotal,
    external: usage.external,
    heapUsedAfterGc,
  }
}

async function main(): Promise<void> {
  // The parent is the only reason to live: if it goes, so does this server (and its connections).
  process.on('disconnect', () => process.exit(0))
  // Tessera warns once about plain HTTP and so on; the bench keeps stderr for real errors.
  process.removeAllListeners('warning')
  const build = BUILDERS[config.scenario]
  if (build === undefined) throw new Error(`unknown scenario ${config.scenario}`)
  const built = await build()
  process.on('message', (message: ToServer) => {
    if (message.type === 'memory') send({ type: 'memory', memory: memory() })
    else if (message.type === 'cpu') send({ type: 'cpu', ...process.cpuUsage() })
    else if (message.type === 'stats') send({ type: 'stats', queries: built.queries?.() ?? 0 })
    else if (message.type === 'close') {
      const timer = setTimeout(() => process.exit(0), 3000)
      built
        .close()
        .catch((error: unknown) => console.error('close failed:', errorMessage(error)))
        .finally(() => {
          clearTimeout(timer)
          send({ type: 'closed' })
          // Let the IPC message leave before exiting (and --cpu-prof write its profile).
          setImmediate(() => process.exit(0))
        })
    }
  })
  send({ type: 'ready', port: (built.server.address() as AddressInfo).port })
}

main().catch((error: unknown) => {
  send({ type: 'failed', message: errorMessage(error) })
  setImmediate(() => process.exit(1))
})
